//! init: the first process.
//!
//! It receives the bootstrap caps from the kernel. Normally it runs the boot
//! manifest (`manifest.bin`, from the `boot` cap): it checks it again and
//! fails closed with a named error, then starts the services in dependency
//! order with exactly their grants, collects their exports, and restarts
//! them per policy (see `supervisor.rs`).
//!
//! Given an argument (kernel option `init=`), it instead runs the programs
//! named there one after another, each with exactly the caps the argument
//! grants it, and reports each exit code from the child's `ProcessHandle`
//! (how the proofs start single programs). The argument reads
//! `program:cap,cap+program:cap`, e.g. `hello:console,log+isolation:console,spawner`
//! (`+` separates programs: GRUB reserves `;`).
//! init exits with 0 when every program exited with 0, else with 1.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use capos_rt::abi::TransportError;
use capos_rt::schema::{
    BootPackageClient, CallError, Grant, ProcessHandleClient, ProcessSpawnerClient,
};
use capos_rt::{println, Runtime};

mod supervisor;

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    if rt.args().all(str::is_empty) {
        return run_manifest(rt);
    }
    run_programs(rt)
}

/// Why a call failed, a transport error by its name: `QuotaExceeded (a
/// resource profile limit was reached)`.
fn reason(error: &CallError) -> String {
    match error {
        CallError::Transport(code) => match TransportError::from_u32(*code) {
            Some(e) => alloc::format!("{} ({})", e.name(), e.meaning()),
            None => alloc::format!("transport status {code}"),
        },
        other => other.to_string(),
    }
}

/// Runs the boot manifest.
fn run_manifest(rt: &'static Runtime) -> i64 {
    let Some(boot) = rt.cap("boot") else {
        println!(rt, "init: no `boot` cap; nothing to run");
        return 1;
    };
    let boot = BootPackageClient::new(rt, boot.cap);
    let (bytes, binaries) = match (boot.manifest(), boot.binaries()) {
        (Ok(m), Ok(b)) => (m, b),
        _ => {
            println!(rt, "init: cannot read the boot package");
            return 1;
        }
    };
    if bytes.is_empty() {
        println!(rt, "init: no manifest in the boot package; nothing to run");
        return 0;
    }
    // Checked again here: a manifest damaged after the build fails closed.
    let context = capos_config::Context::new(binaries.iter().cloned())
        .with_kernel_sources(rt.caps().map(|(name, _)| name));
    let checked =
        capos_config::decode(&bytes).map_err(|e| alloc::vec![e.to_string()]).and_then(|m| {
            capos_config::validate(&m, &context)
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            let order = capos_config::start_order(&m).map_err(|e| alloc::vec![e.to_string()])?;
            Ok((m, order))
        });
    let (m, order) = match checked {
        Ok(ok) => ok,
        Err(errors) => {
            for e in errors {
                println!(rt, "init: manifest rejected: {e}");
            }
            println!(rt, "init: halting: nothing started");
            return 2;
        }
    };
    let names: Vec<&str> = order.iter().map(|&i| m.services[i].name.as_str()).collect();
    println!(
        rt,
        "init: manifest: {} service(s), start order {}",
        m.services.len(),
        names.join(", ")
    );
    match supervisor::Supervisor::new(rt, &m) {
        Ok(s) => s.run(&order),
        Err(e) => {
            println!(rt, "init: cannot supervise: {e}");
            1
        }
    }
}

/// Runs the programs named in init's argument (see the module docs).
fn run_programs(rt: &'static Runtime) -> i64 {
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
                println!(rt, "init: cannot start {program}: {}", reason(&e));
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
