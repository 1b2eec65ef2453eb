//! isolation: proves that processes see neither each other's memory nor each
//! other's caps, and that a child holds exactly the caps it was granted.
//!
//! The parent (caps: console, spawner, vm) stores a secret in a static and in
//! an anonymous mapping, then starts itself twice with one grant (console):
//! - `child <spawner-capid>`: lists its CapSet (exactly `console`), reads the
//!   static (its own copy: 0), and calls the parent's spawner CapId, which
//!   names nothing in its own table (InvalidCap);
//! - `peek <addr>`: reads the parent's mapping address, which is unmapped in
//!   its own address space: it dies of a page fault.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::ToString;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use capos_rt::abi::TransportError;
use capos_rt::schema::{
    CallError, Grant, ProcessHandleClient, ProcessSpawnerClient, VirtualMemoryClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

static SECRET: AtomicU64 = AtomicU64::new(0);
const SECRET_VALUE: u64 = 0x5ec2_e7c0_ffee_0042;
const MAPPING: u64 = 0x0000_1000_0000_0000;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    match args.as_slice() {
        ["child", spawner] => child(rt, spawner.parse().unwrap_or(0)),
        ["peek", addr] => peek(addr.parse().unwrap_or(0)),
        _ => parent(rt),
    }
}

fn parent(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(spawner), Some(vm)) =
        (rt.cap("console"), rt.cap("spawner"), rt.cap("vm"))
    else {
        return 2;
    };
    SECRET.store(SECRET_VALUE, Ordering::SeqCst);
    let vm = VirtualMemoryClient::new(rt, vm.cap);
    let addr = match vm.map(MAPPING, 4096, true) {
        Ok(a) => a,
        Err(e) => {
            println!(rt, "isolation: map failed: {e}");
            return 3;
        }
    };
    // The mapping is ours: writing and reading it works.
    capos_rt::probe::write_u64(addr, SECRET_VALUE);
    if capos_rt::probe::read_u64(addr) != SECRET_VALUE {
        return 3;
    }
    println!(
        rt,
        "isolation: parent holds {} caps, secret set, mapped {addr:#x}",
        rt.caps().count()
    );

    let spawner_client = ProcessSpawnerClient::new(rt, spawner.cap);
    let grant = [Grant { name: "console".into(), cap: console.cap }];
    let mut failures = 0;
    for (mode, arg) in [("child", spawner.cap.to_string()), ("peek", addr.to_string())] {
        let handle = match spawner_client.spawn("isolation", &[mode, &arg], &grant) {
            Ok(h) => ProcessHandleClient::new(rt, h),
            Err(e) => {
                println!(rt, "isolation: spawn {mode} failed: {e}");
                return 4;
            }
        };
        match handle.wait() {
            Ok(code) => {
                println!(rt, "isolation: {mode} ended with code {code}");
                let expected = if mode == "child" { 0 } else { -256 - 14 };
                if code != expected {
                    failures += 1;
                }
            }
            Err(e) => {
                println!(rt, "isolation: wait for {mode} failed: {e}");
                failures += 1;
            }
        }
        let _ = rt.release(handle.cap_id());
    }
    if SECRET.load(Ordering::SeqCst) != SECRET_VALUE
        || capos_rt::probe::read_u64(addr) != SECRET_VALUE
    {
        failures += 1;
    }
    if failures == 0 {
        println!(rt, "isolation: memory and caps are private to each process");
        0
    } else {
        1
    }
}

fn child(rt: &'static Runtime, parent_spawner: u64) -> i64 {
    let names: Vec<_> = rt.caps().map(|(n, _)| n).collect();
    println!(rt, "isolation child: holds exactly {} cap(s): {}", names.len(), names.join(","));
    let secret = SECRET.load(Ordering::SeqCst);
    println!(rt, "isolation child: its copy of the secret reads {secret:#x}");
    let foreign = ProcessSpawnerClient::new(rt, parent_spawner).spawn("nop", &[], &[]);
    let verdict = match &foreign {
        Err(CallError::Transport(code)) => {
            TransportError::from_u32(*code).map(|e| e.name()).unwrap_or("unknown")
        }
        Err(_) => "other error",
        Ok(_) => "ok",
    };
    println!(rt, "isolation child: the parent's spawner CapId gives {verdict}");
    if names == ["console"] && secret == 0 && verdict == "InvalidCap" {
        0
    } else {
        1
    }
}

fn peek(addr: u64) -> i64 {
    // Reading another process's mapping address: unmapped here, so the CPU
    // faults and the kernel ends this process (and only it).
    let value = capos_rt::probe::read_u64(addr);
    value as i64
}
