//! term: reads lines from the `terminal` cap and reports each, to prove the
//! line discipline. `password` reads one line with echo off; `cancel` calls
//! `cancelRead` (with no read of its own pending); `quit` exits.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_rt::schema::capos_capnp::ReadStatus;
use capos_rt::schema::TerminalSessionClient;
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    let Some(terminal) = rt.cap("terminal") else {
        println!(rt, "term: no terminal cap");
        return 2;
    };
    let term = TerminalSessionClient::new(rt, terminal.cap);
    loop {
        let reply = match term.read_line("term> ", true, 4096) {
            Ok(r) => r,
            Err(e) => {
                println!(rt, "term: readLine failed: {e}");
                return 1;
            }
        };
        match reply.status {
            ReadStatus::Ok => {}
            ReadStatus::Cancelled => {
                println!(rt, "term: cancelled");
                continue;
            }
            ReadStatus::TooLong => {
                println!(rt, "term: too long");
                continue;
            }
            ReadStatus::InvalidUtf8 => {
                println!(rt, "term: invalid UTF-8");
                continue;
            }
        }
        match reply.line.as_str() {
            "quit" => return 0,
            "cancel" => match term.cancel_read() {
                Ok(c) => println!(rt, "term: cancelRead with no read of its own pending: {c}"),
                Err(e) => println!(rt, "term: cancelRead failed: {e}"),
            },
            "password" => match term.read_line("password: ", false, 128) {
                Ok(p) if p.status == ReadStatus::Ok => {
                    println!(rt, "term: password has {} bytes", p.line.len())
                }
                other => println!(rt, "term: password read failed: {:?}", other.map(|p| p.status)),
            },
            line => println!(rt, "term: got \"{line}\" ({} bytes)", line.len()),
        }
    }
}
