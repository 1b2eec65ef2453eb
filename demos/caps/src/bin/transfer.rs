//! transfer: proves that caps move between processes only as the ring's
//! transfer descriptors say, that result caps come back the same way, that
//! the kernel refuses bad descriptors without touching any cap table, that a
//! revoked wrapper stops working in every table it was passed to, and that
//! `ProcessHandle.status` records how a crashed process ended.
//!
//! Caps: `console`, `spawner`, `ipc` (IpcManager).
//!
//! The driver creates an endpoint, mints an Echo cap from it (cookie
//! [`COOKIE`]) and starts itself as `server`, granting only the serving cap
//! (as `endpoint`): the server holds no console of its own, so everything it
//! prints goes through a console cap the driver transferred to it. Each
//! request is an `Echo.echo` whose data names what the server does (see
//! [`serve`]); the server answers with a short report as the echoed data.
//!
//! Output: one `transfer: <case>: <result>` line per check (a wrong result
//! is printed as `transfer: FAILED <case>: <result>`), the server's two
//! lines written through transferred caps, and last
//! `transfer: all <n> checks passed` (exit code 0) or
//! `transfer: <m> of <n> checks FAILED` (exit code 1).
//!
//! Other modes, started by the driver itself: `server` (the Echo server
//! above) and `crash` (writes to address 8 and dies of a page fault).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use cap_programs::Checks;
use capos_rt::abi::{
    CapId, Cqe, RecvHeader, Sqe, TransportError, XferDesc, OP_CALL, OP_RECV, OP_RETURN,
    RECV_HEADER_SIZE, STATUS_OK, XFER_COPY, XFER_MOVE,
};
use capos_rt::schema::capos_capnp::echo::{echo_params, echo_results};
use capos_rt::schema::capos_capnp::ipc_manager::make_revocable_params;
use capos_rt::schema::{
    echo, endpoint, ipc_manager, wire, CallError, ConsoleClient, EndpointClient, Grant,
    IpcManagerClient, NotificationClient, ProcessHandleClient, ProcessSpawnerClient, RevokerClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

/// The cookie of the Echo cap the driver mints.
const COOKIE: u64 = 7;
/// The cookie of the Echo cap the server mints and returns as a result cap.
const SERVER_COOKIE: u64 = 8;
/// A slot of the driver's cap table that never holds a cap.
const FORGED_SLOT: u32 = 40;
/// Results and receive buffers (every message here is small).
const BUF_LEN: usize = 4096;
/// Where the crashing child writes.
const CRASH_ADDRESS: u64 = 8;
/// The exit code of a process a page fault ended (-256 - vector 14).
const PAGE_FAULT_EXIT: i64 = -270;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    match args.as_slice() {
        ["server"] => server(rt),
        ["crash"] => {
            capos_rt::probe::write_u64(CRASH_ADDRESS, 1);
            3
        }
        _ => driver(rt),
    }
}

// --- ring plumbing ------------------------------------------------------------

/// A completed CALL or RECV: its status, the message bytes and the CapIds
/// that arrived after them.
struct Completion {
    status: u32,
    message: Vec<u8>,
    caps: Vec<u64>,
}

impl Completion {
    /// Reads the completion `cqe` of an SQE whose buffer was `buf`: the
    /// message is `result_len` bytes, the CapIds follow it 8-aligned.
    fn read(cqe: &Cqe, buf: &[u8]) -> Completion {
        let len = (cqe.result_len as usize).min(buf.len());
        let caps = capos_rt::abi::delivered_caps(buf, cqe.result_len, cqe.cap_count)
            .map(Iterator::collect)
            .unwrap_or_default();
        Completion { status: cqe.status, message: buf[..len].to_vec(), caps }
    }

    fn failed(e: TransportError) -> Completion {
        Completion { status: e.code(), message: Vec::new(), caps: Vec::new() }
    }

    /// The echoed text of an OK completion, else the status name.
    fn outcome(&self) -> String {
        if self.status != STATUS_OK {
            return status_name(self.status).to_string();
        }
        echo_data(&self.message)
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_else(|| "undecodable results".to_string())
    }
}

/// `ok` or the transport error name of a status.
fn status_name(status: u32) -> &'static str {
    if status == STATUS_OK {
        return "ok";
    }
    TransportError::from_u32(status).map(TransportError::name).unwrap_or("unknown status")
}

/// `ok`, the transport error name, or `AppError` of a typed client call.
fn client_result<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(CallError::Transport(status)) => status_name(*status).to_string(),
        Err(CallError::Exception(_)) => "AppError".to_string(),
        Err(e) => format!("client error ({e})"),
    }
}

/// The descriptors' wire form, for `xfer_addr`.
fn xfer_bytes(descs: &[XferDesc]) -> Vec<u8> {
    descs.iter().flat_map(|d| d.to_bytes()).collect()
}

fn desc(cap: u64, mode: u32) -> XferDesc {
    XferDesc { cap, mode, reserved: 0 }
}

/// A CALL SQE sending the caps described at `xfer` (`xfer.len() / 16` of them).
fn call_sqe(
    rt: &Runtime,
    cap: u64,
    interface_id: u64,
    method: u16,
    params: &[u8],
    results: &mut [u8],
    xfer: &[u8],
) -> Sqe {
    Sqe {
        opcode: OP_CALL,
        method,
        xfer_count: (xfer.len() / 16) as u16,
        cap,
        interface_id,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr: results.as_mut_ptr() as u64,
        results_len: results.len() as u32,
        xfer_addr: if xfer.is_empty() { 0 } else { xfer.as_ptr() as u64 },
        user_data: rt.next_user_data(),
        ..Sqe::default()
    }
}

/// One blocking CALL sending `descs`.
fn call(
    rt: &Runtime,
    cap: u64,
    interface_id: u64,
    method: u16,
    params: &[u8],
    descs: &[XferDesc],
) -> Completion {
    let xfer = xfer_bytes(descs);
    let mut results = vec![0u8; BUF_LEN];
    let sqe = call_sqe(rt, cap, interface_id, method, params, &mut results, &xfer);
    match rt.call_raw(sqe) {
        Ok(cqe) => Completion::read(&cqe, &results),
        Err(e) => Completion::failed(e),
    }
}

fn echo_params_of(data: &[u8]) -> Vec<u8> {
    wire::encode::<echo_params::Owned>(|mut p| {
        p.set_data(data);
        Ok(())
    })
    .unwrap_or_default()
}

fn echo_results_of(data: &[u8]) -> Vec<u8> {
    wire::encode::<echo_results::Owned>(|mut r| {
        r.set_data(data);
        Ok(())
    })
    .unwrap_or_default()
}

/// The data of an `Echo.echo` params or results message (both are one
/// `Data` field at the same place).
fn echo_data(message: &[u8]) -> Option<Vec<u8>> {
    let message = wire::decode(message).ok()?;
    let root = message.get_root::<echo_results::Reader<'_>>().ok()?;
    root.get_data().ok().map(<[u8]>::to_vec)
}

/// `Echo.echo(command)` on the Echo cap `cap`, sending `descs`.
fn request(rt: &Runtime, cap: u64, command: &str, descs: &[XferDesc]) -> Completion {
    let params = echo_params_of(command.as_bytes());
    call(rt, cap, echo::INTERFACE_ID, echo::method::ECHO, &params, descs)
}

/// Whether the Console cap `cap` still works: an empty `write`.
fn console_state(rt: &Runtime, cap: u64) -> String {
    client_result(&ConsoleClient::new(rt, cap).write(""))
}

// --- the driver ----------------------------------------------------------------

fn driver(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(spawner), Some(ipc)) =
        (rt.cap("console"), rt.cap("spawner"), rt.cap("ipc"))
    else {
        println!(rt, "transfer: needs console, spawner and ipc caps");
        return 2;
    };
    let console = console.cap;
    let ipc_manager = IpcManagerClient::new(rt, ipc.cap);
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);

    // The endpoint, its Echo cap, and the server holding only the serving cap.
    let serving = match ipc_manager.create_endpoint() {
        Ok(c) => c,
        Err(e) => {
            println!(rt, "transfer: createEndpoint failed: {e}");
            return 3;
        }
    };
    let minted = EndpointClient::new(rt, serving).mint(echo::INTERFACE_ID, COOKIE);
    let Some(echo_cap) = minted.as_ref().ok().and_then(|r| r.caps().first().copied()) else {
        println!(rt, "transfer: mint failed: {}", client_result(&minted));
        return 3;
    };
    let grants = [Grant { name: "endpoint".into(), cap: serving }];
    let server = match spawner.spawn("transfer", &["server"], &grants) {
        Ok(h) => ProcessHandleClient::new(rt, h),
        Err(e) => {
            println!(rt, "transfer: spawn of the server failed: {e}");
            return 3;
        }
    };
    // Only the server serves the endpoint from now on.
    let _ = rt.release(serving);

    let mut checks = Checks::new(rt, "transfer");

    // 1. Copy: the server prints through its copy; the driver keeps its own.
    let reply = request(rt, echo_cap, "console", &[desc(console, XFER_COPY)]).outcome();
    let own = console_state(rt, console);
    checks.check(
        reply == "granted only endpoint, got 1 cap(s), writeLine ok" && own == "ok",
        format!("copy of console: server {reply}; the driver's console then {own}"),
    );

    // 2. Move: the driver's CapId goes stale; the server's cap works.
    let moved = match ipc_manager.create_notification() {
        Ok(n) => n,
        Err(e) => {
            println!(rt, "transfer: createNotification failed: {e}");
            return 3;
        }
    };
    let reply = request(rt, echo_cap, "notification", &[desc(moved, XFER_MOVE)]).outcome();
    let after = client_result(&NotificationClient::new(rt, moved).signal(1));
    checks.check(
        reply == "got 1 cap(s), signal then wait gave 0b1" && after == "StaleCap",
        format!("move of a notification: server {reply}; the driver's CapId then gives {after}"),
    );

    // 3. A result cap: the server mints an Echo cap and moves it back.
    let first = request(rt, echo_cap, "cookie", &[]).outcome();
    let given = request(rt, echo_cap, "mint", &[]);
    let through = match given.caps.as_slice() {
        [cap] => request(rt, *cap, "cookie", &[]).outcome(),
        _ => "no cap".to_string(),
    };
    checks.check(
        given.status == STATUS_OK
            && given.caps.len() == 1
            && through == "cookie 8"
            && first == "cookie 7",
        format!(
            "result cap from the server: {}, {} cap(s) arrived; calling it reaches the server \
             with {through} (the driver's own cap: {first})",
            given.outcome(),
            given.caps.len()
        ),
    );

    // 4. One cap moved by two CALLs of one batch: the second finds it gone.
    match ipc_manager.create_notification() {
        Ok(twice) => {
            let (first, second) = move_twice(rt, echo_cap, twice);
            checks.check(
                first == "got 1 cap(s)" && second == "StaleCap",
                format!("one cap moved by two CALLs in one batch: first {first}, second {second}"),
            );
        }
        Err(e) => checks.check(false, format!("createNotification for the batch: {e}")),
    }

    // 5.-8. Refused transfers: nothing moves and nothing reaches the server.
    let before = server_calls(rt, echo_cap);
    let forged = CapId::new(FORGED_SLOT, 0).0;
    let r = request(rt, echo_cap, "take", &[desc(forged, XFER_COPY)]);
    checks.check(
        r.status == TransportError::InvalidCap.code(),
        format!("a CapId the driver does not hold (slot {FORGED_SLOT}): {}", r.outcome()),
    );
    let refusals: [(&str, [XferDesc; 2]); 3] = [
        ("descriptor mode 9 after a move of console", [desc(console, XFER_MOVE), desc(ipc.cap, 9)]),
        ("console twice in one CALL", [desc(console, XFER_COPY), desc(console, XFER_MOVE)]),
        (
            "descriptor with reserved 1 after a move of console",
            [desc(console, XFER_MOVE), XferDesc { cap: ipc.cap, mode: XFER_COPY, reserved: 1 }],
        ),
    ];
    for (case, descs) in refusals {
        let r = request(rt, echo_cap, "take", &descs);
        let own = console_state(rt, console);
        checks.check(
            r.status == TransportError::Malformed.code() && own == "ok",
            format!("{case}: {}; console then {own}", r.outcome()),
        );
    }
    let after = server_calls(rt, echo_cap);
    let reached = match (before, after) {
        (Some(b), Some(a)) => a.wrapping_sub(b).wrapping_sub(1).to_string(),
        _ => "unknown".to_string(),
    };
    checks.check(reached == "0", format!("refused CALLs that reached the server: {reached}"));

    // 9. Revocation.
    revocation(rt, &mut checks, ipc.cap, console, echo_cap);

    // 10. The status of a crashed child.
    crash_status(rt, &mut checks, &spawner);

    // The server ends when asked.
    let bye = request(rt, echo_cap, "quit", &[]).outcome();
    let code = server.wait();
    checks.check(
        bye == "bye" && matches!(code, Ok(0)),
        format!("server answered {bye} and exited with code {}", client_value(&code)),
    );

    let total = checks.passed + checks.failed;
    if checks.failed == 0 {
        println!(rt, "transfer: all {total} checks passed");
        0
    } else {
        println!(rt, "transfer: {} of {total} checks FAILED", checks.failed);
        1
    }
}

/// The value of a typed client call, or its error name.
fn client_value<T: core::fmt::Display>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(_) => client_result(r),
    }
}

/// Submits two CALLs that both move `cap`, with one `cap_enter`; returns
/// what each completed with.
fn move_twice(rt: &Runtime, echo_cap: u64, cap: u64) -> (String, String) {
    let params = echo_params_of(b"take");
    let xfer = xfer_bytes(&[desc(cap, XFER_MOVE)]);
    let mut results = [vec![0u8; BUF_LEN], vec![0u8; BUF_LEN]];
    let [r0, r1] = &mut results;
    let sqes = [
        call_sqe(rt, echo_cap, echo::INTERFACE_ID, echo::method::ECHO, &params, r0, &xfer),
        call_sqe(rt, echo_cap, echo::INTERFACE_ID, echo::method::ECHO, &params, r1, &xfer),
    ];
    for sqe in &sqes {
        if rt.ring().push(sqe).is_err() {
            return ("ring full".to_string(), "ring full".to_string());
        }
    }
    rt.ring().publish();
    // Every earlier call was blocking and has been reaped, so the CQ holds
    // only these two completions. They are reaped here, in the order they
    // arrive: the first `cap_enter` consumes both SQEs.
    let mut done: [Option<String>; 2] = [None, None];
    while done.iter().any(Option::is_none) {
        if let Err(e) = rt.ring().enter(1, u64::MAX) {
            return (e.name().to_string(), e.name().to_string());
        }
        while let Some(cqe) = rt.ring().pop() {
            if let Some(i) = sqes.iter().position(|s| s.user_data == cqe.user_data) {
                done[i] = Some(Completion::read(&cqe, &results[i]).outcome());
            }
        }
    }
    let [first, second] = done;
    (first.unwrap_or_default(), second.unwrap_or_default())
}

/// How many calls the server has received so far (this one included).
fn server_calls(rt: &Runtime, echo_cap: u64) -> Option<u64> {
    request(rt, echo_cap, "count", &[]).outcome().strip_suffix(" call(s)")?.parse().ok()
}

/// makeRevocable on a copy of console; the wrapper works for the driver and,
/// passed on, for the server; after `revoke` both copies fail with Revoked
/// while the original console keeps working.
fn revocation(rt: &Runtime, checks: &mut Checks<'_>, ipc: u64, console: u64, echo_cap: u64) {
    let params = wire::encode::<make_revocable_params::Owned>(|_| Ok(())).unwrap_or_default();
    let made = call(
        rt,
        ipc,
        ipc_manager::INTERFACE_ID,
        ipc_manager::method::MAKE_REVOCABLE,
        &params,
        &[desc(console, XFER_COPY)],
    );
    let [revoker, wrapped] = made.caps.as_slice() else {
        checks.check(
            false,
            format!(
                "makeRevocable of a copy of console: {}, {} result cap(s)",
                status_name(made.status),
                made.caps.len()
            ),
        );
        return;
    };
    let (revoker, wrapped) = (*revoker, *wrapped);
    let own = client_result(
        &ConsoleClient::new(rt, wrapped)
            .write_line("transfer: written through the revocable console"),
    );
    let reply = request(rt, echo_cap, "keep", &[desc(wrapped, XFER_COPY)]).outcome();
    checks.check(
        own == "ok" && reply == "got 1 cap(s), writeLine ok",
        format!(
            "revocable copy of console: 2 result caps; the driver's writeLine {own}; passed on, \
             server {reply}"
        ),
    );
    let revoked = client_result(&RevokerClient::new(rt, revoker).revoke());
    let own = console_state(rt, wrapped);
    let reply = request(rt, echo_cap, "retry", &[]).outcome();
    let original = console_state(rt, console);
    checks.check(
        revoked == "ok"
            && own == "Revoked"
            && reply == "its copy gives Revoked"
            && original == "ok",
        format!(
            "revoke {revoked}: the driver's wrapped cap gives {own}; server: {reply}; the \
             original console {original}"
        ),
    );
}

/// Starts a child that writes to address 8, and reads its status.
fn crash_status(rt: &Runtime, checks: &mut Checks<'_>, spawner: &ProcessSpawnerClient<&Runtime>) {
    let handle = match spawner.spawn("transfer", &["crash"], &[]) {
        Ok(h) => ProcessHandleClient::new(rt, h),
        Err(e) => {
            checks.check(false, format!("spawn of the crashing child: {e}"));
            return;
        }
    };
    let code = handle.wait();
    match handle.status() {
        Ok(s) => {
            let rip_in_program = (0x40_0000..0x7000_0000_0000).contains(&s.fault_rip);
            checks.check(
                matches!(code, Ok(PAGE_FAULT_EXIT))
                    && s.exited
                    && s.exit_code == PAGE_FAULT_EXIT
                    && s.cause == "page fault"
                    && rip_in_program
                    && s.fault_address == CRASH_ADDRESS,
                format!(
                    "crashed child: wait gave {}; status: exited {}, exit code {}, cause {}, \
                     fault rip {} the program, fault address {:#x}",
                    client_value(&code),
                    s.exited,
                    s.exit_code,
                    s.cause,
                    if rip_in_program { "in" } else { "outside" },
                    s.fault_address
                ),
            );
        }
        Err(e) => checks.check(false, format!("crashed child: status failed: {e}")),
    }
    let _ = rt.release(handle.cap_id());
}

// --- the server ----------------------------------------------------------------

/// Serves the Echo cap minted from `endpoint`. The echoed data names the
/// request, and the server answers with a report instead of an echo:
/// - `console`: calls `writeLine` on the one cap sent (a Console);
/// - `notification`: `signal(1)` then `wait(1)` on the one cap sent;
/// - `mint`: mints an Echo cap (cookie [`SERVER_COOKIE`]) and moves it to
///   the caller as a result cap;
/// - `cookie`: the cookie of the cap the call came through;
/// - `take`: how many caps arrived (and drops them);
/// - `count`: how many calls it received;
/// - `keep`: calls `writeLine` on the one cap sent, and keeps it;
/// - `retry`: calls the kept cap again and reports the outcome;
/// - `quit`: answers `bye` and exits 0.
///
/// Caps it does not keep are released after the answer.
fn server(rt: &'static Runtime) -> i64 {
    let Some(endpoint) = rt.cap("endpoint") else { return 2 };
    let granted: Vec<String> = rt.caps().map(|(name, _)| name).collect();
    let endpoint = endpoint.cap;
    let mut calls = 0u64;
    let mut kept: Option<u64> = None;
    let mut buf = vec![0u8; BUF_LEN];
    loop {
        let sqe = Sqe {
            opcode: OP_RECV,
            cap: endpoint,
            interface_id: endpoint::INTERFACE_ID,
            results_addr: buf.as_mut_ptr() as u64,
            results_len: buf.len() as u32,
            user_data: rt.next_user_data(),
            ..Sqe::default()
        };
        let got = match rt.call_raw(sqe) {
            Ok(cqe) if cqe.status == STATUS_OK => Completion::read(&cqe, &buf),
            _ => return 3,
        };
        let Some(header) = RecvHeader::from_bytes(&got.message) else { return 4 };
        calls += 1;
        let caps = got.caps;
        if header.interface_id != echo::INTERFACE_ID || header.method != echo::method::ECHO {
            let _ =
                answer(rt, endpoint, header.call_id, TransportError::BadMethod.code(), &[], &[]);
            release_all(rt, &caps);
            continue;
        }
        let command = echo_data(&got.message[RECV_HEADER_SIZE..]).unwrap_or_default();
        let mut give = Vec::new();
        let mut keep = false;
        let report = match (command.as_slice(), caps.as_slice()) {
            (b"console", [cap]) => {
                let r = ConsoleClient::new(rt, *cap)
                    .write_line("server: hello through a transferred console");
                format!(
                    "granted only {}, got 1 cap(s), writeLine {}",
                    granted.join(","),
                    client_result(&r)
                )
            }
            (b"notification", [cap]) => {
                let n = NotificationClient::new(rt, *cap);
                let signalled = n.signal(1);
                match (signalled, n.wait(1, u64::MAX)) {
                    (Ok(()), Ok(bits)) => format!("got 1 cap(s), signal then wait gave {bits:#b}"),
                    (s, w) => format!(
                        "got 1 cap(s), signal {}, wait {}",
                        client_result(&s),
                        client_result(&w)
                    ),
                }
            }
            (b"keep", [cap]) => {
                let r = ConsoleClient::new(rt, *cap)
                    .write_line("server: hello through the revocable console");
                keep = true;
                kept = Some(*cap);
                format!("got 1 cap(s), writeLine {}", client_result(&r))
            }
            (b"mint", []) => {
                let minted =
                    EndpointClient::new(rt, endpoint).mint(echo::INTERFACE_ID, SERVER_COOKIE);
                match minted.as_ref().ok().and_then(|r| r.caps().first().copied()) {
                    Some(cap) => {
                        give.push(desc(cap, XFER_MOVE));
                        format!("minted an Echo cap with cookie {SERVER_COOKIE}")
                    }
                    None => format!("mint {}", client_result(&minted)),
                }
            }
            (b"cookie", []) => format!("cookie {}", header.cookie),
            (b"take", caps) => format!("got {} cap(s)", caps.len()),
            (b"count", []) => format!("{calls} call(s)"),
            (b"retry", []) => match kept {
                Some(cap) => {
                    let r = ConsoleClient::new(rt, cap)
                        .write_line("server: a revoked cap still works (must never appear)");
                    format!("its copy gives {}", client_result(&r))
                }
                None => "nothing kept".to_string(),
            },
            (b"quit", []) => "bye".to_string(),
            (other, caps) => format!(
                "unexpected request {:?} with {} cap(s)",
                core::str::from_utf8(other).unwrap_or("?"),
                caps.len()
            ),
        };
        let results = echo_results_of(report.as_bytes());
        let answered = answer(rt, endpoint, header.call_id, STATUS_OK, &results, &give);
        if !keep {
            release_all(rt, &caps);
        }
        if answered.is_err() {
            // The result cap did not leave: drop it here.
            release_all(rt, &give.iter().map(|d| d.cap).collect::<Vec<_>>());
        }
        if command == b"quit" {
            return 0;
        }
    }
}

/// RETURN of call `call_id` with `status` and `results`, moving or copying
/// the caps `descs` name to the caller.
fn answer(
    rt: &Runtime,
    endpoint: u64,
    call_id: u64,
    status: u32,
    results: &[u8],
    descs: &[XferDesc],
) -> Result<(), TransportError> {
    let xfer = xfer_bytes(descs);
    let sqe = Sqe {
        opcode: OP_RETURN,
        method: status as u16,
        xfer_count: descs.len() as u16,
        cap: endpoint,
        interface_id: endpoint::INTERFACE_ID,
        params_addr: results.as_ptr() as u64,
        params_len: results.len() as u32,
        results_addr: call_id,
        xfer_addr: if xfer.is_empty() { 0 } else { xfer.as_ptr() as u64 },
        user_data: rt.next_user_data(),
        ..Sqe::default()
    };
    let cqe = rt.call_raw(sqe)?;
    match TransportError::from_u32(cqe.status) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

fn release_all(rt: &Runtime, caps: &[u64]) {
    for &cap in caps {
        let _ = rt.release(cap);
    }
}
