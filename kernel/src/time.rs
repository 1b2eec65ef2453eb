//! Monotonic time and timed wake-ups.
//!
//! Deadlines are TSC values. Every CPU's timer tick runs [`on_tick`], which
//! fires the expired entries: waking a thread (a `cap_enter` timeout) or
//! completing a call (`Timer.sleep`). Resolution is the tick (10 ms).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use crate::arch::x86_64::tsc;
use crate::ring::PendingCall;
use crate::sched::{self, Thread};
use crate::sync::IrqLock;

enum Action {
    Wake(Weak<Thread>),
    Complete(PendingCall),
}

struct Entry {
    deadline: u64,
    action: Action,
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

/// Wakes `thread` at `deadline` (a spurious wake-up later is harmless).
pub fn wake_at(deadline: u64, thread: &Arc<Thread>) {
    TIMERS.lock().push(Entry { deadline, action: Action::Wake(Arc::downgrade(thread)) });
}

/// Completes `call` with an empty results message at `deadline`.
pub fn complete_at(deadline: u64, call: PendingCall) {
    TIMERS.lock().push(Entry { deadline, action: Action::Complete(call) });
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
        }
    }
}
