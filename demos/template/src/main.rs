//! The capOS application template. Copy this crate (`demos/template`) to
//! start a new program:
//!
//! 1. copy the folder, rename the package and binary in `Cargo.toml`, and add
//!    the new folder to the workspace `members` in the root `Cargo.toml`;
//! 2. build and boot it with `make run-app APP=<name>` (the program runs as
//!    init's only child with the caps `console`, `log` and `timer`);
//! 3. a program gets exactly the caps it is granted: look them up by name
//!    with `rt.cap("...")` and call them through the typed clients in
//!    `capos_rt::schema` (generated from `schema/capos.capnp`).
//!
//! `main` returns the exit code. A panic is reported on the `log` (or
//! `console`) cap and ends the process with code 101.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_rt::schema::{LogLevel, LogSinkClient};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    println!(rt, "template: running with {} cap(s)", rt.caps().count());
    for (name, cap) in rt.caps() {
        println!(rt, "template:   {name} -> interface {:#018x}", cap.interface_id);
    }
    if let Some(log) = rt.cap("log") {
        let _ = LogSinkClient::new(rt, log.cap).write(LogLevel::Info, "template says hello");
    }
    0
}
