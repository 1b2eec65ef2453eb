//! init: the first process.
//!
//! It receives the bootstrap caps from the kernel and, for now, runs the
//! programs named in its argument one after another, each with exactly the
//! caps the argument grants it, and reports each exit code from the child's
//! `ProcessHandle`. The argument (kernel option `init=`) reads
//! `program:cap,cap+program:cap`, e.g. `hello:console,log+isolation:console,spawner`
//! (`+` separates programs: GRUB reserves `;`).
//! init exits with 0 when every program exited with 0, else with 1.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use capos_rt::schema::{Grant, ProcessHandleClient, ProcessSpawnerClient};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    let Some(spawner) = rt.cap("spawner") else {
        println!(rt, "init: no `spawner` cap; nothing to run");
        return 1;
    };
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let mut failures = 0;
    for spec in rt.args().flat_map(|a| a.split('+')).filter(|s| !s.is_empty()) {
        let (program, caps) = spec.split_once(':').unwrap_or((spec, ""));
        let mut grants = Vec::new();
        for name in caps.split(',').filter(|c| !c.is_empty()) {
            match rt.cap(name) {
                Some(c) => grants.push(Grant { name: String::from(name), cap: c.cap }),
                None => {
                    println!(
                        rt,
                        "init: cannot grant `{name}` to {program}: init holds no such cap"
                    );
                    failures += 1;
                }
            }
        }
        println!(rt, "init: starting {program} with {} cap(s)", grants.len());
        let handle = match spawner.spawn(program, &[], &grants) {
            Ok(h) => h,
            Err(e) => {
                println!(rt, "init: cannot start {program}: {e}");
                failures += 1;
                continue;
            }
        };
        let handle = ProcessHandleClient::new(rt, handle);
        match handle.wait() {
            Ok(code) => {
                println!(rt, "init: {program} exited with code {code}");
                if code != 0 {
                    failures += 1;
                }
            }
            Err(e) => {
                println!(rt, "init: waiting for {program} failed: {e}");
                failures += 1;
            }
        }
        let _ = rt.release(handle.cap_id());
    }
    if failures == 0 {
        0
    } else {
        1
    }
}
