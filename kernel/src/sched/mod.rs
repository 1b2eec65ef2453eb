//! The scheduler: per-CPU run queues, round robin, preemption on the timer
//! tick when the CPU runs user code or idles.
//!
//! Threads stay on the CPU they were placed on at creation (chosen to balance
//! the queues). The kernel itself is not preemptible: it runs with interrupts
//! off except in the idle loop, so a switch happens only when a thread blocks
//! or exits, or when the timer interrupts user mode or the idle loop.
//!
//! Blocking never loses a wake-up: a thread that is woken while still running
//! records the wake-up and its next block returns at once.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::arch::x86_64::context::{self, FpuState, SWITCH_FRAME_WORDS};
use crate::arch::x86_64::percpu::{self, MAX_CPUS};
use crate::arch::x86_64::trap::{TrapFrame, VEC_WAKEUP};
use crate::arch::x86_64::{apic, gdt};
use crate::mem::stacks::{self, KernelStack};
use crate::proc::Process;
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
}

/// Smallest thread weight.
pub const MIN_WEIGHT: u32 = 1;
/// Largest thread weight.
pub const MAX_WEIGHT: u32 = 1024;
/// Weight of a new thread.
pub const DEFAULT_WEIGHT: u32 = 16;

/// A thread's weight.
pub fn weight_of(thread: &Thread) -> u32 {
    thread.sched.lock().weight
}

/// Sets a thread's weight (`MIN_WEIGHT..=MAX_WEIGHT`, checked by the caller).
pub fn set_weight(thread: &Thread, weight: u32) {
    thread.sched.lock().weight = weight.clamp(MIN_WEIGHT, MAX_WEIGHT);
}

/// A kernel-scheduled thread of a process (or a CPU's idle thread).
pub struct Thread {
    /// Thread id.
    pub tid: u64,
    /// Owning process (`None` for idle threads).
    pub process: Option<Arc<Process>>,
    /// CPU whose run queue holds this thread (changes only while the
    /// thread is on no queue and on no CPU, or under the queue's lock).
    cpu: AtomicU32,
    stack: Option<KernelStack>,
    saved_rsp: UnsafeCell<u64>,
    fpu: Option<UnsafeCell<FpuState>>,
    /// User FS base, saved and restored with the thread.
    fs_base: UnsafeCell<u64>,
    sched: IrqLock<SchedState>,
    /// The user-thread part: ring, end state (`None` for idle threads).
    pub user: Option<crate::proc::thread::UserThread>,
    /// TSC ticks spent on a CPU.
    cpu_ticks: AtomicU64,
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
    queue: VecDeque<Arc<Thread>>,
    /// A dead thread switched away from; dropped by the next context.
    reap: Option<Arc<Thread>>,
    /// TSC when `current` got the CPU.
    run_start: u64,
}

static QUEUES: [IrqLock<CpuQueue>; MAX_CPUS] = [const {
    IrqLock::new(CpuQueue {
        current: None,
        idle: None,
        queue: VecDeque::new(),
        reap: None,
        run_start: 0,
    })
}; MAX_CPUS];

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
        }),
        user: None,
        cpu_ticks: AtomicU64::new(0),
    });
    let mut q = QUEUES[cpu as usize].lock();
    q.current = Some(idle.clone());
    q.idle = Some(idle);
}

/// The thread running on this CPU.
pub fn current() -> Option<Arc<Thread>> {
    QUEUES[percpu::cpu_index() as usize].lock().current.clone()
}

/// The process of the thread running on this CPU.
pub fn current_process() -> Option<Arc<Process>> {
    current().and_then(|t| t.process.clone())
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
        .min_by_key(|&c| QUEUES[c as usize].lock().queue.len())
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
    process: Arc<Process>,
    start: UserStart,
    user: crate::proc::thread::UserThread,
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
        }),
        user: Some(user),
        cpu_ticks: AtomicU64::new(0),
    });
    Some(thread)
}

/// Makes a thread made by [`spawn_user`] runnable.
pub fn start(thread: Arc<Thread>) {
    enqueue(thread);
}

fn enqueue(thread: Arc<Thread>) {
    enqueue_at(thread, false);
}

fn enqueue_at(thread: Arc<Thread>, front: bool) {
    let cpu = thread.cpu() as usize;
    let idle_now = {
        let mut q = QUEUES[cpu].lock();
        if front {
            q.queue.push_front(thread);
        } else {
            q.queue.push_back(thread);
        }
        q.current.as_ref().is_some_and(|t| t.is_idle())
    };
    if cpu != percpu::cpu_index() as usize && idle_now {
        if let Some(c) = percpu::get(cpu) {
            apic::send_ipi(c.apic_id.load(Ordering::Relaxed), VEC_WAKEUP as u32);
        }
    }
}

/// Wakes `thread` if it is blocked; otherwise makes its next block return
/// at once.
pub fn wake(thread: &Arc<Thread>) {
    wake_to(thread, false);
}

/// Like [`wake`], but the thread runs next on its CPU (ahead of the queue):
/// a completion's waiter gets the CPU straight away, as in a direct switch.
pub fn wake_first(thread: &Arc<Thread>) {
    wake_to(thread, true);
}

fn wake_to(thread: &Arc<Thread>, front: bool) {
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
        enqueue_at(thread.clone(), front);
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

/// Timer tick: round robin when the interrupted context may be preempted.
pub fn tick(from_user: bool) {
    let cpu = percpu::cpu_index() as usize;
    let (preemptible, waiting) = {
        let q = QUEUES[cpu].lock();
        let idle = q.current.as_ref().is_none_or(|t| t.is_idle());
        (from_user || idle, !q.queue.is_empty())
    };
    if preemptible && waiting {
        schedule();
    }
}

/// Runs the next runnable thread on this CPU (or keeps the current one).
/// Interrupts must be off.
pub fn schedule() {
    let cpu_index = percpu::cpu_index() as usize;
    let (prev, next) = {
        let mut q = QUEUES[cpu_index].lock();
        let Some(prev) = q.current.clone() else { return };
        // A thread that was running goes to the back of the queue. One that
        // blocked and was woken again before this point is already queued
        // (by `wake`) and must not be queued twice.
        let prev_state = {
            let mut s = prev.sched.lock();
            let was = s.state;
            if was == State::Running && !prev.is_idle() {
                s.state = State::Runnable;
                q.queue.push_back(prev.clone());
            }
            was
        };
        let next = match q.queue.pop_front() {
            Some(t) => t,
            None if prev_state == State::Running => return,
            None => q.idle.clone().expect("idle thread exists once the CPU schedules"),
        };
        if Arc::ptr_eq(&prev, &next) {
            prev.sched.lock().state = State::Running;
            return;
        }
        next.sched.lock().state = State::Running;
        let now = crate::time::now_tsc();
        prev.cpu_ticks.fetch_add(now.saturating_sub(q.run_start), Ordering::Relaxed);
        q.run_start = now;
        percpu::current().switches.fetch_add(1, Ordering::Relaxed);
        q.current = Some(next.clone());
        if prev_state == State::Dead {
            q.reap = Some(prev.clone());
        }
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

/// Everything a switch needs but the register swap; returns where to save
/// the current RSP and the RSP to load.
fn prepare_switch(prev: &Arc<Thread>, next: &Arc<Thread>) -> (*mut u64, u64) {
    use x86_64::registers::model_specific::FsBase;
    if let Some(fpu) = &prev.fpu {
        // SAFETY: `prev` is on this CPU with interrupts off; nobody else
        // touches its FPU area or FS base slot now.
        unsafe {
            (*fpu.get()).save();
            *prev.fs_base.get() = FsBase::read().as_u64();
        }
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

/// Work after a switch: a dead predecessor leaves its process (the last
/// thread of a process tears it down, now that no CPU runs in its address
/// space) and is dropped (which frees its kernel stack).
fn after_switch() {
    let dead = QUEUES[percpu::cpu_index() as usize].lock().reap.take();
    if let Some(t) = dead {
        crate::proc::thread::reap(t);
    }
}

/// Called by a new thread's first run, before it enters user mode.
#[no_mangle]
extern "C" fn thread_first_run() {
    after_switch();
    if let Some(p) = current_process() {
        crate::proc::check_kill(p);
    }
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

/// Number of threads waiting on this CPU's run queue.
pub fn queued_here() -> usize {
    QUEUES[percpu::cpu_index() as usize].lock().queue.len()
}
