//! The scheduler proofs: weighted fair scheduling, the tickless idle CPU, and
//! measures how CPU-bound work scales over threads and CPUs.
//!
//! Caps: `console`, `timer`, `threads` (ThreadSpawner), `sched`
//! (SchedulingPolicy). Each part is a binary of its own (init starts
//! programs without arguments):
//!
//! - `fair` (run on one CPU): two CPU-bound threads with weights 1 and 3
//!   count loop iterations for a second; the ratio of their counts (and
//!   of the CPU time the kernel charged them) must be 3 within 10%.
//! - `tickless`: the timer interrupts all CPUs take during an idle second
//!   (must be under 20, where a periodic 100 Hz tick gave 100 per CPU), and
//!   during half a second in which one CPU-bound thread more than there are
//!   CPUs compete (the slice timer is back: at least 20); on two CPUs, also
//!   that a CPU left idle takes a queued thread from the busy one.
//! - `scale`: the same work done by one thread, then split over two;
//!   prints both times (guest TSC) and the speedup.
//!
//! Output: `sched: <case>: <result>` lines (`sched: FAILED <case>: ...` for
//! a wrong one), then `sched: all <n> checks passed` or
//! `sched: <m> of <n> checks FAILED`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use capos_rt::abi::TransportError;
use capos_rt::schema::capos_capnp::scheduling_policy::set_weight_params;
use capos_rt::schema::{
    scheduling_policy, wire, CallError, SchedulingPolicyClient, ThreadHandleClient, TimerClient,
};
use capos_rt::thread::{self, JoinHandle};
use capos_rt::{println, Runtime};

/// A proof's checks: each prints `PREFIX: <case>: <result>` (or
/// `PREFIX: FAILED <case>: ...`), and [`Checks::verdict`] the summary.
pub struct Checks {
    /// The runtime, for output and calls.
    pub rt: &'static Runtime,
    prefix: &'static str,
    run: u32,
    failed: u32,
}

impl Checks {
    /// No checks run yet; lines start with `prefix`.
    pub fn new(rt: &'static Runtime, prefix: &'static str) -> Checks {
        Checks { rt, prefix, run: 0, failed: 0 }
    }

    /// Records one check and prints its line.
    pub fn check(&mut self, case: &str, ok: bool, result: &str) {
        self.run += 1;
        let prefix = self.prefix;
        if ok {
            println!(self.rt, "{prefix}: {case}: {result}");
        } else {
            self.failed += 1;
            println!(self.rt, "{prefix}: FAILED {case}: {result}");
        }
    }

    /// Prints `all <n> checks passed` or `<m> of <n> checks FAILED`;
    /// whether all passed.
    pub fn verdict(&self) -> bool {
        let prefix = self.prefix;
        if self.failed == 0 {
            println!(self.rt, "{prefix}: all {} checks passed", self.run);
        } else {
            println!(self.rt, "{prefix}: {} of {} checks FAILED", self.failed, self.run);
        }
        self.failed == 0
    }
}

struct Caps {
    timer: u64,
    sched: u64,
}

/// Which proof to run.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// Weighted fairness on one CPU.
    Fair,
    /// Tickless idle, and the slice timer under competition.
    Tickless,
    /// The scale benchmark.
    Scale,
}

/// Runs `part`; the exit code.
pub fn run(rt: &'static Runtime, part: Part) -> i64 {
    let (Some(timer), Some(sched)) = (rt.cap("timer"), rt.cap("sched")) else {
        println!(rt, "sched: needs the caps timer and sched");
        return 2;
    };
    let caps = Caps { timer: timer.cap, sched: sched.cap };
    let mut c = Checks::new(rt, "sched");
    match part {
        Part::Fair => fair(&mut c, &caps),
        Part::Tickless => tickless(&mut c, &caps),
        Part::Scale => scale(&mut c),
    }
    if c.verdict() {
        0
    } else {
        1
    }
}

/// A thread counting loop iterations into `count` from `go` until `stop`.
fn counter(
    go: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> Option<JoinHandle<()>> {
    let (go, stop, count) = (go.clone(), stop.clone(), count.clone());
    thread::spawn(move || {
        while !go.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        while !stop.load(Ordering::Relaxed) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
    .ok()
}

fn set_weight(rt: &Runtime, sched: u64, handle: u64, weight: u32) -> bool {
    set_weight_raw(rt, sched, &[handle], weight).is_ok()
}

/// `SchedulingPolicy.setWeight(weight)` sending `caps` (copied).
fn set_weight_raw(
    rt: &Runtime,
    sched: u64,
    caps: &[u64],
    weight: u32,
) -> Result<(), TransportError> {
    let params = wire::encode::<set_weight_params::Owned>(|mut p| {
        p.set_weight(weight);
        Ok(())
    })
    .map_err(|_| TransportError::Malformed)?;
    let caps: Vec<(u64, bool)> = caps.iter().map(|&c| (c, false)).collect();
    let mut results = [0u8; 64];
    capos_rt::ipc::call_with_caps(
        rt,
        sched,
        scheduling_policy::INTERFACE_ID,
        scheduling_policy::method::SET_WEIGHT,
        &params,
        &caps,
        &mut results,
    )
    .map(|_| ())
}

fn result_name(r: Result<(), TransportError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(e) => e.name(),
    }
}

/// What `SchedulingPolicy` refuses.
fn policy_refusals(c: &mut Checks, caps: &Caps, thread: u64) {
    let rt = c.rt;
    let r = set_weight_raw(rt, caps.sched, &[thread], 0);
    c.check("setWeight 0", r == Err(TransportError::AppError), result_name(r));
    let r = set_weight_raw(rt, caps.sched, &[thread], 1025);
    c.check("setWeight 1025", r == Err(TransportError::AppError), result_name(r));
    let r = set_weight_raw(rt, caps.sched, &[], 3);
    c.check("setWeight without a ThreadHandle", r == Err(TransportError::AppError), result_name(r));
    let r = set_weight_raw(rt, caps.sched, &[caps.timer], 3);
    c.check(
        "setWeight with a Timer cap instead",
        r == Err(TransportError::AppError),
        result_name(r),
    );
    let r = SchedulingPolicyClient::new(rt, caps.sched).cpu_stats(999).map(|s| s.online);
    let ok = matches!(&r, Err(CallError::Exception(e)) if e.code == 1);
    c.check("cpuStats of cpu 999", ok, if ok { "AppError (code 1, not found)" } else { "wrong" });
}

fn cpu_ns(rt: &Runtime, handle: u64) -> u64 {
    ThreadHandleClient::new(rt, handle).info().map_or(0, |i| i.cpu_ns)
}

/// Ratio `a / b` in thousandths.
fn milli(a: u64, b: u64) -> u64 {
    (a as u128 * 1000 / (b as u128).max(1)) as u64
}

fn fair(c: &mut Checks, caps: &Caps) {
    let rt = c.rt;
    let timer = TimerClient::new(rt, caps.timer);
    let (go, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let counts = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let (Some(light), Some(heavy)) =
        (counter(&go, &stop, &counts[0]), counter(&go, &stop, &counts[1]))
    else {
        c.check("spawn", false, "refused");
        return;
    };
    let weights_set = set_weight(rt, caps.sched, light.handle_cap(), 1)
        && set_weight(rt, caps.sched, heavy.handle_cap(), 3);
    c.check("SchedulingPolicy.setWeight of two threads to 1 and 3", weights_set, "ok");
    policy_refusals(c, caps, light.handle_cap());
    let cpu0 = [cpu_ns(rt, light.handle_cap()), cpu_ns(rt, heavy.handle_cap())];
    go.store(true, Ordering::Release);
    let _ = timer.sleep(1_000_000_000);
    let work = [counts[0].load(Ordering::Relaxed), counts[1].load(Ordering::Relaxed)];
    let cpu1 = [cpu_ns(rt, light.handle_cap()), cpu_ns(rt, heavy.handle_cap())];
    stop.store(true, Ordering::Release);
    let _ = light.join();
    let _ = heavy.join();
    let work_ratio = milli(work[1], work[0]);
    let cpu_ratio = milli(cpu1[1] - cpu0[1], cpu1[0] - cpu0[0]);
    println!(
        rt,
        "sched: weight 1 thread: {} iterations, {} ms CPU; weight 3 thread: {} iterations, {} ms CPU",
        work[0],
        (cpu1[0] - cpu0[0]) / 1_000_000,
        work[1],
        (cpu1[1] - cpu0[1]) / 1_000_000
    );
    let ok = (2700..=3300).contains(&work_ratio);
    c.check(
        "work ratio of weights 3:1 on one CPU",
        ok,
        &format!(
            "{}.{:03} (CPU time ratio {}.{:03}), {} 2.7..3.3",
            work_ratio / 1000,
            work_ratio % 1000,
            cpu_ratio / 1000,
            cpu_ratio % 1000,
            if ok { "within" } else { "outside" }
        ),
    );
}

/// Timer interrupts of every CPU so far.
fn interrupts(rt: &Runtime, sched: u64) -> (u64, Vec<u64>) {
    let client = SchedulingPolicyClient::new(rt, sched);
    let per_cpu: Vec<u64> = (0..64)
        .map_while(|cpu| client.cpu_stats(cpu).ok())
        .filter(|s| s.online)
        .map(|s| s.timer_interrupts)
        .collect();
    (per_cpu.iter().sum(), per_cpu)
}

fn tickless(c: &mut Checks, caps: &Caps) {
    let rt = c.rt;
    let timer = TimerClient::new(rt, caps.timer);
    // Let start-up settle, then one idle second.
    let _ = timer.sleep(100_000_000);
    let (before, cpus_before) = interrupts(rt, caps.sched);
    let _ = timer.sleep(1_000_000_000);
    let (after, cpus_after) = interrupts(rt, caps.sched);
    let idle = after - before;
    let per_cpu: Vec<u64> = cpus_after.iter().zip(&cpus_before).map(|(a, b)| a - b).collect();
    c.check(
        "timer interrupts during an idle second",
        idle < 20,
        &format!(
            "{idle} on {} CPU(s) {per_cpu:?} (a periodic 100 Hz tick: 100 per CPU)",
            per_cpu.len()
        ),
    );
    // One thread more than there are CPUs: some CPU has two runnable
    // threads, so the slice timer must come back.
    let cpus = per_cpu.len().max(1);
    let (go, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let counts: Vec<Arc<AtomicU64>> = (0..=cpus).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let workers: Vec<JoinHandle<()>> =
        counts.iter().filter_map(|n| counter(&go, &stop, n)).collect();
    if workers.len() != cpus + 1 {
        c.check("spawn", false, "refused");
        return;
    }
    go.store(true, Ordering::Release);
    let _ = timer.sleep(100_000_000);
    let (before, _) = interrupts(rt, caps.sched);
    let _ = timer.sleep(500_000_000);
    let (after, _) = interrupts(rt, caps.sched);
    stop.store(true, Ordering::Release);
    for w in workers {
        let _ = w.join();
    }
    let busy = after - before;
    let client = SchedulingPolicyClient::new(rt, caps.sched);
    let (switches, steals) = (0..cpus as u32)
        .filter_map(|cpu| client.cpu_stats(cpu).ok())
        .fold((0, 0), |(a, b), s| (a + s.switches, b + s.steals));
    println!(
        rt,
        "sched: since boot: {switches} context switches, {steals} threads stolen by idle CPUs"
    );
    c.check(
        &format!(
            "timer interrupts during 0.5 s of {} CPU-bound threads on {cpus} CPU(s)",
            cpus + 1
        ),
        busy >= 20,
        &format!("{busy} (at least 20)"),
    );
    if cpus >= 2 {
        stealing(c, caps);
    }
}

/// On two CPUs: three CPU-bound threads spread 2 + 1; the lone one ends,
/// and its CPU, now idle, must take one of the pair from the busy CPU.
fn stealing(c: &mut Checks, caps: &Caps) {
    let rt = c.rt;
    let timer = TimerClient::new(rt, caps.timer);
    let go = Arc::new(AtomicBool::new(true));
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let count = Arc::new(AtomicU64::new(0));
    let mut workers: Vec<Option<JoinHandle<()>>> =
        stops.iter().map(|stop| counter(&go, stop, &count)).collect();
    if workers.iter().any(Option::is_none) {
        c.check("spawn", false, "refused");
        return;
    }
    let cpu_of = |h: &Option<JoinHandle<()>>| {
        h.as_ref()
            .and_then(|h| ThreadHandleClient::new(rt, h.handle_cap()).info().ok())
            .map(|i| i.cpu)
    };
    let _ = timer.sleep(50_000_000);
    let cpus: Vec<Option<u32>> = workers.iter().map(cpu_of).collect();
    let lone = (0..3).find(|&i| cpus.iter().filter(|&&c| c == cpus[i]).count() == 1);
    let steals = |rt: &Runtime| {
        let client = SchedulingPolicyClient::new(rt, caps.sched);
        (0..64u32).map_while(|cpu| client.cpu_stats(cpu).ok()).map(|s| s.steals).sum::<u64>()
    };
    let (ok, result) = match lone {
        Some(i) => {
            let before = steals(rt);
            stops[i].store(true, Ordering::Release);
            if let Some(h) = workers[i].take() {
                let _ = h.join();
            }
            let _ = timer.sleep(100_000_000);
            let after = steals(rt);
            let now: Vec<Option<u32>> =
                workers.iter().filter(|w| w.is_some()).map(cpu_of).collect();
            let spread = now.len() == 2 && now[0] != now[1];
            (
                spread && after > before,
                format!(
                    "threads on cpus {cpus:?}; the lone one ended; the pair now on {now:?}, steals {before} -> {after}"
                ),
            )
        }
        None => (false, format!("threads on cpus {cpus:?}: not spread 2 + 1")),
    };
    for s in &stops {
        s.store(true, Ordering::Release);
    }
    for h in workers.into_iter().flatten() {
        let _ = h.join();
    }
    c.check("an idle CPU takes a queued thread from a busy one", ok, &result);
}

/// CPU-bound work: `n` rounds of xorshift.
fn work(seed: u64, n: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

const SCALE_WORK: u64 = 40_000_000;
/// Each configuration runs this often; the fastest run counts (the host
/// may be busy with other work during any one of them).
const SCALE_RUNS: usize = 3;

/// Guest TSC cycles for `SCALE_WORK` rounds split over `threads` threads
/// (the fastest of `SCALE_RUNS` runs), or `None` if a thread failed.
fn timed(threads: u64) -> Option<u64> {
    let mut best = u64::MAX;
    for _ in 0..SCALE_RUNS {
        let t0 = capos_rt::syscall::cycles();
        let handles: Vec<_> = (0..threads)
            .filter_map(|i| {
                let seed = core::hint::black_box(i + 1);
                thread::spawn(move || work(seed, SCALE_WORK / threads)).ok()
            })
            .collect();
        let done = handles.into_iter().filter_map(|h| h.join().ok()).count() as u64;
        let t1 = capos_rt::syscall::cycles();
        if done != threads {
            return None;
        }
        best = best.min(t1 - t0);
    }
    Some(best)
}

fn scale(c: &mut Checks) {
    let rt = c.rt;
    let (Some(single), Some(split)) = (timed(1), timed(2)) else {
        c.check("scale runs finished", false, "a thread failed");
        return;
    };
    let speedup = milli(single, split);
    println!(
        rt,
        "sched: scale: {SCALE_WORK} rounds on 1 thread: {} Mcycles; on 2 threads: {} Mcycles; speedup {}.{:03}x",
        single / 1_000_000,
        split / 1_000_000,
        speedup / 1000,
        speedup % 1000
    );
    c.check("scale runs finished", true, "ok");
}
