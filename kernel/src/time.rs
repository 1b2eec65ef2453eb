//! Monotonic time and timed wake-ups.
//!
//! Deadlines are TSC values. Every CPU's timer tick runs [`on_tick`], which
//! fires the expired entries: waking a thread (a `cap_enter` timeout) or
//! completing a call (`Timer.sleep`). Resolution is the tick (10 ms).

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use crate::arch::x86_64::tsc;
use crate::ring::PendingCall;
use crate::sched::{self, Thread};
use crate::sync::IrqLock;

enum Action {
    Wake(Weak<Thread>),
    Complete(PendingCall),
    Call(Box<dyn FnOnce() + Send>),
}

struct Entry {
    id: u64,
    deadline: u64,
    action: Action,
}

static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

fn push(deadline: u64, action: Action) -> u64 {
    let id = NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    TIMERS.lock().push(Entry { id, deadline, action });
    id
}

/// Removes a pending entry (no-op if it already fired).
pub fn cancel(id: u64) {
    TIMERS.lock().retain(|e| e.id != id);
}

static TIMERS: IrqLock<Vec<Entry>> = IrqLock::new(Vec::new());

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
    (ns as u128 * tsc::hz() as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// The deadline `ns` from now; `None` for "forever" (`u64::MAX`).
pub fn deadline_after_ns(ns: u64) -> Option<u64> {
    (ns != u64::MAX).then(|| now_tsc().saturating_add(ns_to_tsc(ns)))
}

/// Wakes `thread` at `deadline`; returns an id for [`cancel`].
pub fn wake_at(deadline: u64, thread: &Arc<Thread>) -> u64 {
    push(deadline, Action::Wake(Arc::downgrade(thread)))
}

/// Runs `f` (from a timer interrupt, interrupts off) at `deadline`;
/// returns an id for [`cancel`].
pub fn call_at(deadline: u64, f: Box<dyn FnOnce() + Send>) -> u64 {
    push(deadline, Action::Call(f))
}

/// Completes `call` with an empty results message at `deadline`.
pub fn complete_at(deadline: u64, call: PendingCall) {
    push(deadline, Action::Complete(call));
}

/// Fires every expired entry.
pub fn on_tick() {
    let now = now_tsc();
    let expired: Vec<Entry> = {
        let mut timers = TIMERS.lock();
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
            Action::Complete(call) => crate::cap::timer::finish_sleep(call),
            Action::Call(f) => f(),
        }
    }
}
