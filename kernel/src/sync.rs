//! SMP-safe locks.
//!
//! [`IrqLock`] is a spinlock that also disables interrupts on the local CPU
//! while held, so a lock taken both by normal code and by an interrupt
//! handler on the same CPU cannot deadlock.

use core::ops::{Deref, DerefMut};

use x86_64::instructions::interrupts;

/// A spinlock that keeps local interrupts disabled while it is held.
pub struct IrqLock<T> {
    inner: spin::Mutex<T>,
}

/// Guard of an [`IrqLock`]; restores the previous interrupt state on drop.
pub struct IrqLockGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    reenable: bool,
}

impl<T> IrqLock<T> {
    /// A new unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    /// Spins until the lock is free, with local interrupts disabled.
    #[inline(always)]
    pub fn lock(&self) -> IrqLockGuard<'_, T> {
        let reenable = interrupts::are_enabled();
        interrupts::disable();
        let guard = self.inner.lock();
        IrqLockGuard { guard: Some(guard), reenable }
    }
}

impl<T> Deref for IrqLockGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("IrqLockGuard holds its guard until drop")
    }
}

impl<T> DerefMut for IrqLockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("IrqLockGuard holds its guard until drop")
    }
}

impl<T> Drop for IrqLockGuard<'_, T> {
    // Always inlined: these guards sit on every system call's path, and an
    // out-of-line copy per lock type costs a call each time.
    #[inline(always)]
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.reenable {
            interrupts::enable();
        }
    }
}
