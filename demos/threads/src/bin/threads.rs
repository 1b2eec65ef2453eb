//! threads: proves threads, the runtime's `Mutex` and `Condvar` on
//! `ParkSpace`, timed sleeps from threads, and the refusals of the thread
//! and parking interfaces.
//!
//! Caps: `console`, `timer`, `threads` (ThreadSpawner), `park` (ParkSpace),
//! `vm` (VirtualMemory, for the TLB shootdown check).
//!
//! Output: one `threads: <case>: <result>` line per check (a wrong result
//! is printed as `threads: FAILED <case>: <result>`), then
//! `threads: all <n> checks passed` (exit code 0) or
//! `threads: <m> of <n> checks FAILED` (exit code 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use capos_rt::abi::{TransportError, MAX_THREADS};
use capos_rt::schema::{
    CallError, ParkResult, ParkSpaceClient, ThreadEnd, ThreadHandleClient, ThreadSpawnerClient,
    TimerClient, VirtualMemoryClient,
};
use capos_rt::sync::{Condvar, Mutex};
use capos_rt::thread::{self, ThreadError};
use capos_rt::{println, Runtime};
use thread_programs::Checks;

capos_rt::entry!(main);

const THREADS: u64 = 8;
const INCREMENTS: u64 = 100_000;
const HANDOFFS: u64 = 100;
const SLEEP_NS: u64 = 30_000_000;

fn error_name(r: &Result<impl core::fmt::Debug, CallError>) -> String {
    match r {
        Ok(v) => format!("ok ({v:?})"),
        Err(CallError::Transport(s)) => {
            TransportError::from_u32(*s).map_or(format!("status {s}"), |e| String::from(e.name()))
        }
        Err(e) => format!("{e}"),
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let mut c = Checks::new(rt, "threads");
    let (Some(timer), Some(park), Some(spawner)) =
        (rt.cap("timer"), rt.cap("park"), rt.cap("threads"))
    else {
        println!(rt, "threads: needs the caps timer, park and threads");
        return 2;
    };
    counter(&mut c);
    handoff(&mut c);
    sleeps(&mut c, timer.cap);
    hostile_park(&mut c, park.cap);
    hostile_threads(&mut c, spawner.cap);
    match rt.cap("vm") {
        Some(vm) => shootdown(&mut c, vm.cap),
        None => c.check("TLB shootdown", false, "no vm cap"),
    }
    if c.verdict() {
        leave_threads_behind(rt);
        0
    } else {
        1
    }
}

/// 8 threads add 1 to a shared counter 100,000 times each under the Mutex;
/// each returns its own value.
fn counter(c: &mut Checks) {
    let total = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::new();
    for i in 0..THREADS {
        let total = total.clone();
        let h = thread::spawn(move || {
            for _ in 0..INCREMENTS {
                *total.lock() += 1;
            }
            1000 + i
        });
        match h {
            Ok(h) => handles.push((i, h)),
            Err(e) => c.check("spawn", false, &format!("{e}")),
        }
    }
    let mut own = 0;
    for (i, h) in handles {
        match h.join() {
            Ok(v) if v == 1000 + i => own += 1,
            Ok(v) => c.check("join", false, &format!("thread {i} returned {v}")),
            Err(e) => c.check("join", false, &format!("thread {i}: {e}")),
        }
    }
    let sum = *total.lock();
    c.check(
        &format!("{THREADS} threads x {INCREMENTS} increments under the Mutex"),
        sum == THREADS * INCREMENTS,
        &format!("total {sum}"),
    );
    c.check("join returns each thread's own value", own == THREADS, &format!("{own} of {THREADS}"));
}

/// A producer hands 100 values one at a time to a consumer through a slot
/// guarded by a Mutex and two Condvar signals.
fn handoff(c: &mut Checks) {
    struct Slot {
        value: Option<u64>,
    }
    let shared = Arc::new((Mutex::new(Slot { value: None }), Condvar::new(), Condvar::new()));
    let consumer = {
        let shared = shared.clone();
        thread::spawn(move || {
            let (lock, full, empty) = &*shared;
            let mut got = Vec::new();
            for _ in 0..HANDOFFS {
                let mut slot = lock.lock();
                while slot.value.is_none() {
                    slot = full.wait(slot);
                }
                got.push(slot.value.take().unwrap_or(0));
                empty.notify_one();
            }
            got
        })
    };
    let (lock, full, empty) = &*shared;
    for v in 0..HANDOFFS {
        let mut slot = lock.lock();
        while slot.value.is_some() {
            slot = empty.wait(slot);
        }
        slot.value = Some(v);
        full.notify_one();
    }
    let got =
        consumer.map_err(|e| format!("{e}")).and_then(|h| h.join().map_err(|e| format!("{e}")));
    let expected: Vec<u64> = (0..HANDOFFS).collect();
    match got {
        Ok(v) => c.check(
            &format!("Condvar handoff of {HANDOFFS} values"),
            v == expected,
            if v == expected { "all arrived in order" } else { "values lost or reordered" },
        ),
        Err(e) => c.check("Condvar handoff", false, &e),
    }
}

/// A thread sleeps 30 ms (relative), then until a deadline 30 ms ahead
/// (absolute); neither may end early.
fn sleeps(c: &mut Checks, timer: u64) {
    let h = thread::spawn(move || {
        let t = TimerClient::new(capos_rt::runtime(), timer);
        let t0 = t.now().unwrap_or(0);
        let _ = t.sleep(SLEEP_NS);
        let t1 = t.now().unwrap_or(0);
        let deadline = t1 + SLEEP_NS;
        let _ = t.sleep_until(deadline);
        let t2 = t.now().unwrap_or(0);
        // A deadline in the past returns at once.
        let _ = t.sleep_until(t0);
        (t1 - t0, t2, deadline)
    });
    match h.map(|h| h.join()) {
        Ok(Ok((slept, woke, deadline))) => {
            c.check(
                "a thread's relative sleep of 30 ms",
                slept >= SLEEP_NS,
                &format!("woke after at least 30 ms: {}", slept >= SLEEP_NS),
            );
            c.check(
                "a thread's sleep until a deadline 30 ms ahead",
                woke >= deadline,
                &format!("woke at or after the deadline: {}", woke >= deadline),
            );
        }
        Ok(Err(e)) => c.check("sleeping thread", false, &format!("{e}")),
        Err(e) => c.check("sleeping thread", false, &format!("{e}")),
    }
}

/// ParkSpace refusals and timeouts.
fn hostile_park(c: &mut Checks, park: u64) {
    let p = ParkSpaceClient::new(capos_rt::runtime(), park);
    let r = p.wait(0x5000_0000_0000, 0, u64::MAX);
    c.check(
        "ParkSpace wait on an unmapped address",
        is(&r, TransportError::BadPointer),
        &error_name(&r),
    );
    let r = p.wait(0xffff_ffff_8000_0000, 0, u64::MAX);
    c.check(
        "ParkSpace wait on a kernel address",
        is(&r, TransportError::BadPointer),
        &error_name(&r),
    );
    let word = AtomicU32::new(7);
    let addr = word.as_ptr() as u64;
    let r = p.wait(addr + 1, 7, u64::MAX);
    c.check(
        "ParkSpace wait on a misaligned address",
        is(&r, TransportError::Misaligned),
        &error_name(&r),
    );
    let r = p.wait(addr, 8, u64::MAX);
    c.check(
        "ParkSpace wait for a value the word does not hold",
        matches!(r, Ok(ParkResult::Mismatch)),
        &error_name(&r),
    );
    let r = p.wait(addr, 7, 5_000_000);
    c.check(
        "ParkSpace wait with a 5 ms timeout",
        matches!(r, Ok(ParkResult::TimedOut)),
        &error_name(&r),
    );
    let r = p.wake(addr, 1);
    c.check("ParkSpace wake with nobody parked", matches!(r, Ok(0)), &error_name(&r));
}

fn is<T>(r: &Result<T, CallError>, e: TransportError) -> bool {
    matches!(r, Err(CallError::Transport(s)) if *s == e.code())
}

/// Thread refusals: the limit, a second join, bad entry and stack.
fn hostile_threads(c: &mut Checks, spawner: u64) {
    let rt = capos_rt::runtime();
    // Threads that wait until released, spawned until the kernel refuses.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let mut waiting = Vec::new();
    let refusal = loop {
        let gate = gate.clone();
        let h = thread::spawn(move || {
            let (open, cv) = &*gate;
            let mut g = open.lock();
            while !*g {
                g = cv.wait(g);
            }
            0u8
        });
        match h {
            Ok(h) => waiting.push(h),
            Err(e) => break e,
        }
        if waiting.len() > MAX_THREADS as usize {
            break ThreadError::Killed;
        }
    };
    let spawned = waiting.len();
    c.check(
        &format!("spawning threads past the limit of {MAX_THREADS}"),
        refusal.transport() == Some(TransportError::LimitReached)
            && spawned == MAX_THREADS as usize - 1,
        &format!("{} after {spawned} more", refusal.transport().map_or("no refusal", |e| e.name())),
    );
    *gate.0.lock() = true;
    gate.1.notify_all();
    let joined = waiting.into_iter().filter_map(|h| h.join().ok()).count();
    c.check(
        "the waiting threads end once released",
        joined == spawned,
        &format!("{joined} joined"),
    );

    // Raw threads through the ThreadSpawner: one that exits at once (joined
    // twice), one entering unmapped code, one with an unmapped stack.
    let ts = ThreadSpawnerClient::new(rt, spawner);
    let mut stack = vec![0u128; 256];
    let top = stack.as_mut_ptr_range().end as u64;
    let exit_now = capos_rt::syscall::thread_exit as fn(i64) -> ! as usize as u64;
    match ts.spawn(exit_now, 42, top, 0) {
        Ok(h) => {
            let th = ThreadHandleClient::new(rt, h);
            let first = th.join().map(|r| (r.value, r.end));
            c.check(
                "join of a thread that called thread_exit(42)",
                matches!(first, Ok((42, ThreadEnd::Returned))),
                &format!("{first:?}"),
            );
            let second = th.join().map(|r| r.value);
            c.check(
                "joining the same thread twice",
                is(&second, TransportError::BadState),
                &error_name(&second),
            );
            let _ = rt.release(h);
        }
        Err(e) => c.check("raw spawn", false, &format!("{e}")),
    }
    let r = ts.spawn(exit_now, 0, 0xffff_8000_0000_0000, 0);
    c.check("spawn with a kernel-half stack", is(&r, TransportError::BadPointer), &error_name(&r));
    for (case, entry, stack_top) in [
        ("a thread entering unmapped code", 0x1000u64, top),
        (
            "a thread with an unmapped stack",
            uses_stack as extern "C" fn(u64) -> ! as usize as u64,
            0x2000u64,
        ),
    ] {
        match ts.spawn(entry, 0, stack_top, 0) {
            Ok(h) => {
                let r = ThreadHandleClient::new(rt, h).join().map(|r| r.end);
                c.check(case, matches!(r, Ok(ThreadEnd::Faulted)), &format!("joined: {r:?}"));
                let _ = rt.release(h);
            }
            Err(e) => c.check(case, false, &format!("{e}")),
        }
    }
    drop(stack);
    c.check("the process goes on after its threads faulted", true, "ok");
}

/// A thread body that needs its stack (so an unmapped one faults).
extern "C" fn uses_stack(arg: u64) -> ! {
    let words = core::hint::black_box([arg; 64]);
    capos_rt::syscall::thread_exit(words[3] as i64)
}

/// A thread keeps reading a page while another thread unmaps it: once the
/// unmap returned, the reader's next read must fault (its CPU's TLB was
/// shot down), not read the freed frame through a stale translation.
fn shootdown(c: &mut Checks, vm: u64) {
    let rt = capos_rt::runtime();
    let vmc = VirtualMemoryClient::new(rt, vm);
    let Ok(addr) = vmc.map(0, 4096, true) else {
        c.check("TLB shootdown: map", false, "refused");
        return;
    };
    capos_rt::probe::write_u64(addr, 7);
    let (reading, unmapped) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let reader = {
        let (reading, unmapped) = (reading.clone(), unmapped.clone());
        thread::spawn(move || {
            let mut sum = 0u64;
            loop {
                sum = sum.wrapping_add(capos_rt::probe::read_u64(addr));
                reading.store(true, Ordering::Release);
                if unmapped.load(Ordering::Acquire) {
                    return sum.wrapping_add(capos_rt::probe::read_u64(addr));
                }
            }
        })
    };
    let Ok(reader) = reader else {
        c.check("TLB shootdown: spawn", false, "refused");
        return;
    };
    while !reading.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let unmap = vmc.unmap(addr, 4096);
    unmapped.store(true, Ordering::Release);
    let r = reader.join();
    c.check(
        "a thread reading a page another thread unmapped",
        unmap.is_ok() && matches!(r, Err(ThreadError::Faulted)),
        &match r {
            Err(ThreadError::Faulted) => String::from("Faulted"),
            Err(e) => format!("{e}"),
            Ok(v) => format!("read {v} after the unmap"),
        },
    );
}

/// Starts a thread that spins forever and one parked forever, then lets
/// `main` return: the process's exit must end both (init then reports the
/// exit).
fn leave_threads_behind(rt: &'static Runtime) {
    let spinning = thread::spawn(|| loop {
        core::hint::spin_loop();
    });
    let parked = thread::spawn(|| {
        let never = Mutex::new(false);
        let cv = Condvar::new();
        let mut g = never.lock();
        loop {
            g = cv.wait(g);
        }
    });
    if let (Ok(s), Ok(p)) = (spinning, parked) {
        println!(rt, "threads: exiting with a spinning and a parked thread still running");
        core::mem::forget(s);
        core::mem::forget(p);
    }
}
