//! The scheduler: per-CPU run queues with weighted fair queuing, work
//! stealing, and a direct hand-off to the thread an IPC completion wakes.
//!
//! Each thread has a virtual runtime: the CPU time it used, scaled by
//! `DEFAULT_WEIGHT / weight`. A CPU runs the queued thread with the smallest
//! virtual runtime; the running one is preempted once it had its slice (the
//! latency target shared out by weight, at least the minimum granularity)
//! and another queued thread is behind it in virtual time. So over any busy
//! stretch, threads get CPU time in proportion to their weights.
//! `docs/src/scheduler.md` gives the rules and invariants.
//!
//! The kernel itself is not preemptible: it runs with interrupts off except
//! in the idle loop, so a switch happens only when a thread blocks or exits,
//! or when an interrupt (the slice timer, a wake-up IPI) arrives in user
//! mode or in the idle loop.
//!
//! Blocking never loses a wake-up: a thread that is woken while still running
//! records the wake-up and its next block returns at once.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::arch::x86_64::context::{self, FpuState, SWITCH_FRAME_WORDS};
use crate::arch::x86_64::percpu::{self, MAX_CPUS};
use crate::arch::x86_64::trap::{TrapFrame, VEC_WAKEUP};
use crate::arch::x86_64::{apic, gdt, tsc};
use crate::mem::stacks::{self, KernelStack};
use crate::sync::IrqLock;

/// Scheduling state of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On a run queue.
    Runnable,
    /// On a CPU.
    Running,
    /// Waiting for a wake-up.
    Blocked,
    /// Finished; its stack is freed once it is off the CPU.
    Dead,
}

struct SchedState {
    state: State,
    wake_pending: bool,
    weight: u32,
    /// Virtual runtime in weighted TSC ticks; while the thread is on no
    /// CPU's queue (migrating), relative to the queue's `min_vruntime`.
    vruntime: u64,
}

pub use capos_lib::sched::{DEFAULT_WEIGHT, MAX_WEIGHT, MIN_WEIGHT};

/// A thread's weight.
pub fn weight_of(thread: &Thread) -> u32 {
    thread.sched.lock().weight
}

/// Sets a thread's weight (`MIN_WEIGHT..=MAX_WEIGHT`, checked by the caller).
pub fn set_weight(thread: &Thread, weight: u32) {
    thread.sched.lock().weight = weight.clamp(MIN_WEIGHT, MAX_WEIGHT);
}

/// What a thread belongs to (a process), as far as the scheduler needs
/// it. The layer that owns processes gets its own type back by upcasting to
/// `Any` and downcasting.
pub trait Owner: Any + Send + Sync {
    /// Adds `ticks` TSC ticks of CPU time.
    fn charge_cpu(&self, ticks: u64);
    /// Switches this CPU to its address space.
    fn activate_address_space(&self);
}

/// A kernel-scheduled thread of a process (or a CPU's idle thread).
pub struct Thread {
    /// Thread id.
    pub tid: u64,
    /// Owning process (`None` for idle threads).
    pub process: Option<Arc<dyn Owner>>,
    /// CPU whose run queue holds this thread (changes only while the
    /// thread is on no queue and on no CPU, or under the queue's lock).
    cpu: AtomicU32,
    stack: Option<KernelStack>,
    saved_rsp: UnsafeCell<u64>,
    fpu: Option<UnsafeCell<FpuState>>,
    /// User FS base, loaded whenever the thread gets a CPU. Set at spawn
    /// and by `ThreadSpawner.setTls` ([`set_fs_base`]) only.
    fs_base: UnsafeCell<u64>,
    sched: IrqLock<SchedState>,
    /// The user-thread part (ring, end state; `None` for idle threads),
    /// owned by the layer that makes user threads: the scheduler never
    /// looks inside.
    pub user: Option<Box<dyn Any + Send + Sync>>,
    /// TSC ticks spent on a CPU.
    cpu_ticks: AtomicU64,
    /// Set from the moment a CPU picks the thread until that CPU has
    /// switched to another context: while set, its kernel stack is in use
    /// and no other CPU may take it (it may already be queued again, woken
    /// while blocking or preempted).
    on_cpu: AtomicBool,
}

// SAFETY: `saved_rsp` and `fpu` are touched only by the CPU switching the
// thread out or in, with interrupts off, and a thread is on one CPU at a time.
unsafe impl Sync for Thread {}
// SAFETY: as above.
unsafe impl Send for Thread {}

impl Thread {
    /// Whether this is a CPU's idle thread.
    pub fn is_idle(&self) -> bool {
        self.process.is_none()
    }

    /// The CPU whose run queue holds (or last held) the thread.
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// CPU time used so far, in TSC ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        if let Some(stack) = self.stack.take() {
            // SAFETY: a thread is dropped only after it left its CPU for good
            // (it is Dead and the reaper runs on another context).
            unsafe { stacks::free(stack) };
        }
    }
}

struct CpuQueue {
    current: Option<Arc<Thread>>,
    idle: Option<Arc<Thread>>,
    /// Runnable threads waiting for this CPU (unordered; the pick scans it).
    queue: Vec<Arc<Thread>>,
    /// A thread woken by a completion: it runs next (direct hand-off).
    next: Option<Arc<Thread>>,
    /// Lower bound of the virtual runtimes here; never decreases.
    min_vruntime: u64,
    /// A dead thread switched away from; dropped by the next context.
    reap: Option<Arc<Thread>>,
    /// The thread switched away from, whose `on_cpu` the next context
    /// clears once it runs on its own stack.
    switched_from: Option<Arc<Thread>>,
    /// TSC when `current` got the CPU (or was last charged).
    run_start: u64,
    /// TSC when `current`'s slice began.
    slice_start: u64,
}

impl CpuQueue {
    /// Runnable threads here, the running one included (idle excluded).
    fn nr_running(&self) -> usize {
        self.queue.len() + usize::from(self.current.as_ref().is_some_and(|c| !c.is_idle()))
    }

    /// Charges the running thread for the time since `run_start`.
    fn update_current(&mut self, now: u64) {
        let delta = now.saturating_sub(self.run_start);
        self.run_start = now;
        let Some(cur) = self.current.as_ref() else { return };
        if cur.is_idle() {
            return;
        }
        cur.cpu_ticks.fetch_add(delta, Ordering::Relaxed);
        if let Some(p) = &cur.process {
            p.charge_cpu(delta);
        }
        let mut s = cur.sched.lock();
        s.vruntime = s.vruntime.saturating_add(capos_lib::sched::vruntime_delta(delta, s.weight));
        let v = s.vruntime;
        drop(s);
        self.advance_min(Some(v));
    }

    /// Moves `min_vruntime` up to the smallest virtual runtime here.
    fn advance_min(&mut self, running: Option<u64>) {
        let queued = self.queue.iter().map(|t| t.sched.lock().vruntime).min();
        let least = match (running, queued) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(self.min_vruntime),
        };
        self.min_vruntime = self.min_vruntime.max(least);
    }

    /// Takes the thread to run next: the hand-off thread if it is still
    /// queued here, else the one with the least virtual runtime.
    fn pick(&mut self) -> Option<Arc<Thread>> {
        if let Some(n) = self.next.take() {
            if let Some(i) = self.queue.iter().position(|t| Arc::ptr_eq(t, &n)) {
                return Some(self.queue.swap_remove(i));
            }
        }
        let i = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.sched.lock().vruntime)
            .map(|(i, _)| i)?;
        Some(self.queue.swap_remove(i))
    }

    /// The slice the running thread gets: the latency target shared by
    /// weight among the runnable threads, at least the minimum granularity.
    fn slice(&self) -> u64 {
        let weight_of = |t: &Arc<Thread>| t.sched.lock().weight as u64;
        let mine =
            self.current.as_ref().filter(|c| !c.is_idle()).map_or(DEFAULT_WEIGHT as u64, weight_of);
        let total: u64 = mine + self.queue.iter().map(weight_of).sum::<u64>();
        capos_lib::sched::slice(latency_ticks(), min_granularity_ticks(), mine, total)
    }
}

/// Latency target: every runnable thread of a CPU runs within this period.
pub const LATENCY_NS: u64 = 12_000_000;
/// Minimum granularity: no slice is shorter.
pub const MIN_GRANULARITY_NS: u64 = 1_500_000;

fn latency_ticks() -> u64 {
    tsc::ns_to_ticks(LATENCY_NS)
}

fn min_granularity_ticks() -> u64 {
    tsc::ns_to_ticks(MIN_GRANULARITY_NS)
}

static QUEUES: [IrqLock<CpuQueue>; MAX_CPUS] = [const {
    IrqLock::new(CpuQueue {
        current: None,
        idle: None,
        queue: Vec::new(),
        next: None,
        min_vruntime: 0,
        reap: None,
        switched_from: None,
        run_start: 0,
        slice_start: 0,
    })
}; MAX_CPUS];

/// Set when something `time::rearm` depends on changed on a CPU (its timer
/// list, its run queue, its slice); a system call that changed nothing
/// skips the work.
static DIRTY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(true) }; MAX_CPUS];

/// Tells `time::rearm` on `cpu` to look again.
pub fn mark_dirty(cpu: usize) {
    if let Some(d) = DIRTY.get(cpu) {
        d.store(true, Ordering::Release);
    }
}

/// Whether `time::rearm` on `cpu` has to look again (and clears it).
pub fn take_dirty(cpu: usize) -> bool {
    DIRTY[cpu].swap(false, Ordering::AcqRel)
}

/// What reaps a dead thread once no CPU runs on its stack (installed at
/// boot by the layer that owns thread teardown).
static REAPER: spin::Once<fn(Arc<Thread>)> = spin::Once::new();

/// Installs the reaper (once, at boot).
pub fn set_reaper(f: fn(Arc<Thread>)) {
    REAPER.call_once(|| f);
}

static NEXT_TID: AtomicU64 = AtomicU64::new(1);
static NEXT_CPU: AtomicU32 = AtomicU32::new(0);

/// Makes the calling context this CPU's idle thread. Called once per CPU
/// before it first schedules.
pub fn init_cpu() {
    let cpu = percpu::cpu_index();
    let idle = Arc::new(Thread {
        tid: 0,
        process: None,
        cpu: AtomicU32::new(cpu),
        stack: None,
        saved_rsp: UnsafeCell::new(0),
        fpu: None,
        fs_base: UnsafeCell::new(0),
        sched: IrqLock::new(SchedState {
            state: State::Running,
            wake_pending: false,
            weight: DEFAULT_WEIGHT,
            vruntime: 0,
        }),
        user: None,
        cpu_ticks: AtomicU64::new(0),
        on_cpu: AtomicBool::new(true),
    });
    let mut q = QUEUES[cpu as usize].lock();
    set_current(&mut q, idle.clone());
    q.idle = Some(idle);
    // Room for a busy queue up front, so the heap the scheduler uses does
    // not drift with the most threads ever runnable at once.
    q.queue.reserve(RUN_QUEUE_ROOM);
}

/// Runnable threads a CPU's queue has room for before it grows.
const RUN_QUEUE_ROOM: usize = 256;

/// The thread running on this CPU.
pub fn current() -> Option<Arc<Thread>> {
    current_borrowed().map(|t| Arc::clone(&t))
}

/// The thread running on this CPU, without taking the run-queue lock or a
/// reference count: for use by that thread itself (its syscall path), or
/// by an interrupt taken while it runs. A running thread stays alive while
/// it runs (its process owns it until it is reaped, after its last switch),
/// so the borrowed `Arc` is valid as long as the caller is that thread's
/// code; it must not be stored.
pub fn current_borrowed() -> Option<core::mem::ManuallyDrop<Arc<Thread>>> {
    let ptr = percpu::current().current_thread.load(Ordering::Acquire);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `set_current` stores only `Arc::as_ptr` of the thread in the
    // run queue's `current`, which holds a strong reference while that
    // thread runs here; ManuallyDrop keeps this copy from releasing it.
    Some(core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(ptr as *const Thread) }))
}

/// Records `thread` as this CPU's running thread (under its queue lock).
fn set_current(q: &mut CpuQueue, thread: Arc<Thread>) {
    percpu::current().current_thread.store(Arc::as_ptr(&thread) as *mut (), Ordering::Release);
    q.current = Some(thread);
}

fn pick_cpu() -> u32 {
    let online: Vec<u32> =
        percpu::all().filter(|c| c.online.load(Ordering::Acquire)).map(|c| c.index).collect();
    if online.is_empty() {
        return 0;
    }
    let start = NEXT_CPU.fetch_add(1, Ordering::Relaxed) as usize;
    // Least loaded, ties broken round robin.
    (0..online.len())
        .map(|i| online[(start + i) % online.len()])
        .min_by_key(|&c| QUEUES[c as usize].lock().nr_running())
        .unwrap_or(0)
}

/// Where a new user thread starts: `rip`, `rsp`, `rdi`, `rsi` and FS base.
pub struct UserStart {
    /// Entry point.
    pub entry: u64,
    /// Initial stack pointer.
    pub rsp: u64,
    /// First argument register.
    pub rdi: u64,
    /// Second argument register.
    pub rsi: u64,
    /// FS base.
    pub fs_base: u64,
}

/// Creates a user thread of `process` that enters user mode as `start`
/// says. It runs once passed to [`start`] (after the caller has recorded
/// it, so it cannot finish before being known).
pub fn spawn_user(
    process: Arc<dyn Owner>,
    start: UserStart,
    user: Box<dyn Any + Send + Sync>,
) -> Option<Arc<Thread>> {
    let stack = stacks::alloc(stacks::KERNEL_STACK_PAGES)?;
    let top = stack.top().as_u64();
    let frame_words = core::mem::size_of::<TrapFrame>() / 8;
    let total = frame_words + SWITCH_FRAME_WORDS;
    let base = top - (total as u64) * 8;
    // SAFETY: the stack was just mapped for this thread and nothing else uses
    // it; `total` words fit far inside it.
    let words = unsafe { core::slice::from_raw_parts_mut(base as *mut u64, total) };
    words.fill(0);
    // Switch frame: RFLAGS (IF off), r15..rbp, return address.
    words[0] = 0x2;
    words[7] = context::thread_start as *const () as u64;
    // SAFETY: the trap frame follows the switch frame, 8-aligned.
    let frame = unsafe { &mut *((base + SWITCH_FRAME_WORDS as u64 * 8) as *mut TrapFrame) };
    frame.rip = start.entry;
    frame.cs = gdt::USER_CS as u64;
    frame.rflags = 0x202;
    frame.rsp = start.rsp;
    frame.ss = gdt::USER_DS as u64;
    frame.rdi = start.rdi;
    frame.rsi = start.rsi;
    let thread = Arc::new(Thread {
        tid: NEXT_TID.fetch_add(1, Ordering::Relaxed),
        process: Some(process),
        cpu: AtomicU32::new(pick_cpu()),
        stack: Some(stack),
        saved_rsp: UnsafeCell::new(base),
        fpu: Some(UnsafeCell::new(FpuState::initial())),
        fs_base: UnsafeCell::new(start.fs_base),
        sched: IrqLock::new(SchedState {
            state: State::Runnable,
            wake_pending: false,
            weight: DEFAULT_WEIGHT,
            vruntime: 0,
        }),
        user: Some(user),
        cpu_ticks: AtomicU64::new(0),
        on_cpu: AtomicBool::new(false),
    });
    Some(thread)
}

/// Makes a thread made by [`spawn_user`] runnable.
pub fn start(thread: Arc<Thread>) {
    enqueue(thread, Placement::New);
}

/// Where an enqueued thread goes in virtual time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// A new thread: at the queue's minimum.
    New,
    /// Woken from a block: at most half a latency target before the
    /// minimum (a sleeper gets a little credit, never a burst).
    Woken,
    /// Woken by a completion it waits for: runs next on its CPU.
    HandOff,
}

fn enqueue(thread: Arc<Thread>, how: Placement) {
    let mut cpu = thread.cpu() as usize;
    let here = percpu::cpu_index() as usize;
    // A woken thread whose CPU is busy goes to an idle CPU, if there is one.
    // (Not one still on its CPU's stack: it finishes blocking there first.)
    if how == Placement::Woken
        && !thread.on_cpu.load(Ordering::Acquire)
        && QUEUES[cpu].lock().nr_running() > 0
    {
        if let Some(idle) = idle_cpu(cpu) {
            // Virtual runtimes are per queue: carry the offset over.
            let old_min = QUEUES[cpu].lock().min_vruntime;
            let new_min = QUEUES[idle].lock().min_vruntime;
            let mut s = thread.sched.lock();
            s.vruntime = capos_lib::sched::migrate(s.vruntime, old_min, new_min);
            drop(s);
            thread.cpu.store(idle as u32, Ordering::Relaxed);
            cpu = idle;
        }
    }
    let (idle_now, busy) = {
        let mut q = QUEUES[cpu].lock();
        let min = q.min_vruntime;
        {
            let mut s = thread.sched.lock();
            s.vruntime = match how {
                Placement::New => s.vruntime.max(min),
                Placement::Woken | Placement::HandOff => {
                    capos_lib::sched::place_woken(s.vruntime, min, latency_ticks() / 2)
                }
            };
        }
        if how == Placement::HandOff {
            q.next = Some(thread.clone());
        }
        q.queue.push(thread);
        (q.current.as_ref().is_some_and(|t| t.is_idle()), q.nr_running() > 1)
    };
    mark_dirty(cpu);
    if cpu != here && (idle_now || busy) {
        // Idle: it runs the thread. Busy: it re-arms its slice timer (the
        // timer is off while a CPU has a single runnable thread).
        if let Some(c) = percpu::get(cpu) {
            apic::send_ipi(c.apic_id.load(Ordering::Relaxed), VEC_WAKEUP as u32);
        }
    }
}

/// An online CPU other than `except` that runs nothing and has nothing
/// queued.
fn idle_cpu(except: usize) -> Option<usize> {
    percpu::all()
        .filter(|c| c.online.load(Ordering::Acquire) && c.index as usize != except)
        .map(|c| c.index as usize)
        .find(|&c| {
            let q = QUEUES[c].lock();
            q.queue.is_empty() && q.current.as_ref().is_none_or(|t| t.is_idle())
        })
}

/// Wakes `thread` if it is blocked; otherwise makes its next block return
/// at once.
pub fn wake(thread: &Arc<Thread>) {
    wake_to(thread, Placement::Woken);
}

/// Like [`wake`], but the thread runs next on its CPU (ahead of the queue):
/// a completion's waiter gets the CPU straight away, as in a direct switch.
pub fn wake_first(thread: &Arc<Thread>) {
    wake_to(thread, Placement::HandOff);
}

fn wake_to(thread: &Arc<Thread>, how: Placement) {
    let run = {
        let mut s = thread.sched.lock();
        match s.state {
            State::Blocked => {
                s.state = State::Runnable;
                true
            }
            State::Dead => false,
            _ => {
                s.wake_pending = true;
                false
            }
        }
    };
    if run {
        enqueue(thread.clone(), how);
    }
}

/// Blocks the current thread until [`wake`]. Interrupts must be off.
pub fn block_current() {
    let Some(me) = current() else { return };
    {
        let mut s = me.sched.lock();
        if s.wake_pending {
            s.wake_pending = false;
            return;
        }
        s.state = State::Blocked;
    }
    schedule();
}

/// Ends the current thread for good. Interrupts must be off.
pub fn exit_current() -> ! {
    if let Some(me) = current() {
        me.sched.lock().state = State::Dead;
    }
    schedule();
    unreachable!("a dead thread is never scheduled again");
}

/// Timer or wake-up interrupt: charge the running thread and preempt it if
/// its slice is over and another thread is due, or if the CPU idles.
pub fn tick(from_user: bool) {
    let cpu = percpu::cpu_index() as usize;
    mark_dirty(cpu);
    let preempt = {
        let mut q = QUEUES[cpu].lock();
        let now = tsc::rdtsc();
        q.update_current(now);
        let idle = q.current.as_ref().is_none_or(|t| t.is_idle());
        if q.queue.is_empty() {
            false
        } else if idle {
            true
        } else if !from_user {
            false
        } else {
            let cur_v = q.current.as_ref().map_or(0, |c| c.sched.lock().vruntime);
            let least = q.queue.iter().map(|t| t.sched.lock().vruntime).min().unwrap_or(u64::MAX);
            let over = now.saturating_sub(q.slice_start) >= q.slice();
            if over && least >= cur_v {
                // Still the furthest behind: it keeps the CPU for a new slice.
                q.slice_start = now;
            }
            q.next.is_some() || (over && least < cur_v)
        }
    };
    if preempt {
        // A slice ended with threads waiting: an idle CPU may take one.
        if let Some(idle) = idle_cpu(cpu) {
            if let Some(c) = percpu::get(idle) {
                apic::send_ipi(c.apic_id.load(Ordering::Relaxed), VEC_WAKEUP as u32);
            }
        }
        schedule();
    }
}

/// Runs the next runnable thread on this CPU (or keeps the current one).
/// Interrupts must be off.
pub fn schedule() {
    let cpu_index = percpu::cpu_index() as usize;
    mark_dirty(cpu_index);
    let (prev, next) = {
        let mut q = QUEUES[cpu_index].lock();
        let Some(prev) = q.current.clone() else { return };
        let now = tsc::rdtsc();
        q.update_current(now);
        // A thread that was running goes back on the queue. One that
        // blocked and was woken again before this point is already queued
        // (by `wake`) and must not be queued twice.
        let prev_state = {
            let mut s = prev.sched.lock();
            let was = s.state;
            if was == State::Running && !prev.is_idle() {
                s.state = State::Runnable;
            }
            was
        };
        if prev_state == State::Running && !prev.is_idle() {
            q.queue.push(prev.clone());
        }
        let next = match q.pick() {
            Some(t) => t,
            None if prev_state == State::Running => return,
            None => q.idle.clone().expect("idle thread exists once the CPU schedules"),
        };
        q.slice_start = now;
        if Arc::ptr_eq(&prev, &next) {
            prev.sched.lock().state = State::Running;
            return;
        }
        next.sched.lock().state = State::Running;
        q.run_start = now;
        percpu::current().switches.fetch_add(1, Ordering::Relaxed);
        set_current(&mut q, next.clone());
        if prev_state == State::Dead {
            q.reap = Some(prev.clone());
        }
        next.on_cpu.store(true, Ordering::Release);
        q.switched_from = Some(prev.clone());
        (prev, next)
    };
    // Nothing may stay on this stack across the switch: a dead thread never
    // comes back to drop it. `prev` stays alive through its owner (run queue,
    // process, idle slot or `reap`), `next` through `current`.
    let (save, load) = prepare_switch(&prev, &next);
    drop(prev);
    drop(next);
    // SAFETY: both contexts are threads of this CPU, kept alive as said
    // above; `save` points into `prev`, which outlives its own resumption.
    unsafe { context::switch(save, load) };
    after_switch();
}

/// An idle CPU takes a queued thread from the busiest other CPU that has
/// more than one runnable thread; returns whether it took one.
pub fn steal() -> bool {
    let here = percpu::cpu_index() as usize;
    let victim = percpu::all()
        .filter(|c| c.online.load(Ordering::Acquire) && c.index as usize != here)
        .map(|c| c.index as usize)
        .map(|c| (c, QUEUES[c].lock().nr_running()))
        .filter(|&(_, n)| n > 1)
        .max_by_key(|&(_, n)| n)
        .map(|(c, _)| c);
    let Some(victim) = victim else { return false };
    let taken = {
        let mut q = QUEUES[victim].lock();
        // The thread furthest behind in the queue (least likely to run
        // soon there), never the hand-off thread.
        let next = q.next.clone();
        let i = q
            .queue
            .iter()
            .enumerate()
            .filter(|(_, t)| next.as_ref().is_none_or(|n| !Arc::ptr_eq(n, t)))
            .filter(|(_, t)| !t.on_cpu.load(Ordering::Acquire))
            .max_by_key(|(_, t)| t.sched.lock().vruntime)
            .map(|(i, _)| i);
        i.map(|i| {
            let t = q.queue.swap_remove(i);
            let mut s = t.sched.lock();
            s.vruntime = s.vruntime.saturating_sub(q.min_vruntime);
            drop(s);
            t
        })
    };
    let Some(thread) = taken else { return false };
    thread.cpu.store(here as u32, Ordering::Relaxed);
    {
        let mut q = QUEUES[here].lock();
        let min = q.min_vruntime;
        let mut s = thread.sched.lock();
        s.vruntime = s.vruntime.saturating_add(min);
        drop(s);
        q.queue.push(thread);
    }
    percpu::current().steals.fetch_add(1, Ordering::Relaxed);
    mark_dirty(here);
    mark_dirty(victim);
    true
}

/// Everything a switch needs but the register swap; returns where to save
/// the current RSP and the RSP to load.
fn prepare_switch(prev: &Arc<Thread>, next: &Arc<Thread>) -> (*mut u64, u64) {
    use x86_64::registers::model_specific::FsBase;
    if let Some(fpu) = &prev.fpu {
        // SAFETY: `prev` is on this CPU with interrupts off; nobody else
        // touches its FPU area now.
        unsafe { (*fpu.get()).save() };
    }
    if let Some(fpu) = &next.fpu {
        // SAFETY: `next` is not running anywhere (it was on our queue); its
        // FS base was checked to be a canonical user address when set.
        unsafe {
            (*fpu.get()).restore();
            FsBase::write(x86_64::VirtAddr::new_truncate(*next.fs_base.get()));
        }
    }
    match &next.process {
        Some(p) => p.activate_address_space(),
        None => crate::mem::paging::activate_kernel_space(),
    }
    if let Some(stack) = &next.stack {
        let top = stack.top().as_u64();
        // SAFETY: on this CPU with interrupts off; the stack lives as long as
        // `next`, which the run queue keeps alive while it runs.
        unsafe { gdt::set_kernel_stack(percpu::current(), top) };
        percpu::current().syscall_rsp.store(top, Ordering::Relaxed);
    }
    // SAFETY: `next` is not running, so its saved RSP is stable.
    (prev.saved_rsp.get(), unsafe { *next.saved_rsp.get() })
}

/// `ps` name of a thread's state.
pub fn state_name(thread: &Thread) -> &'static str {
    match thread.sched.lock().state {
        State::Runnable => "ready",
        State::Running => "running",
        State::Blocked => "blocked",
        State::Dead => "exiting",
    }
}

/// Work after a switch: a dead predecessor leaves its process (the last
/// thread of a process tears it down, now that no CPU runs in its address
/// space) and is dropped (which frees its kernel stack).
fn after_switch() {
    let (from, dead) = {
        let mut q = QUEUES[percpu::cpu_index() as usize].lock();
        (q.switched_from.take(), q.reap.take())
    };
    // This CPU now runs on another stack: the previous thread may go to
    // any CPU.
    if let Some(t) = from {
        t.on_cpu.store(false, Ordering::Release);
    }
    if let Some(t) = dead {
        (REAPER.get().expect("reaper installed at boot"))(t);
    }
}

/// Called by a new thread's first run, before it enters user mode.
#[no_mangle]
extern "C" fn thread_first_run() {
    after_switch();
    (crate::hooks::get().leave)(true);
}

/// The CPUs (bit `n` for CPU `n`) whose running thread belongs to `process` (their TLBs may
/// hold its translations).
pub fn cpus_running<T: ?Sized>(process: &Arc<T>) -> u64 {
    percpu::all()
        .filter(|c| c.online.load(Ordering::Acquire))
        .map(|c| c.index as usize)
        .filter(|&c| {
            let q = QUEUES[c].lock();
            q.current
                .as_ref()
                .and_then(|t| t.process.as_ref())
                .is_some_and(|p| core::ptr::addr_eq(Arc::as_ptr(p), Arc::as_ptr(process)))
        })
        .fold(0, |set, c| set | (1 << c))
}

/// Makes a thread running on another CPU enter the kernel soon (to notice a
/// kill or a TLB flush): an IPI to that CPU.
pub fn kick(thread: &Arc<Thread>) {
    let cpu = thread.cpu() as usize;
    if cpu == percpu::cpu_index() as usize {
        return;
    }
    let running = QUEUES[cpu].lock().current.as_ref().is_some_and(|c| Arc::ptr_eq(c, thread));
    if running {
        if let Some(c) = percpu::get(cpu) {
            apic::send_ipi(c.apic_id.load(Ordering::Relaxed), VEC_WAKEUP as u32);
        }
    }
}

/// Sets the running thread's FS base (`tls` is a user address, checked by
/// the caller), now and whenever it gets a CPU again.
pub fn set_fs_base(tls: u64) {
    let Some(me) = current() else { return };
    // SAFETY: `me` runs on this CPU with interrupts off; only the CPU
    // running a thread (or switching it in) touches its FS base slot.
    unsafe { *me.fs_base.get() = tls };
    x86_64::registers::model_specific::FsBase::write(x86_64::VirtAddr::new_truncate(tls));
}

/// Number of threads waiting on this CPU's run queue.
pub fn queued_here() -> usize {
    QUEUES[percpu::cpu_index() as usize].lock().queue.len()
}

/// Runnable threads on this CPU (the running one included) and the TSC at
/// which the running one's slice ends.
pub fn slice_end_here() -> (usize, u64) {
    let q = QUEUES[percpu::cpu_index() as usize].lock();
    let n = q.nr_running();
    // The slice only matters (and is only worked out) when others wait.
    let end = if n > 1 { q.slice_start.saturating_add(q.slice()) } else { u64::MAX };
    (n, end)
}
