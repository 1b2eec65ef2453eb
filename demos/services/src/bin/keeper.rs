//! keeper: a background program that keeps the caps a shell granted it and
//! uses them until they stop working — how the login proof shows that a
//! session's caps end with the session.
//!
//! Every 200 ms it writes `keeper: tick N` through `console` (sleeping on
//! `timer`). When a call fails it exits: with code 0 if the failure was
//! `Revoked` (the session that granted the caps ended), 3 for any other
//! failure, 2 without the caps. The kernel logs the exit code.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use capos_rt::abi::TransportError;
use capos_rt::schema::{CallError, ConsoleClient, TimerClient};
use capos_rt::Runtime;

capos_rt::entry!(main);

fn code_of(e: &CallError) -> i64 {
    match e {
        CallError::Transport(code) if *code == TransportError::Revoked.code() => 0,
        _ => 3,
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(timer)) = (rt.cap("console"), rt.cap("timer")) else { return 2 };
    let console = ConsoleClient::new(rt, console.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let mut tick = 0u64;
    loop {
        tick += 1;
        if let Err(e) = console.write_line(&alloc::format!("keeper: tick {tick}")) {
            return code_of(&e);
        }
        if let Err(e) = timer.sleep(200_000_000) {
            return code_of(&e);
        }
    }
}
