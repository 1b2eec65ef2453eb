//! echo-server: serves `Echo` on the endpoint it was granted.
//!
//! Caps: `console`, `endpoint` (the serving side of an endpoint). Every call
//! must come through a cap minted for `Echo` with the cookie
//! [`CLIENT_COOKIE`]; a call that does not is refused with an application
//! error and reported as a mismatch. A call whose data is [`HANG`] is kept
//! and never answered: its caller waits until this process dies, when the
//! kernel completes it with `Disconnected`.
//!
//! The server runs until its endpoint fails (it is normally killed by its
//! parent first).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;

use capos_rt::schema::{dispatch_echo, echo, CapException, DispatchError};
use capos_rt::{ipc, println, Runtime};
use ipc_programs::{Echo, CLIENT_COOKIE};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    let Some(endpoint) = rt.cap("endpoint") else {
        println!(rt, "echo-server: holds no `endpoint` cap");
        return 2;
    };
    println!(rt, "echo-server: serving Echo");
    let mut server = Echo::default();
    let mut held: Vec<u64> = Vec::new();
    let mut first = true;
    let end = ipc::serve_with(rt, endpoint.cap, |request| {
        let h = &request.header;
        if h.cookie != CLIENT_COOKIE || h.interface_id != echo::INTERFACE_ID {
            println!(
                rt,
                "echo-server: mismatch: call with cookie {:#x} for interface {:#x}",
                h.cookie,
                h.interface_id
            );
            return Some(Err(DispatchError::Exception(CapException {
                code: 1,
                message: format!("no Echo cap was minted with cookie {:#x}", h.cookie),
            })));
        }
        if first {
            first = false;
            println!(rt, "echo-server: calls arrive for Echo with cookie {:#x}", h.cookie);
        }
        let outcome = dispatch_echo(&mut server, h.method, &request.params);
        if outcome.is_ok() && server.last_was_hang {
            held.push(request.call_id());
            println!(rt, "echo-server: keeping call {} unanswered", request.call_id());
            return None;
        }
        Some(outcome)
    });
    println!(rt, "echo-server: endpoint failed with {end} after {} calls", server.calls);
    1
}
