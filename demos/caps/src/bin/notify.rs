//! notify: proves what a Notification does: `wait` times out when nothing
//! is signalled, returns at once (and clears) the bits already set within
//! its mask, leaves bits outside the mask set, wakes when another process
//! signals, and refuses an empty mask.
//!
//! Caps: `console`, `ipc` (IpcManager), `timer`, `spawner`.
//!
//! The driver starts itself as `signaller`, granting the notification and
//! `timer`: the child sleeps [`CHILD_SLEEP_NS`] and then signals bit 0.
//!
//! Output: one `notify: <case>: <result>` line per check (a wrong result is
//! printed as `notify: FAILED <case>: <result>`), then
//! `notify: all <n> checks passed` (exit code 0) or
//! `notify: <m> of <n> checks FAILED` (exit code 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use cap_programs::Checks;
use capos_rt::abi::{Sqe, TransportError, OP_CALL, STATUS_OK};
use capos_rt::schema::capos_capnp::notification::{wait_params, wait_results};
use capos_rt::schema::{
    notification, wire, CallError, Grant, IpcManagerClient, NotificationClient,
    ProcessHandleClient, ProcessSpawnerClient, TimerClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

/// How long the first wait waits for a bit nobody sets.
const TIMEOUT_NS: u64 = 50_000_000;
/// How long the child sleeps before it signals.
const CHILD_SLEEP_NS: u64 = 30_000_000;
/// A wait without a deadline.
const FOREVER: u64 = u64::MAX;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    match args.as_slice() {
        ["signaller"] => signaller(rt),
        _ => driver(rt),
    }
}

/// The child: sleeps, then signals bit 0.
fn signaller(rt: &'static Runtime) -> i64 {
    let (Some(n), Some(timer)) = (rt.cap("notification"), rt.cap("timer")) else { return 2 };
    if TimerClient::new(rt, timer.cap).sleep(CHILD_SLEEP_NS).is_err() {
        return 3;
    }
    match NotificationClient::new(rt, n.cap).signal(0b1) {
        Ok(()) => 0,
        Err(_) => 4,
    }
}

/// What a typed `wait` gave: the bits in binary, or the error name.
fn bits_or_error(r: &Result<u64, CallError>) -> String {
    match r {
        Ok(bits) => format!("{bits:#b}"),
        Err(CallError::Transport(status)) => TransportError::from_u32(*status)
            .map(TransportError::name)
            .unwrap_or("unknown status")
            .to_string(),
        Err(CallError::Exception(e)) => format!("AppError (code {})", e.code),
        Err(e) => format!("client error ({e})"),
    }
}

fn driver(rt: &'static Runtime) -> i64 {
    let (Some(_), Some(ipc), Some(timer), Some(spawner)) =
        (rt.cap("console"), rt.cap("ipc"), rt.cap("timer"), rt.cap("spawner"))
    else {
        println!(rt, "notify: needs console, ipc, timer and spawner caps");
        return 2;
    };
    let timer = TimerClient::new(rt, timer.cap);
    let now = || timer.now().unwrap_or(0);
    let n = match IpcManagerClient::new(rt, ipc.cap).create_notification() {
        Ok(n) => n,
        Err(e) => {
            println!(rt, "notify: createNotification failed: {e}");
            return 3;
        }
    };
    let notification = NotificationClient::new(rt, n);
    let mut checks = Checks::new(rt, "notify");

    // 1. Nothing signalled: Timeout, and not before the deadline.
    let start = now();
    let r = notification.wait(0b1, TIMEOUT_NS);
    let waited = now().saturating_sub(start);
    let timed_out =
        matches!(r, Err(CallError::Transport(s)) if s == TransportError::Timeout.code());
    checks.check(
        timed_out && waited >= TIMEOUT_NS,
        format!(
            "wait for 0b1 with a 50 ms timeout, nothing signalled: {} after {} 50 ms",
            bits_or_error(&r),
            if waited >= TIMEOUT_NS { "at least" } else { "less than" }
        ),
    );

    // 2. A bit already set: the wait completes inside the cap_enter that
    // submits it.
    let signalled = notification.signal(0b100);
    let (at_once, got) = wait_without_blocking(rt, n, 0b100);
    checks.check(
        signalled.is_ok() && at_once && got == "0b100",
        format!(
            "signal 0b100, then wait for 0b100 without a deadline: {got}, {}",
            if at_once { "within the submitting cap_enter" } else { "not at once" }
        ),
    );

    // 3. Only the bits within the mask are taken.
    let signalled = notification.signal(0b1010);
    let low = notification.wait(0b10, FOREVER);
    let high = notification.wait(0b1000, FOREVER);
    checks.check(
        signalled.is_ok() && matches!(low, Ok(0b10)) && matches!(high, Ok(0b1000)),
        format!(
            "signal 0b1010, wait for 0b10 gives {}, then wait for 0b1000 gives {}",
            bits_or_error(&low),
            bits_or_error(&high)
        ),
    );

    // 4. Another process signals while the driver waits.
    let start = now();
    let grants = [
        Grant { name: "notification".into(), cap: n },
        Grant { name: "timer".into(), cap: timer.cap_id() },
    ];
    match ProcessSpawnerClient::new(rt, spawner.cap).spawn("notify", &["signaller"], &grants) {
        Ok(h) => {
            let child = ProcessHandleClient::new(rt, h);
            let r = notification.wait(0b1, FOREVER);
            let waited = now().saturating_sub(start);
            let code = child.wait();
            checks.check(
                matches!(r, Ok(0b1)) && waited >= CHILD_SLEEP_NS && matches!(code, Ok(0)),
                format!(
                    "wait for 0b1 while a child sleeps 30 ms and signals it: {} after {} 30 ms; \
                     child exited with code {}",
                    bits_or_error(&r),
                    if waited >= CHILD_SLEEP_NS { "at least" } else { "less than" },
                    match code {
                        Ok(c) => c.to_string(),
                        Err(e) => e.to_string(),
                    }
                ),
            );
            let _ = rt.release(child.cap_id());
        }
        Err(e) => checks.check(false, format!("spawn of the signaller failed: {e}")),
    }

    // 5. The child's bit was taken by that wait.
    let r = notification.wait(0b1, 10_000_000);
    checks.check(
        matches!(r, Err(CallError::Transport(s)) if s == TransportError::Timeout.code()),
        format!("wait for 0b1 again with a 10 ms timeout: {}", bits_or_error(&r)),
    );

    // 6. An empty mask is an application error.
    let r = notification.wait(0, FOREVER);
    checks.check(
        matches!(&r, Err(CallError::Exception(e)) if e.code == 2),
        format!("wait with mask 0: {}", bits_or_error(&r)),
    );

    let total = checks.passed + checks.failed;
    if checks.failed == 0 {
        println!(rt, "notify: all {total} checks passed");
        0
    } else {
        println!(rt, "notify: {} of {total} checks FAILED", checks.failed);
        1
    }
}

/// Submits `wait(mask, forever)` on the notification `n` and enters the
/// kernel once without waiting: returns whether its completion was posted
/// by that `cap_enter`, and the bits (or the error) it carried. A wait still
/// pending afterwards is waited for, so the ring stays consistent.
///
/// Every earlier call of this program was blocking and has been reaped, so
/// the only completion that can be in the CQ is this wait's.
fn wait_without_blocking(rt: &Runtime, n: u64, mask: u64) -> (bool, String) {
    let params = wire::encode::<wait_params::Owned>(|mut p| {
        p.set_mask(mask);
        p.set_timeout_ns(FOREVER);
        Ok(())
    })
    .unwrap_or_default();
    let mut results = [0u8; 256];
    let sqe = Sqe {
        opcode: OP_CALL,
        method: notification::method::WAIT,
        cap: n,
        interface_id: notification::INTERFACE_ID,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr: results.as_mut_ptr() as u64,
        results_len: results.len() as u32,
        user_data: rt.next_user_data(),
        ..Sqe::default()
    };
    if rt.ring().submit(&sqe).is_err() {
        return (false, "ring full".to_string());
    }
    let entered = rt.ring().enter(0, 0);
    let (at_once, cqe) = match rt.ring().pop() {
        Some(c) if entered.is_ok() && c.user_data == sqe.user_data => (true, Ok(c)),
        Some(c) => return (false, format!("unexpected completion {}", c.user_data)),
        None => (false, rt.wait_for(sqe.user_data)),
    };
    match cqe {
        Ok(c) => (at_once, decode_bits(c.status, &results, c.result_len)),
        Err(e) => (at_once, e.name().to_string()),
    }
}

/// The bits of a completed `wait`, or its error name.
fn decode_bits(status: u32, results: &[u8], len: u32) -> String {
    if status != STATUS_OK {
        return TransportError::from_u32(status)
            .map(TransportError::name)
            .unwrap_or("unknown status")
            .to_string();
    }
    let Some(bytes) = results.get(..len as usize) else { return "bad length".to_string() };
    let bits = wire::decode(bytes)
        .ok()
        .and_then(|m| m.get_root::<wait_results::Reader<'_>>().ok().map(|r| r.get_bits()));
    match bits {
        Some(bits) => format!("{bits:#b}"),
        None => "undecodable results".to_string(),
    }
}
