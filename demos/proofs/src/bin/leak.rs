//! leak: 1,000 spawn/wait/release cycles of `nop` must leave the free-frame
//! count and the kernel heap use exactly where they started; so must 1,000
//! spawn/join cycles of a thread (when the program holds `threads`).
//!
//! Ten warm-up cycles come first (the kernel's queues and tables reach their
//! working size). A child's kernel stack is freed just after it leaves its
//! CPU, which can be a moment after its exit is reported, so the final
//! reading is retried for up to two seconds until it settles.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_rt::schema::{
    ProcessHandleClient, ProcessSpawnerClient, SystemDescription, SystemInfoClient, TimerClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const CYCLES: u32 = 1000;

fn cycle(rt: &'static Runtime, spawner: &ProcessSpawnerClient<&'static Runtime>) -> bool {
    let Ok(h) = spawner.spawn("nop", &[], &[]) else { return false };
    let ok = matches!(ProcessHandleClient::new(rt, h).wait(), Ok(0));
    rt.release(h).is_ok() && ok
}

fn reading(info: &SystemDescription) -> (u64, u64) {
    (info.free_memory_bytes / 4096, info.kernel_heap_used_bytes)
}

fn thread_cycle() -> bool {
    matches!(capos_rt::thread::spawn(|| 7u32).map(|h| h.join()), Ok(Ok(7)))
}

/// Runs `cycle` 10 times to warm up, then `CYCLES` times, and compares the
/// free frames and kernel heap before and after; 0 if nothing was lost.
fn measure(
    rt: &'static Runtime,
    sysinfo: &SystemInfoClient<&'static Runtime>,
    timer: &TimerClient<&'static Runtime>,
    what: &str,
    mut cycle: impl FnMut() -> bool,
) -> i64 {
    for _ in 0..10 {
        if !cycle() {
            return 3;
        }
    }
    let _ = timer.sleep(20_000_000);
    let Ok(before) = sysinfo.info() else { return 4 };
    let (frames0, heap0) = reading(&before);
    println!(rt, "leak: before: {frames0} free frames, kernel heap {heap0} bytes in use");
    for i in 0..CYCLES {
        if !cycle() {
            println!(rt, "leak: cycle {i} failed");
            return 5;
        }
    }
    let mut after = (0, 0);
    for _ in 0..100 {
        let Ok(info) = sysinfo.info() else { return 6 };
        after = reading(&info);
        if after == (frames0, heap0) {
            break;
        }
        let _ = timer.sleep(20_000_000);
    }
    println!(
        rt,
        "leak: after {CYCLES} {what} cycles: {} free frames, kernel heap {} bytes in use",
        after.0,
        after.1
    );
    if after == (frames0, heap0) {
        println!(rt, "leak: no frame and no heap byte lost");
        0
    } else {
        println!(
            rt,
            "leak: lost {} frame(s) and {} heap byte(s)",
            frames0 as i64 - after.0 as i64,
            after.1 as i64 - heap0 as i64
        );
        1
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(spawner), Some(sysinfo), Some(timer)) =
        (rt.cap("spawner"), rt.cap("sysinfo"), rt.cap("timer"))
    else {
        return 2;
    };
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let sysinfo = SystemInfoClient::new(rt, sysinfo.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let code = measure(rt, &sysinfo, &timer, "spawn/exit", || cycle(rt, &spawner));
    if code != 0 || rt.cap("threads").is_none() {
        return code;
    }
    measure(rt, &sysinfo, &timer, "thread spawn/join", thread_cycle)
}
