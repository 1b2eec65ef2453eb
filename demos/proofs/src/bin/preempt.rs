//! preempt: proves preemptive scheduling across CPUs, per-process SSE state,
//! and the runtime's panic path.
//!
//! The parent (caps: console, spawner, timer, log) starts two `spin`
//! children, which loop forever without a system call, and four `sse`
//! children, which load distinct values into all sixteen XMM registers, run
//! a long register-only loop (long enough to be preempted many times by the
//! others) and check every register afterwards. It waits for the `sse`
//! children, kills the spinners (only possible if the scheduler preempts
//! them), and finally starts a `panic` child, whose panic message must reach
//! the log and whose exit code is 101.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::ToString;
use alloc::vec::Vec;

use capos_rt::schema::{Grant, ProcessHandleClient, ProcessSpawnerClient, TimerClient};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

/// Iterations of the register-only loop (a few hundred timer ticks).
const SSE_ITERATIONS: u64 = 20_000_000;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    match args.as_slice() {
        ["spin"] => loop {
            core::hint::spin_loop();
        },
        ["sse", seed] => i64::from(sse_check(seed.parse().unwrap_or(1), SSE_ITERATIONS) != 0),
        ["panic"] => panic!("deliberate panic in a child"),
        _ => parent(rt),
    }
}

/// Loads `seed + i` into XMMi for i in 0..16, loops `iterations` times
/// touching only RCX, then counts the registers that changed.
#[allow(unsafe_code)]
fn sse_check(seed: u64, iterations: u64) -> u64 {
    let bad: u64;
    // SAFETY: deliberate use of the SSE registers, which the kernel saves
    // and restores per process; the asm declares every register it clobbers
    // and touches no memory.
    unsafe {
        core::arch::asm!(
            "mov rax, {seed}",
            "movq xmm0, rax", "inc rax", "movq xmm1, rax", "inc rax", "movq xmm2, rax", "inc rax",
            "movq xmm3, rax", "inc rax", "movq xmm4, rax", "inc rax", "movq xmm5, rax", "inc rax",
            "movq xmm6, rax", "inc rax", "movq xmm7, rax", "inc rax", "movq xmm8, rax", "inc rax",
            "movq xmm9, rax", "inc rax", "movq xmm10, rax", "inc rax", "movq xmm11, rax", "inc rax",
            "movq xmm12, rax", "inc rax", "movq xmm13, rax", "inc rax", "movq xmm14, rax", "inc rax",
            "movq xmm15, rax",
            "2:",
            "dec rcx",
            "jnz 2b",
            "xor {bad}, {bad}",
            "mov rdx, {seed}",
            "movq rax, xmm0", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm1", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm2", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm3", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm4", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm5", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm6", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm7", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm8", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm9", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm10", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm11", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm12", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm13", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm14", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax", "inc rdx",
            "movq rax, xmm15", "cmp rax, rdx", "setne al", "movzx eax, al", "add {bad}, rax",
            seed = in(reg) seed,
            bad = out(reg) bad,
            inout("rcx") iterations => _,
            out("rax") _, out("rdx") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nomem, nostack),
        );
    }
    bad
}

fn parent(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(spawner), Some(timer), Some(log)) =
        (rt.cap("console"), rt.cap("spawner"), rt.cap("timer"), rt.cap("log"))
    else {
        return 2;
    };
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let grants = [Grant { name: "console".into(), cap: console.cap }];
    let start = |args: &[&str], grants: &[Grant]| spawner.spawn("preempt", args, grants).ok();

    let Some(spinners) = (0..2).map(|_| start(&["spin"], &grants)).collect::<Option<Vec<u64>>>()
    else {
        return 3;
    };
    let seeds: Vec<_> = (1..=4u64).map(|i| (i * 0x1111_0000_0000).to_string()).collect();
    let Some(workers) =
        seeds.iter().map(|s| start(&["sse", s], &grants)).collect::<Option<Vec<u64>>>()
    else {
        return 4;
    };
    let mut failures = 0;
    for (i, w) in workers.iter().enumerate() {
        let code = ProcessHandleClient::new(rt, *w).wait();
        if !matches!(code, Ok(0)) {
            println!(rt, "preempt: sse worker {i} ended with {code:?}");
            failures += 1;
        }
        let _ = rt.release(*w);
    }
    if failures == 0 {
        println!(rt, "preempt: 4 SSE workers kept all 16 XMM registers across preemption");
    }
    let _ = timer.sleep(50_000_000);
    for s in &spinners {
        let h = ProcessHandleClient::new(rt, *s);
        let killed = h.kill().is_ok() && matches!(h.wait(), Ok(-9));
        failures += u32::from(!killed);
        let _ = rt.release(*s);
    }
    if failures == 0 {
        println!(rt, "preempt: 2 CPU-bound spinners were preempted and killed");
    }
    let log_grant = [Grant { name: "log".into(), cap: log.cap }];
    match start(&["panic"], &log_grant).map(|h| (h, ProcessHandleClient::new(rt, h).wait())) {
        Some((h, Ok(101))) => {
            println!(rt, "preempt: panicking child exited with code 101");
            let _ = rt.release(h);
        }
        other => {
            println!(rt, "preempt: panicking child: {:?}", other.map(|(_, c)| c));
            failures += 1;
        }
    }
    i64::from(failures != 0)
}
