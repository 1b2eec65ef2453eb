//! Resource limits: the bounds a `ResourceProfile` (schema) may name, and
//! the defaults the kernel applies where a profile leaves a field 0.
//!
//! Frames and kernel bytes a process uses count against its parent too (up
//! to init), so a profile bounds a whole tree of processes; threads, cap
//! slots and open calls count per process. A child never gets more than its
//! parent has left.

/// Cap-table slots a process has.
pub const MAX_CAP_SLOTS: u32 = 64;
/// Ring operations a process may have open (submitted, not completed) over
/// all its threads: every thread's completion queue full.
pub const MAX_OPEN_CALLS: u32 = crate::MAX_THREADS * 128;

/// A set of limits (or, for usage, of amounts in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// 4 KiB physical frames.
    pub frames: u64,
    /// Kernel heap bytes.
    pub kernel_bytes: u64,
    /// Threads alive at once.
    pub threads: u32,
    /// Cap-table slots in use.
    pub caps: u32,
    /// Open ring operations.
    pub open_calls: u32,
}

/// Limits of a service init starts from the boot manifest, where its
/// `resources` leave a field 0: 128 MiB, 16 MiB of kernel heap.
pub const SERVICE_DEFAULTS: Limits = Limits {
    frames: 32 * 1024,
    kernel_bytes: 16 << 20,
    threads: crate::MAX_THREADS,
    caps: MAX_CAP_SLOTS,
    open_calls: MAX_OPEN_CALLS,
};

/// Limits of a program started with `ProcessSpawner.spawn` (or where a
/// `spawnLimited` profile leaves a field 0): 64 MiB, 8 MiB of kernel heap.
pub const PROGRAM_DEFAULTS: Limits = Limits {
    frames: 16 * 1024,
    kernel_bytes: 8 << 20,
    threads: crate::MAX_THREADS,
    caps: MAX_CAP_SLOTS,
    open_calls: 1024,
};

impl Limits {
    /// `self` with every 0 field taken from `defaults`.
    pub const fn or(self, defaults: Limits) -> Limits {
        const fn pick64(a: u64, b: u64) -> u64 {
            if a == 0 {
                b
            } else {
                a
            }
        }
        const fn pick32(a: u32, b: u32) -> u32 {
            if a == 0 {
                b
            } else {
                a
            }
        }
        Limits {
            frames: pick64(self.frames, defaults.frames),
            kernel_bytes: pick64(self.kernel_bytes, defaults.kernel_bytes),
            threads: pick32(self.threads, defaults.threads),
            caps: pick32(self.caps, defaults.caps),
            open_calls: pick32(self.open_calls, defaults.open_calls),
        }
    }

    /// The name of the first per-process count over its ABI bound
    /// (threads, caps, open calls), if any.
    pub const fn over_bounds(&self) -> Option<&'static str> {
        if self.threads > crate::MAX_THREADS {
            Some("threads")
        } else if self.caps > MAX_CAP_SLOTS {
            Some("caps")
        } else if self.open_calls > MAX_OPEN_CALLS {
            Some("openCalls")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_fields_take_defaults() {
        let l = Limits { frames: 10, ..Limits::default() }.or(PROGRAM_DEFAULTS);
        assert_eq!(l.frames, 10);
        assert_eq!(l.threads, PROGRAM_DEFAULTS.threads);
        assert_eq!(l.kernel_bytes, PROGRAM_DEFAULTS.kernel_bytes);
        assert_eq!(SERVICE_DEFAULTS.over_bounds(), None);
        assert_eq!(PROGRAM_DEFAULTS.over_bounds(), None);
        assert_eq!(Limits { threads: 33, ..PROGRAM_DEFAULTS }.over_bounds(), Some("threads"));
        assert_eq!(Limits { caps: 65, ..PROGRAM_DEFAULTS }.over_bounds(), Some("caps"));
        assert_eq!(
            Limits { open_calls: MAX_OPEN_CALLS + 1, ..PROGRAM_DEFAULTS }.over_bounds(),
            Some("openCalls")
        );
    }
}
