//! ipc: the IPC proof's driver.
//!
//! Caps: `console`, `spawner`, `ipc` (IpcManager), `timer`.
//!
//! First it tries, on endpoints of its own, what a careless or hostile
//! program would: RECV and RETURN on caps that are not serving caps, RETURNs
//! of calls that are not being served (unknown, already answered, received
//! on another endpoint), RETURNs the kernel must refuse (a status a server
//! may not give, results over 64 KiB, results at an unmapped address), a
//! cookie forged inside the params, receive buffers too small for a call or
//! for the caps sent with it, the largest call the ring takes (and a small
//! call queued behind it), and more calls, more RECVs and more unanswered
//! calls than an endpoint holds. It serves those calls itself: it calls its
//! own minted caps without waiting, then receives and answers the calls.
//!
//! Then it starts the Echo service across processes: it creates an
//! endpoint, mints an Echo cap with the cookie [`CLIENT_COOKIE`], starts
//! `echo-server` with the serving cap (as `endpoint`) and `echo-client` with
//! the minted cap (as `echo`), and drops its own copies. When the client
//! reports (a call on the `parent` cap the driver serves) that it is blocked
//! on a call the server never answers, the driver kills the server; the
//! client then sees `Disconnected` and exits.
//!
//! Output: `ipc: <case>: <result>` for each case (`ok`, a transport error
//! name, or the value named), `ipc: mismatch in <case>: expected <want>`
//! after a wrong result, the exit codes of both children, and last
//! `ipc: all <n> cases gave their named result` (exit code 0) or
//! `ipc: <m> of <n> cases gave the wrong result` (exit code 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use capos_rt::abi::{
    Cqe, RecvHeader, Sqe, TransportError, XferDesc, MAX_PARAMS_LEN, MAX_RESULTS_LEN, OP_RELEASE,
    RECV_HEADER_SIZE, XFER_COPY,
};
use capos_rt::ipc::{self, Request};
use capos_rt::schema::{
    dispatch_echo, echo, endpoint, wire, CapException, ConsoleClient, Grant, ProcessHandleClient,
    ProcessSpawnerClient,
};
use capos_rt::{println, CapRef, Runtime};
use ipc_programs::{
    call_sqe, client_result, echo_params, echo_results_data, payload, status_name, Echo,
    CLIENT_COOKIE,
};

capos_rt::entry!(main);

/// Cookies of the driver's own minted caps.
const COOKIE_A: u64 = 0x5678;
const COOKIE_B: u64 = 0x9abc;
const COOKIE_PARENT: u64 = 0x4eed;
/// The cookie a client tries to smuggle in its params.
const FORGED_COOKIE: u64 = 0xdead;

/// Calls an endpoint queues, RECVs it keeps waiting, and calls it lets the
/// server hold unanswered.
const QUEUED_CALLS: usize = 64;
const WAITING_RECVS: usize = 16;
const UNANSWERED_CALLS: usize = 64;
/// Calls and RECVs submitted to overfill them.
const FLOOD_CALLS: usize = 70;
const FLOOD_RECVS: usize = 17;

/// Receive buffer of the driver's own cases (all its calls are small).
const RECV_LEN: usize = 4096;

/// Params of the largest CALL the ring takes (`MAX_PARAMS_LEN` bytes); an
/// endpoint passes params on without reading them.
static LARGEST_PARAMS: [u8; MAX_PARAMS_LEN as usize] = [0; MAX_PARAMS_LEN as usize];

/// How long the driver waits for the client to report it is blocked.
const READY_TIMEOUT_NS: u64 = 60_000_000_000;

fn main(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(spawner), Some(ipc_cap), Some(timer)) =
        (rt.cap("console"), rt.cap("spawner"), rt.cap("ipc"), rt.cap("timer"))
    else {
        println!(rt, "ipc: needs console, spawner, ipc and timer caps");
        return 2;
    };
    let mut p = Proof { rt, console, ipc: ipc_cap.cap, cases: 0, wrong: 0, stash: Vec::new() };
    p.not_serving_caps();
    p.one_call();
    p.two_cookies();
    p.small_buffers();
    p.transfers();
    p.largest_call();
    p.call_flood();
    p.recv_flood();
    p.in_flight_limit();
    p.echo_service(spawner, timer);
    if p.wrong == 0 {
        println!(rt, "ipc: all {} cases gave their named result", p.cases);
        0
    } else {
        println!(rt, "ipc: {} of {} cases gave the wrong result", p.wrong, p.cases);
        1
    }
}

/// The completion's status, with a note for an error that carries results
/// or caps, or a nonzero `reserved`.
fn cqe_result(c: &Cqe) -> String {
    let mut s = status_name(c.status);
    let app_error = c.status == TransportError::AppError.code();
    if c.status != 0 && !app_error && (c.result_len != 0 || c.cap_count != 0) {
        let _ = write!(s, " with result_len {} and cap_count {}", c.result_len, c.cap_count);
    }
    if c.reserved != 0 {
        let _ = write!(s, " with reserved {}", c.reserved);
    }
    s
}

/// "N Status, M Status" for a set of completions, in status order.
fn tally<'a>(cqes: impl Iterator<Item = &'a Cqe>) -> String {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for c in cqes {
        *counts.entry(c.status).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".to_string();
    }
    let parts: Vec<String> =
        counts.iter().map(|(s, n)| format!("{n} {}", status_name(*s))).collect();
    parts.join(", ")
}

struct Proof {
    rt: &'static Runtime,
    console: CapRef,
    ipc: u64,
    cases: u32,
    wrong: u32,
    /// Completions taken from the ring while waiting for another one.
    ///
    /// The driver calls its own minted caps, so a RETURN or a RELEASE
    /// completes its own CALLs too. It therefore never lets the runtime's
    /// blocking calls reap completions of its raw SQEs: every raw SQE goes
    /// through [`Proof::start`] and [`Proof::wait`], and nothing that prints
    /// runs while one of them may complete.
    stash: Vec<Cqe>,
}

impl Proof {
    /// Counts one case, prints its line, and reports a mismatch.
    fn check(&mut self, case: &str, got: &str, want: &str) {
        self.cases += 1;
        println!(self.rt, "ipc: {case}: {got}");
        if got != want {
            self.wrong += 1;
            println!(self.rt, "ipc: mismatch in {case}: expected {want}");
        }
    }

    /// [`Proof::check`] for cases with more than one right result.
    fn check_any(&mut self, case: &str, got: &str, wants: &[&str]) {
        let want = if wants.contains(&got) { got } else { wants[0] };
        self.check(case, got, want);
    }

    /// Submits `sqe` with a fresh `user_data`, waits for its completion.
    fn run(&mut self, sqe: Sqe) -> Result<Cqe, String> {
        let user_data = self.start(sqe);
        self.wait(user_data)
    }

    /// Waits (at most 10 s) for the completion with `user_data`, keeping
    /// others in [`Proof::stash`].
    fn wait(&mut self, user_data: u64) -> Result<Cqe, String> {
        if let Some(i) = self.stash.iter().position(|c| c.user_data == user_data) {
            return Ok(self.stash.remove(i));
        }
        let ring = self.rt.ring();
        loop {
            while let Some(c) = ring.pop() {
                if c.user_data == user_data {
                    return Ok(c);
                }
                self.stash.push(c);
            }
            match ring.enter(1, 10_000_000_000) {
                Ok(_) => {}
                Err(TransportError::Timeout) => return Err("no completion in 10 s".to_string()),
                Err(e) => return Err(format!("cap_enter failed with {}", e.name())),
            }
        }
    }

    /// A RETURN of call `call_id` on `endpoint`; its status.
    fn answer(&mut self, endpoint: u64, call_id: u64, status: u32, results: &[u8]) -> String {
        match self.run(ipc::return_sqe(endpoint, call_id, status, results, 0)) {
            Ok(c) => cqe_result(&c),
            Err(e) => e,
        }
    }

    /// A RELEASE of `cap` (a raw SQE: it may complete calls of the driver's).
    fn release(&mut self, cap: u64) {
        let _ = self.run(Sqe { opcode: OP_RELEASE, cap, ..Sqe::default() });
    }

    /// Submits `sqe` and checks its status is `want`.
    fn expect(&mut self, case: &str, sqe: Sqe, want: &str) {
        let got = match self.run(sqe) {
            Ok(c) => cqe_result(&c),
            Err(e) => e,
        };
        self.check(case, &got, want);
    }

    /// Submits `sqe` without waiting; returns its `user_data`.
    fn start(&self, mut sqe: Sqe) -> u64 {
        sqe.user_data = self.rt.next_user_data();
        let ring = self.rt.ring();
        while ring.push(&sqe).is_err() {
            ring.publish();
            let _ = ring.enter(0, 0);
        }
        ring.publish();
        sqe.user_data
    }

    /// Lets the kernel take every submitted SQE.
    fn flush(&self) {
        let _ = self.rt.ring().enter(0, 0);
    }

    /// Takes completions until `count` have arrived or `timeout_ns` passes
    /// with none. Only for stretches in which nothing else (no print) ran
    /// since the SQEs were submitted: completions a blocking call reaps
    /// while waiting are kept by the runtime, not returned here.
    fn collect(&mut self, count: usize, timeout_ns: u64) -> Vec<Cqe> {
        let ring = self.rt.ring();
        let mut done = core::mem::take(&mut self.stash);
        loop {
            while let Some(c) = ring.pop() {
                done.push(c);
            }
            if done.len() >= count {
                return done;
            }
            if ring.enter(1, timeout_ns).is_err() {
                while let Some(c) = ring.pop() {
                    done.push(c);
                }
                return done;
            }
        }
    }

    fn endpoint(&mut self, what: &str) -> Option<u64> {
        match ipc::create_endpoint(self.rt, self.ipc) {
            Ok(e) => Some(e),
            Err(e) => {
                self.check(&format!("IpcManager.createEndpoint for {what}"), &e.to_string(), "ok");
                None
            }
        }
    }

    fn mint(&mut self, endpoint: u64, interface_id: u64, cookie: u64) -> Option<u64> {
        match ipc::mint(self.rt, endpoint, interface_id, cookie) {
            Ok(c) => Some(c),
            Err(e) => {
                self.check(&format!("Endpoint.mint with cookie {cookie:#x}"), &e.to_string(), "ok");
                None
            }
        }
    }

    /// A RECV on `endpoint` into `buf`, as a [`Request`].
    fn recv(&mut self, endpoint: u64, buf: &mut [u8]) -> Result<Request, String> {
        let c = self.run(ipc::recv_sqe(endpoint, buf, 0))?;
        if c.status != 0 {
            return Err(cqe_result(&c));
        }
        let len = c.result_len as usize;
        let header = RecvHeader::from_bytes(buf).ok_or("no header")?;
        if len < RECV_HEADER_SIZE || len > buf.len() || header.call_id != c.aux {
            return Err(format!("result_len {len}, call id {} and aux {}", header.call_id, c.aux));
        }
        let caps = capos_rt::abi::delivered_caps(buf, c.result_len, c.cap_count)
            .map(Iterator::collect)
            .unwrap_or_default();
        Ok(Request { header, params: buf[RECV_HEADER_SIZE..len].to_vec(), caps })
    }

    /// RECV and RETURN where they are not served: on a minted cap, on a
    /// kernel object, and RETURN of a call id nobody received.
    fn not_serving_caps(&mut self) {
        let Some(ep) = self.endpoint("the refusals") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let Some(fake) = self.mint(ep, endpoint::INTERFACE_ID, COOKIE_B) else { return };
        let mut buf = vec![0u8; RECV_LEN];
        let results = echo_params(b"");
        let wi = TransportError::WrongInterface.name();

        let sqe = ipc::recv_sqe(client, &mut buf, 0);
        self.expect("RECV on a minted Echo cap", sqe, wi);
        let sqe = Sqe { interface_id: echo::INTERFACE_ID, ..ipc::recv_sqe(client, &mut buf, 0) };
        self.expect("RECV on a minted Echo cap, naming Echo", sqe, wi);
        let sqe = ipc::return_sqe(client, 1, 0, &results, 0);
        self.expect("RETURN on a minted Echo cap", sqe, wi);
        let sqe = ipc::recv_sqe(fake, &mut buf, 0);
        self.expect("RECV on a cap minted to claim Endpoint's interface", sqe, wi);
        let sqe = ipc::recv_sqe(self.console.cap, &mut buf, 0);
        self.expect("RECV on the console", sqe, wi);
        let sqe = ipc::return_sqe(self.console.cap, 1, 0, &results, 0);
        self.expect("RETURN on the console", sqe, wi);
        let sqe = ipc::return_sqe(ep, 999_999, 0, &results, 0);
        self.expect("RETURN of call id 999999", sqe, TransportError::UnknownCall.name());
        for cap in [fake, client, ep] {
            self.release(cap);
        }
    }

    /// One call from the driver to itself: what the server learns, what
    /// RETURNs the kernel refuses, and that a call is answered once.
    fn one_call(&mut self) {
        let (Some(ep), Some(other)) = (self.endpoint("one call"), self.endpoint("another")) else {
            return;
        };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        // Params that look like a RecvHeader with a forged cookie.
        let forged = RecvHeader {
            call_id: 1,
            interface_id: endpoint::INTERFACE_ID,
            cookie: FORGED_COOKIE,
            caller: FORGED_COOKIE,
            method: 0,
            reserved: [0; 3],
        };
        let mut data = forged.to_bytes().to_vec();
        data.extend_from_slice(&FORGED_COOKIE.to_le_bytes());
        let params = echo_params(&data);
        let mut results = vec![0u8; 256];
        let call = self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0));
        self.flush();

        let mut buf = vec![0u8; RECV_LEN];
        let request = match self.recv(ep, &mut buf) {
            Ok(r) => {
                self.check("RECV of a queued call", "ok", "ok");
                r
            }
            Err(e) => {
                self.check("RECV of a queued call", &e, "ok");
                return;
            }
        };
        let h = request.header;
        self.check(
            "cookie of a call whose params carry cookie 0xdead",
            &format!("{:#x}", h.cookie),
            &format!("{COOKIE_A:#x}"),
        );
        let iface = if h.interface_id == echo::INTERFACE_ID {
            "Echo".to_string()
        } else {
            format!("{:#x}", h.interface_id)
        };
        self.check("its interface and method", &format!("{iface}.{}", h.method), "Echo.0");
        let same = if request.params == params { "ok" } else { "changed" };
        self.check("its params arrive byte for byte", same, "ok");

        let answer = dispatch_echo(&mut Echo::default(), h.method, &request.params);
        let answer = answer.unwrap_or_default();
        let id = h.call_id;
        let bad = TransportError::WrongInterface.code();
        let sqe = ipc::return_sqe(ep, id, bad, &answer, 0);
        self.expect("RETURN with status WrongInterface", sqe, "Malformed");
        let sqe = Sqe { params_len: MAX_PARAMS_LEN + 1, ..ipc::return_sqe(ep, id, 0, &answer, 0) };
        self.expect("RETURN of 65537 bytes", sqe, "TooLarge");
        let sqe = Sqe { params_addr: 0x5000_0000_0000, ..ipc::return_sqe(ep, id, 0, &answer, 0) };
        self.expect("RETURN of results at an unmapped address", sqe, "BadPointer");
        let sqe = ipc::return_sqe(other, id, 0, &answer, 0);
        self.expect("RETURN of the call on another endpoint", sqe, "UnknownCall");
        let sqe = ipc::return_sqe(ep, id, 0, &answer, 0);
        self.expect("RETURN of the echo", sqe, "ok");
        let sqe = ipc::return_sqe(ep, id, 0, &answer, 0);
        self.expect("second RETURN of the same call", sqe, "UnknownCall");

        let got = match self.wait(call) {
            Ok(c) if c.status == 0 => {
                let back = results.get(..c.result_len as usize).and_then(echo_results_data);
                if back.as_deref() == Some(&data[..]) {
                    "ok".to_string()
                } else {
                    "ok, but the data differs".to_string()
                }
            }
            Ok(c) => cqe_result(&c),
            Err(e) => e,
        };
        self.check("the caller's completion", &got, "ok");
        for cap in [client, other, ep] {
            self.release(cap);
        }
    }

    /// Calls through two caps minted with different cookies, answered with
    /// an application error and with BadMethod.
    fn two_cookies(&mut self) {
        let Some(ep) = self.endpoint("two cookies") else { return };
        let (Some(a), Some(b)) = (
            self.mint(ep, echo::INTERFACE_ID, COOKIE_A),
            self.mint(ep, echo::INTERFACE_ID, COOKIE_B),
        ) else {
            return;
        };
        let (pa, pb) = (echo_params(b"first"), echo_params(b"second"));
        let (mut ra, mut rb) = (vec![0u8; 256], vec![0u8; 256]);
        let ua = self.start(call_sqe(a, echo::INTERFACE_ID, 0, &pa, &mut ra, 0));
        let ub = self.start(call_sqe(b, echo::INTERFACE_ID, 0, &pb, &mut rb, 0));
        self.flush();
        let mut buf = vec![0u8; RECV_LEN];
        let (first, second) = match (self.recv(ep, &mut buf), self.recv(ep, &mut buf)) {
            (Ok(x), Ok(y)) => (x.header, y.header),
            (x, y) => {
                let e = x.err().or(y.err()).unwrap_or_default();
                self.check("RECV of two queued calls", &e, "ok");
                return;
            }
        };
        self.check(
            "cookies of calls through two minted caps, in order",
            &format!("{:#x} then {:#x}", first.cookie, second.cookie),
            &format!("{COOKIE_A:#x} then {COOKIE_B:#x}"),
        );
        let same = if first.caller == second.caller { "equal" } else { "different" };
        self.check("caller references of two calls from one process", same, "equal");

        let refusal = CapException { code: 7, message: "refused by the driver".into() };
        let exception = wire::encode_exception(&refusal);
        let got = self.answer(ep, first.call_id, TransportError::AppError.code(), &exception);
        self.check("RETURN with AppError", &got, "ok");
        let bad_method = TransportError::BadMethod.code();
        let got = self.answer(ep, second.call_id, bad_method, &[]);
        self.check("RETURN with BadMethod", &got, "ok");

        let got = match self.wait(ua) {
            Ok(c) if c.status == TransportError::AppError.code() => {
                match ra.get(..c.result_len as usize).map(wire::decode_exception) {
                    Some(Ok(e)) => format!("AppError {} ({})", e.code, e.message),
                    _ => "AppError without an exception".to_string(),
                }
            }
            Ok(c) => cqe_result(&c),
            Err(e) => e,
        };
        self.check("the AppError seen by the caller", &got, "AppError 7 (refused by the driver)");
        let got = self.wait(ub).map_or_else(|e| e, |c| cqe_result(&c));
        self.check("the BadMethod seen by the caller", &got, "BadMethod");
        for cap in [a, b, ep] {
            self.release(cap);
        }
    }

    /// Receive buffers too small for the call (which stays queued), and
    /// results too large for the caller's buffer.
    fn small_buffers(&mut self) {
        let Some(ep) = self.endpoint("small buffers") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let data = payload(100);
        let params = echo_params(&data);
        let mut results = vec![0u8; 16];
        let call = self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0));
        self.flush();
        let mut tiny = vec![0u8; 16];
        let sqe = ipc::recv_sqe(ep, &mut tiny, 0);
        self.expect("RECV of a 128-byte call into 16 bytes", sqe, "Overflow");
        let mut header_only = vec![0u8; RECV_HEADER_SIZE];
        let sqe = ipc::recv_sqe(ep, &mut header_only, 0);
        self.expect("RECV of it into a header's 40 bytes", sqe, "Overflow");
        let mut buf = vec![0u8; RECV_LEN];
        let request = match self.recv(ep, &mut buf) {
            Ok(r) => r,
            Err(e) => {
                self.check("RECV of it into 4096 bytes", &e, "ok");
                return;
            }
        };
        let got = if request.params == params { "ok" } else { "a different call" };
        self.check("RECV of it into 4096 bytes", got, "ok");
        let answer = dispatch_echo(&mut Echo::default(), 0, &request.params).unwrap_or_default();
        let got = self.answer(ep, request.call_id(), 0, &answer);
        self.check("RETURN of 128 bytes to a caller with a 16-byte buffer", &got, "ok");
        let got = self.wait(call).map_or_else(|e| e, |c| cqe_result(&c));
        self.check("the caller's completion", &got, "Overflow");
        for cap in [client, ep] {
            self.release(cap);
        }
    }

    /// Caps sent with a call: they reach the server, and a RECV buffer with
    /// room for the header and params but not for the CapIds leaves the
    /// call queued like any buffer too small.
    fn transfers(&mut self) {
        let rt = self.rt;
        let Some(ep) = self.endpoint("transfers") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let xfer = XferDesc { cap: self.console.cap, mode: XFER_COPY, reserved: 0 }.to_bytes();
        let params = echo_params(b"a console for you");
        let mut results = vec![0u8; 256];
        let with_cap = |results: &mut [u8]| Sqe {
            xfer_addr: xfer.as_ptr() as u64,
            xfer_count: 1,
            ..call_sqe(client, echo::INTERFACE_ID, 0, &params, results, 0)
        };

        // A buffer for the header and params, with no room for the CapId.
        let call = self.start(with_cap(&mut results));
        self.flush();
        let mut tight = vec![0u8; (RECV_HEADER_SIZE + params.len()).div_ceil(8) * 8];
        let sqe = ipc::recv_sqe(ep, &mut tight, 0);
        self.expect("RECV of a call with a cap, no room for its CapId", sqe, "Overflow");
        // The call must still be there for a RECV with room. Not blocking:
        // if the call is gone, the RECV would wait forever.
        let mut buf = vec![0u8; RECV_LEN];
        let recv = self.start(ipc::recv_sqe(ep, &mut buf, 0));
        self.flush();
        let done = self.collect(2, 200_000_000);
        let got = match done.iter().find(|c| c.user_data == recv) {
            Some(c) if c.status == 0 => format!("ok with {} cap(s)", c.cap_count),
            Some(c) => cqe_result(c),
            None => match done.iter().find(|c| c.user_data == call) {
                Some(c) => format!("no call: the caller got {}", cqe_result(c)),
                None => "no call".to_string(),
            },
        };
        self.check("RECV of it with room for the CapId", &got, "ok with 1 cap(s)");
        let received = done.iter().find(|c| c.user_data == recv && c.status == 0).copied();
        match received {
            Some(c) => {
                let at = (c.result_len as usize).div_ceil(8) * 8;
                let cap = buf
                    .get(at..at + 8)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
                let console = ConsoleClient::new(rt, cap);
                let got = client_result(
                    &console
                        .write_line("ipc: this line went through a console cap sent with a call"),
                );
                self.check("writeLine through the console cap received", &got, "ok");
                self.release(cap);
                let answer = dispatch_echo(&mut Echo::default(), 0, &params).unwrap_or_default();
                let got = self.answer(ep, c.aux, 0, &answer);
                self.check("RETURN of the call with a cap", &got, "ok");
                let got = self.wait(call).map_or_else(|e| e, |c| cqe_result(&c));
                self.check("the caller's completion", &got, "ok");
            }
            None => {
                // Let go of the RECV still waiting (and the call, if any).
                self.release(ep);
                let _ = self.collect(2, 200_000_000);
            }
        }
        for cap in [client, ep] {
            self.release(cap);
        }
    }

    /// The largest call a CALL may carry (params of `MAX_PARAMS_LEN` bytes)
    /// must be either refused when it is made or received: a call that no
    /// RECV buffer can take would stay first in the queue for good, and
    /// every call behind it too.
    fn largest_call(&mut self) {
        let Some(ep) = self.endpoint("the largest call") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let mut results = vec![0u8; 256];
        let call =
            self.start(call_sqe(client, echo::INTERFACE_ID, 0, &LARGEST_PARAMS, &mut results, 0));
        self.flush();
        let early = self.collect(1, 50_000_000);
        let got = if let Some(c) = early.iter().find(|c| c.user_data == call) {
            format!("CALL refused with {}", cqe_result(c))
        } else {
            let mut buf = vec![0u8; RECV_HEADER_SIZE + MAX_PARAMS_LEN as usize];
            match self.recv(ep, &mut buf) {
                Ok(r) if r.params.len() == LARGEST_PARAMS.len() => {
                    let answer = echo_params(b"");
                    let _ = self.answer(ep, r.call_id(), 0, &answer);
                    "received".to_string()
                }
                Ok(_) => "received with other params".to_string(),
                Err(first) => {
                    buf.truncate(MAX_RESULTS_LEN as usize);
                    let second = self.recv(ep, &mut buf).err().unwrap_or("ok".into());
                    format!(
                        "never received: RECV gives {first} with a {}-byte buffer, {second} with {MAX_RESULTS_LEN}",
                        RECV_HEADER_SIZE + MAX_PARAMS_LEN as usize
                    )
                }
            }
        };
        self.check_any(
            "a call with 65536 bytes of params",
            &got,
            &["received", "CALL refused with TooLarge"],
        );
        // A small call behind it must not be held up.
        let params = echo_params(b"behind");
        let mut small_results = vec![0u8; 256];
        let behind =
            self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut small_results, 0));
        self.flush();
        let mut buf = vec![0u8; RECV_LEN];
        let got = match self.recv(ep, &mut buf) {
            Ok(r) if r.params == params => {
                let answer = dispatch_echo(&mut Echo::default(), 0, &params).unwrap_or_default();
                let _ = self.answer(ep, r.call_id(), 0, &answer);
                "ok".to_string()
            }
            Ok(_) => "another call".to_string(),
            Err(e) => e,
        };
        self.check("RECV of a small call queued after it", &got, "ok");
        // Closing the endpoint ends whatever is still queued.
        self.release(ep);
        let mut left = vec![behind];
        if early.iter().all(|c| c.user_data != call) {
            left.push(call);
        }
        for ud in left {
            let _ = self.wait(ud);
        }
        self.release(client);
    }

    /// More calls than an endpoint queues; then the serving cap goes away.
    fn call_flood(&mut self) {
        let Some(ep) = self.endpoint("the call flood") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let params = echo_params(b"flood");
        let mut results = vec![0u8; 64];
        // No print until everything is reaped: a print is a call, and a call
        // keeps the completions it does not wait for.
        let calls: Vec<u64> = (0..FLOOD_CALLS)
            .map(|_| self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0)))
            .collect();
        self.flush();
        let refused = self.collect(FLOOD_CALLS - QUEUED_CALLS, 1_000_000_000);
        // Anything more would arrive now: give it 50 ms.
        let extra = self.collect(1, 50_000_000);
        let release =
            self.start(Sqe { opcode: OP_RELEASE, cap: ep, user_data: 0, ..Sqe::default() });
        self.flush();
        let after = self.collect(QUEUED_CALLS + 1, 2_000_000_000);

        let early: Vec<Cqe> = refused.iter().chain(&extra).copied().collect();
        let got = tally(early.iter().filter(|c| calls.contains(&c.user_data)));
        self.check(
            &format!("{FLOOD_CALLS} calls on an endpoint nobody serves"),
            &got,
            &format!("{} Overflow", FLOOD_CALLS - QUEUED_CALLS),
        );
        let got = tally(after.iter().filter(|c| calls.contains(&c.user_data)));
        self.check(
            &format!("releasing the serving cap with {QUEUED_CALLS} calls queued"),
            &got,
            &format!("{QUEUED_CALLS} Disconnected"),
        );
        let got = tally(after.iter().filter(|c| c.user_data == release));
        self.check("the RELEASE", &got, "1 ok");
        let params = echo_params(b"late");
        let sqe = call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0);
        self.expect("a call through a cap of the closed endpoint", sqe, "Disconnected");
        self.release(client);
    }

    /// More RECVs than an endpoint keeps waiting; then the serving cap goes
    /// away.
    fn recv_flood(&mut self) {
        let Some(ep) = self.endpoint("the RECV flood") else { return };
        let mut bufs = vec![vec![0u8; 256]; FLOOD_RECVS];
        let recvs: Vec<u64> =
            bufs.iter_mut().map(|b| self.start(ipc::recv_sqe(ep, b, 0))).collect();
        self.flush();
        let refused = self.collect(FLOOD_RECVS - WAITING_RECVS, 1_000_000_000);
        let extra = self.collect(1, 50_000_000);
        let release =
            self.start(Sqe { opcode: OP_RELEASE, cap: ep, user_data: 0, ..Sqe::default() });
        self.flush();
        let after = self.collect(WAITING_RECVS + 1, 2_000_000_000);

        let early: Vec<Cqe> = refused.iter().chain(&extra).copied().collect();
        let got = tally(early.iter().filter(|c| recvs.contains(&c.user_data)));
        self.check(
            &format!("{FLOOD_RECVS} RECVs on an endpoint nobody calls"),
            &got,
            &format!("{} Overflow", FLOOD_RECVS - WAITING_RECVS),
        );
        let got = tally(after.iter().filter(|c| recvs.contains(&c.user_data)));
        self.check(
            &format!("releasing the serving cap with {WAITING_RECVS} RECVs waiting"),
            &got,
            &format!("{WAITING_RECVS} Disconnected"),
        );
        let got = tally(after.iter().filter(|c| c.user_data == release));
        self.check("the RELEASE", &got, "1 ok");
    }

    /// More received calls than an endpoint lets a server leave unanswered.
    fn in_flight_limit(&mut self) {
        let Some(ep) = self.endpoint("the in-flight limit") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, COOKIE_A) else { return };
        let params = echo_params(b"held");
        let mut results = vec![0u8; 64];
        let mut calls: Vec<u64> = (0..UNANSWERED_CALLS)
            .map(|_| self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0)))
            .collect();
        self.flush();
        let mut buf = vec![0u8; RECV_LEN];
        let received = (0..UNANSWERED_CALLS).filter(|_| self.recv(ep, &mut buf).is_ok()).count();
        // One more call, queued: the server may not take it yet.
        calls.push(self.start(call_sqe(client, echo::INTERFACE_ID, 0, &params, &mut results, 0)));
        self.flush();
        let one_more = self.run(ipc::recv_sqe(ep, &mut buf, 0));
        let release =
            self.start(Sqe { opcode: OP_RELEASE, cap: ep, user_data: 0, ..Sqe::default() });
        self.flush();
        let after = self.collect(UNANSWERED_CALLS + 2, 2_000_000_000);

        self.check(
            &format!("RECVs of {UNANSWERED_CALLS} queued calls"),
            &format!("{received} received"),
            &format!("{UNANSWERED_CALLS} received"),
        );
        let got = one_more.map_or_else(|e| e, |c| cqe_result(&c));
        self.check(&format!("RECV with {UNANSWERED_CALLS} calls unanswered"), &got, "Overflow");
        let got = tally(after.iter().filter(|c| calls.contains(&c.user_data)));
        self.check(
            "releasing the serving cap with them",
            &got,
            &format!("{} Disconnected", UNANSWERED_CALLS + 1),
        );
        let got = tally(after.iter().filter(|c| c.user_data == release));
        self.check("the RELEASE", &got, "1 ok");
        self.release(client);
    }

    /// The Echo service across three processes.
    fn echo_service(&mut self, spawner: CapRef, timer: CapRef) {
        let rt = self.rt;
        let Some(ep) = self.endpoint("echo-server") else { return };
        let Some(client) = self.mint(ep, echo::INTERFACE_ID, CLIENT_COOKIE) else { return };
        let Some(ready) = self.endpoint("the client's report") else { return };
        let Some(parent) = self.mint(ready, echo::INTERFACE_ID, COOKIE_PARENT) else { return };
        let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
        let grant = |name: &str, cap: u64| Grant { name: name.to_string(), cap };
        println!(rt, "ipc: starting echo-server and echo-client");
        let server = match spawner.spawn(
            "echo-server",
            &[],
            &[grant("console", self.console.cap), grant("endpoint", ep)],
        ) {
            Ok(h) => h,
            Err(e) => {
                self.check("spawn of echo-server", &e.to_string(), "ok");
                return;
            }
        };
        // The server holds the only serving cap from now on: when it dies,
        // the endpoint closes.
        self.release(ep);
        let child = match spawner.spawn(
            "echo-client",
            &[],
            &[
                grant("console", self.console.cap),
                grant("echo", client),
                grant("timer", timer.cap),
                grant("parent", parent),
            ],
        ) {
            Ok(h) => h,
            Err(e) => {
                self.check("spawn of echo-client", &e.to_string(), "ok");
                let _ = ProcessHandleClient::new(rt, server).kill();
                return;
            }
        };
        self.release(client);
        self.release(parent);

        // Wait for the client's report, without blocking forever if the
        // client dies first.
        let mut buf = vec![0u8; RECV_LEN];
        let report = self.start(ipc::recv_sqe(ready, &mut buf, 0));
        let got = self.collect(1, READY_TIMEOUT_NS);
        match got.iter().find(|c| c.user_data == report) {
            Some(c) if c.status == 0 => {
                let header = RecvHeader::from_bytes(&buf).unwrap_or_default();
                let len = (c.result_len as usize).clamp(RECV_HEADER_SIZE, RECV_LEN);
                let params = &buf[RECV_HEADER_SIZE..len];
                let answer = dispatch_echo(&mut Echo::default(), header.method, params);
                let _ = ipc::reply_dispatched(rt, ready, header.call_id, answer);
                println!(
                    rt,
                    "ipc: echo-client is blocked on an unanswered call; killing echo-server"
                );
            }
            other => {
                let what = other.map_or_else(|| "no report".to_string(), cqe_result);
                self.check("the client's report", &what, "ok");
            }
        }
        let server = ProcessHandleClient::new(rt, server);
        let _ = server.kill();
        let server_code = server.wait();
        let child = ProcessHandleClient::new(rt, child);
        let child_code = child.wait();
        let show = |r: &Result<i64, _>| match r {
            Ok(code) => format!("code {code}"),
            Err(e) => format!("{e}"),
        };
        self.check("exit of echo-server", &show(&server_code), "code -9");
        self.check("exit of echo-client", &show(&child_code), "code 0");
        self.release(server.cap_id());
        self.release(child.cap_id());
        self.release(ready);
    }
}
