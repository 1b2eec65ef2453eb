//! `Mutex` and `Condvar` for the threads of one process.
//!
//! Both live in user memory and stay there on the fast path: an uncontended
//! lock or unlock is one atomic instruction. Only a thread that finds the
//! lock taken parks, through the process's `park` cap (a `ParkSpace`),
//! and only an unlock that sees parked threads calls the kernel to wake
//! one. Without a `park` cap, contended threads spin instead.
//!
//! The mutex word: 0 unlocked, 1 locked, 2 locked and someone may be parked
//! (the classic three-state futex mutex).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use capos_schema::{ParkResult, ParkSpaceClient};

use crate::runtime::runtime;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// CapId of the `park` cap, 0 if not looked up yet, `u64::MAX` if absent.
static PARK_CAP: AtomicU64 = AtomicU64::new(0);

fn park_cap() -> Option<u64> {
    let cached = PARK_CAP.load(Ordering::Relaxed);
    if cached != 0 {
        return (cached != u64::MAX).then_some(cached);
    }
    let cap = runtime().cap("park").map_or(u64::MAX, |c| c.cap);
    PARK_CAP.store(cap, Ordering::Relaxed);
    (cap != u64::MAX).then_some(cap)
}

/// Parks the calling thread while `word` holds `expected` (or until
/// `timeout_ns`); returns whether it may have been woken (false: timed out).
pub fn park(word: &AtomicU32, expected: u32, timeout_ns: u64) -> bool {
    match park_cap() {
        Some(cap) => {
            let client = ParkSpaceClient::new(runtime(), cap);
            !matches!(
                client.wait(word.as_ptr() as u64, expected, timeout_ns),
                Ok(ParkResult::TimedOut)
            )
        }
        None => {
            core::hint::spin_loop();
            true
        }
    }
}

/// Wakes up to `count` threads parked on `word`.
pub fn unpark(word: &AtomicU32, count: u32) {
    if let Some(cap) = park_cap() {
        let _ = ParkSpaceClient::new(runtime(), cap).wake(word.as_ptr() as u64, count);
    }
}

/// A mutual-exclusion lock protecting a `T`.
pub struct Mutex<T: ?Sized> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one thread at a time, so
// sharing the Mutex is as safe as sending the T.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: as above; moving the Mutex moves the T.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { state: AtomicU32::new(UNLOCKED), data: UnsafeCell::new(value) }
    }

    /// The value, taking the mutex apart.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock and returns a guard that unlocks when dropped.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { mutex: self }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { mutex: self })
    }

    #[cold]
    fn lock_contended(&self) {
        // Brief spinning first: the holder may be running on another CPU.
        for _ in 0..64 {
            if self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // Mark the lock contended; whoever unlocks it then wakes a waiter.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            park(&self.state, CONTENDED, u64::MAX);
        }
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            unpark(&self.state, 1);
        }
    }

    /// Mutable access without locking (the `&mut` proves no one else has it).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

/// Access to a locked [`Mutex`]'s value; unlocks when dropped.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock,
        // and `&mut self` makes this the only reference through it.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

/// A condition variable: threads wait (with a [`Mutex`] held) until
/// another notifies them.
pub struct Condvar {
    seq: AtomicU32,
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Self { seq: AtomicU32::new(0) }
    }

    /// Unlocks `guard`'s mutex, waits for a notification, and locks it
    /// again. Wake-ups may be spurious: wait in a loop over the condition.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_timeout_ns(guard, u64::MAX).0
    }

    /// Like [`Condvar::wait`], for at most `timeout_ns`; the flag says
    /// whether the wait timed out.
    pub fn wait_timeout_ns<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout_ns: u64,
    ) -> (MutexGuard<'a, T>, bool) {
        let mutex = guard.mutex;
        // A notification after this load changes `seq`, so the park below
        // returns at once instead of missing it.
        let seq = self.seq.load(Ordering::Acquire);
        drop(guard);
        let woken = park(&self.seq, seq, timeout_ns);
        // Relock as contended: other waiters may have been moved behind us.
        while mutex.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            park(&mutex.state, CONTENDED, u64::MAX);
        }
        (MutexGuard { mutex }, !woken)
    }

    /// Wakes one waiting thread.
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        unpark(&self.seq, 1);
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        unpark(&self.seq, u32::MAX);
    }
}
