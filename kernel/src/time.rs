//! Monotonic time, timed wake-ups, and the tickless timer.
//!
//! Deadlines are TSC values. Each CPU keeps its own list of timed entries
//! (an entry lives on the CPU that made it): waking a thread (a `cap_enter`
//! timeout) or running a closure that a higher layer handed in (a
//! `Timer.sleep` completion, a notification or park timeout): `time` never
//! names the cap objects or the ring. There is no periodic
//! tick: before a CPU returns to user mode or halts, [`rearm`] programs its
//! local APIC timer for the nearest of its next timer deadline and, only if
//! it has more than one runnable thread, the end of the running thread's
//! slice. An idle CPU with no timers sleeps without any timer interrupt.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::percpu::{self, MAX_CPUS};
use crate::arch::x86_64::{apic, tsc};
use crate::sched::{self, Thread};
use crate::sync::IrqLock;

enum Action {
    Wake(Weak<Thread>),
    Call(Box<dyn FnOnce() + Send>),
}

struct Entry {
    id: u64,
    /// The process the entry acts for (0: none); its entries are cancelled
    /// when it is torn down.
    owner: u64,
    deadline: u64,
    action: Action,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

static TIMERS: [IrqLock<Vec<Entry>>; MAX_CPUS] = [const { IrqLock::new(Vec::new()) }; MAX_CPUS];

/// The deadline each CPU's timer is armed for (0: disarmed).
static ARMED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub use crate::sched::mark_dirty;

/// Timer ids carry the CPU whose list holds the entry in their low byte.
const CPU_BITS: u32 = 8;
const _: () = assert!(MAX_CPUS <= 1 << CPU_BITS);

/// A deadline that never comes: such entries are not queued at all.
pub const NEVER: u64 = u64::MAX;

fn push(deadline: u64, owner: u64, action: Action) -> u64 {
    let cpu = percpu::cpu_index() as u64;
    let id = (NEXT_ID.fetch_add(1, Ordering::Relaxed) << CPU_BITS) | cpu;
    if deadline == NEVER {
        // It would never fire; `cancel` of its id finds nothing.
        drop(action);
        return id;
    }
    TIMERS[cpu as usize].lock().push(Entry { id, owner, deadline, action });
    mark_dirty(cpu as usize);
    id
}

/// Removes a pending entry (no-op if it already fired).
pub fn cancel(id: u64) {
    let cpu = (id & ((1 << CPU_BITS) - 1)) as usize;
    let removed: Vec<Entry> = {
        let mut timers = TIMERS[cpu].lock();
        let Some(i) = timers.iter().position(|e| e.id == id) else { return };
        // alloc: one entry
        alloc::vec![timers.swap_remove(i)]
    };
    mark_dirty(cpu);
    // Dropped without the lock: an action may hold the last reference to
    // an object whose destructor takes other locks.
    drop(removed);
}

/// Cancels every entry of process `pid` (it is being torn down): sleeps
/// and `cap_enter` wake-ups are dropped; timeout closures (notification and
/// park waits) run now, so each takes its waiter off its object (the
/// waiter's completion goes nowhere: the process's rings are closed).
pub fn cancel_owned_by(pid: u64) {
    for (cpu, list) in TIMERS.iter().enumerate() {
        let removed: Vec<Entry> = {
            let mut timers = list.lock();
            if !timers.iter().any(|e| e.owner == pid) {
                continue;
            }
            let (gone, keep): (Vec<Entry>, Vec<Entry>) =
                timers.drain(..).partition(|e| e.owner == pid);
            *timers = keep;
            gone
        };
        mark_dirty(cpu);
        for e in removed {
            if let Action::Call(f) = e.action {
                f();
            }
        }
    }
}

/// The TSC now.
pub fn now_tsc() -> u64 {
    tsc::rdtsc()
}

/// Nanoseconds since boot.
pub fn monotonic_ns() -> u64 {
    tsc::nanos_since_boot()
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_tsc(ns: u64) -> u64 {
    tsc::ns_to_ticks(ns)
}

/// The deadline `ns` from now; `None` for "forever" (`u64::MAX`).
pub fn deadline_after_ns(ns: u64) -> Option<u64> {
    (ns != u64::MAX).then(|| now_tsc().saturating_add(ns_to_tsc(ns)))
}

/// Wakes `thread` (of process `owner`) at `deadline`; returns an id for
/// [`cancel`].
pub fn wake_at(deadline: u64, owner: u64, thread: &Arc<Thread>) -> u64 {
    push(deadline, owner, Action::Wake(Arc::downgrade(thread)))
}

/// Runs `f` (from a timer interrupt, interrupts off) at `deadline`, or
/// when process `owner` is torn down, whichever comes first; returns an id
/// for [`cancel`].
pub fn call_at(deadline: u64, owner: u64, f: Box<dyn FnOnce() + Send>) -> u64 {
    push(deadline, owner, Action::Call(f))
}

/// This CPU's timer interrupt: the armed deadline is used up; fire every
/// expired entry of this CPU.
pub fn on_timer_interrupt() {
    let cpu = percpu::cpu_index() as usize;
    ARMED[cpu].store(0, Ordering::Relaxed);
    mark_dirty(cpu);
    let now = now_tsc();
    let expired: Vec<Entry> = {
        let mut timers = TIMERS[cpu].lock();
        if !timers.iter().any(|e| e.deadline <= now) {
            return;
        }
        let (due, keep): (Vec<Entry>, Vec<Entry>) =
            timers.drain(..).partition(|e| e.deadline <= now);
        *timers = keep;
        due
    };
    for e in expired {
        match e.action {
            Action::Wake(w) => {
                if let Some(t) = w.upgrade() {
                    sched::wake(&t);
                }
            }
            Action::Call(f) => f(),
        }
    }
}

/// Programs this CPU's timer for the next moment it needs an interrupt:
/// its nearest timer deadline, or the end of the running slice when more
/// than one thread is runnable here; none at all otherwise. Interrupts
/// must be off.
pub fn rearm() {
    let cpu = percpu::cpu_index() as usize;
    if !sched::take_dirty(cpu) {
        return;
    }
    let timer = TIMERS[cpu].lock().iter().map(|e| e.deadline).min();
    let (runnable, slice_end) = sched::slice_end_here();
    let slice = (runnable > 1).then_some(slice_end);
    let want = match (timer, slice) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let armed = ARMED[cpu].load(Ordering::Relaxed);
    match want {
        Some(d) if d != armed => {
            ARMED[cpu].store(d.max(1), Ordering::Relaxed);
            apic::arm(d);
        }
        None if armed != 0 => {
            ARMED[cpu].store(0, Ordering::Relaxed);
            apic::disarm();
        }
        _ => {}
    }
}
