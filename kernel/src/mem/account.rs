//! Resource accounting: what each process holds, against the limits of its
//! `ResourceProfile`.
//!
//! Every process has an [`Account`]. Frames (user pages, page tables, rings,
//! the startup page, its threads' kernel stacks) and kernel heap bytes
//! (queued call payloads, open calls, process and thread records) are
//! charged to it *and to every ancestor's account* up to init's, so a
//! profile bounds a whole tree of processes and a parent's limit bounds
//! what its children can take. Threads, cap slots and open calls count per
//! process. A charge over any limit on the chain fails with
//! [`QuotaExceeded`] and changes nothing.
//!
//! Init's account (the root) gets what the machine has after the kernel's
//! reserve ([`super::frames::RESERVE_FRAMES`] and the heap kept for
//! kernel-internal work), so no user-driven path can empty the pools the
//! kernel needs to finish teardown, rollback and error completion.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub use capos_abi::resources::Limits;

/// Which limit a charge hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// 4 KiB frames.
    Frames,
    /// Kernel heap bytes.
    KernelBytes,
    /// Threads.
    Threads,
    /// Cap-table slots.
    Caps,
    /// Open ring operations.
    OpenCalls,
}

impl Resource {
    /// The `ResourceProfile` field name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Frames => "frames",
            Self::KernelBytes => "kernelBytes",
            Self::Threads => "threads",
            Self::Caps => "caps",
            Self::OpenCalls => "openCalls",
        }
    }
}

/// A charge refused: which resource, the limit, what was in use and what
/// was asked for (at the account on the chain that refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The resource.
    pub resource: Resource,
    /// The limit of the account that refused.
    pub limit: u64,
    /// In use there.
    pub used: u64,
    /// Asked for.
    pub asked: u64,
}

impl core::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "quota exceeded: {} {} in use of {}, {} more asked",
            self.resource.name(),
            self.used,
            self.limit,
            self.asked
        )
    }
}

impl From<QuotaExceeded> for capos_abi::TransportError {
    fn from(_: QuotaExceeded) -> Self {
        capos_abi::TransportError::QuotaExceeded
    }
}

/// One process's account.
pub struct Account {
    parent: Option<Arc<Account>>,
    limits: Limits,
    frames: AtomicU64,
    kernel_bytes: AtomicU64,
    threads: AtomicU32,
    caps: AtomicU32,
    open_calls: AtomicU32,
}

/// Adds `n` to `counter` if the sum stays within `limit`.
fn add_within(counter: &AtomicU64, n: u64, limit: u64) -> Result<(), u64> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(n).filter(|&total| total <= limit)
        })
        .map(|_| ())
}

fn add_within32(counter: &AtomicU32, n: u32, limit: u32) -> Result<(), u32> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(n).filter(|&total| total <= limit)
        })
        .map(|_| ())
}

impl Account {
    /// The root account (init's), with `limits`.
    pub fn root(limits: Limits) -> Arc<Account> {
        Self::with_parent(None, limits)
    }

    /// A child account of `parent` with `limits`; each limit is cut to what
    /// the parent has left (frames, kernel bytes) or to the parent's own
    /// limit (threads, caps, open calls), so a child never gets more than
    /// its parent could give it. Fails if `limits` asks for more than that.
    pub fn child(parent: &Arc<Account>, limits: Limits) -> Result<Arc<Account>, QuotaExceeded> {
        let left = parent.left();
        let check = |resource, asked: u64, have: u64, used: u64| {
            if asked > have {
                Err(QuotaExceeded { resource, limit: have + used, used, asked })
            } else {
                Ok(())
            }
        };
        let used = parent.used();
        check(Resource::Frames, limits.frames, left.frames, used.frames)?;
        check(Resource::KernelBytes, limits.kernel_bytes, left.kernel_bytes, used.kernel_bytes)?;
        check(Resource::Threads, limits.threads as u64, parent.limits.threads as u64, 0)?;
        check(Resource::Caps, limits.caps as u64, parent.limits.caps as u64, 0)?;
        check(Resource::OpenCalls, limits.open_calls as u64, parent.limits.open_calls as u64, 0)?;
        Ok(Self::with_parent(Some(parent.clone()), limits))
    }

    fn with_parent(parent: Option<Arc<Account>>, limits: Limits) -> Arc<Account> {
        Arc::new(Account {
            parent,
            limits,
            frames: AtomicU64::new(0),
            kernel_bytes: AtomicU64::new(0),
            threads: AtomicU32::new(0),
            caps: AtomicU32::new(0),
            open_calls: AtomicU32::new(0),
        })
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// In use now (frames and kernel bytes: with every descendant's).
    pub fn used(&self) -> Limits {
        Limits {
            frames: self.frames.load(Ordering::Acquire),
            kernel_bytes: self.kernel_bytes.load(Ordering::Acquire),
            threads: self.threads.load(Ordering::Acquire),
            caps: self.caps.load(Ordering::Acquire),
            open_calls: self.open_calls.load(Ordering::Acquire),
        }
    }

    /// What could still be charged here, the ancestors' limits included.
    pub fn left(&self) -> Limits {
        let mut left = Limits {
            frames: u64::MAX,
            kernel_bytes: u64::MAX,
            threads: self.limits.threads.saturating_sub(self.threads.load(Ordering::Acquire)),
            caps: self.limits.caps.saturating_sub(self.caps.load(Ordering::Acquire)),
            open_calls: self
                .limits
                .open_calls
                .saturating_sub(self.open_calls.load(Ordering::Acquire)),
        };
        let mut at = Some(self);
        while let Some(a) = at {
            left.frames =
                left.frames.min(a.limits.frames.saturating_sub(a.frames.load(Ordering::Acquire)));
            left.kernel_bytes = left
                .kernel_bytes
                .min(a.limits.kernel_bytes.saturating_sub(a.kernel_bytes.load(Ordering::Acquire)));
            at = a.parent.as_deref();
        }
        left
    }

    /// Charges `n` on this account and every ancestor, or on none.
    fn charge_chain(
        &self,
        resource: Resource,
        n: u64,
        field: fn(&Account) -> &AtomicU64,
        limit: fn(&Limits) -> u64,
    ) -> Result<(), QuotaExceeded> {
        if n == 0 {
            return Ok(());
        }
        let mut at = Some(self);
        while let Some(a) = at {
            if let Err(used) = add_within(field(a), n, limit(&a.limits)) {
                // Undo the levels below the one that refused.
                let mut undo = Some(self);
                while let Some(u) = undo {
                    if core::ptr::eq(u, a) {
                        break;
                    }
                    field(u).fetch_sub(n, Ordering::AcqRel);
                    undo = u.parent.as_deref();
                }
                return Err(QuotaExceeded { resource, limit: limit(&a.limits), used, asked: n });
            }
            at = a.parent.as_deref();
        }
        Ok(())
    }

    fn uncharge_chain(&self, n: u64, field: fn(&Account) -> &AtomicU64) {
        let mut at = Some(self);
        while let Some(a) = at {
            let before = field(a).fetch_sub(n, Ordering::AcqRel);
            debug_assert!(before >= n, "account uncharged more than it was charged");
            at = a.parent.as_deref();
        }
    }

    /// Charges `n` frames.
    pub fn charge_frames(&self, n: u64) -> Result<(), QuotaExceeded> {
        self.charge_chain(Resource::Frames, n, |a| &a.frames, |l| l.frames)
    }

    /// Gives back `n` frames.
    pub fn uncharge_frames(&self, n: u64) {
        self.uncharge_chain(n, |a| &a.frames)
    }

    /// Charges `n` kernel heap bytes.
    pub fn charge_bytes(&self, n: u64) -> Result<(), QuotaExceeded> {
        self.charge_chain(Resource::KernelBytes, n, |a| &a.kernel_bytes, |l| l.kernel_bytes)
    }

    /// Gives back `n` kernel heap bytes.
    pub fn uncharge_bytes(&self, n: u64) {
        self.uncharge_chain(n, |a| &a.kernel_bytes)
    }

    fn count(&self, resource: Resource) -> (&AtomicU32, u32) {
        match resource {
            Resource::Threads => (&self.threads, self.limits.threads),
            Resource::Caps => (&self.caps, self.limits.caps),
            _ => (&self.open_calls, self.limits.open_calls),
        }
    }

    /// Counts `n` more threads, caps or open calls (this process only).
    pub fn charge_count(&self, resource: Resource, n: u32) -> Result<(), QuotaExceeded> {
        let (counter, limit) = self.count(resource);
        add_within32(counter, n, limit).map_err(|used| QuotaExceeded {
            resource,
            limit: limit as u64,
            used: used as u64,
            asked: n as u64,
        })
    }

    /// Counts `n` fewer threads, caps or open calls.
    pub fn uncharge_count(&self, resource: Resource, n: u32) {
        let (counter, _) = self.count(resource);
        let before = counter.fetch_sub(n, Ordering::AcqRel);
        debug_assert!(before >= n, "count uncharged below zero");
    }
}

/// Kernel bytes an open call is charged (its pending-call records in the
/// kernel: queue entries, timer entries, waiter lists).
pub const OPEN_CALL_BYTES: u64 = 128;

impl Account {
    /// Counts one more open ring operation (and its kernel bytes).
    pub fn open_call(&self) -> Result<(), QuotaExceeded> {
        self.charge_count(Resource::OpenCalls, 1)?;
        if let Err(e) = self.charge_bytes(OPEN_CALL_BYTES) {
            self.uncharge_count(Resource::OpenCalls, 1);
            return Err(e);
        }
        Ok(())
    }

    /// `n` open ring operations completed (or their ring closed).
    pub fn close_calls(&self, n: u32) {
        if n > 0 {
            self.uncharge_count(Resource::OpenCalls, n);
            self.uncharge_bytes(OPEN_CALL_BYTES * n as u64);
        }
    }
}

/// Frames and kernel bytes charged to an account for as long as this value
/// lives (a queued call's payload, a thread's record and kernel stack).
pub struct Charge {
    account: Arc<Account>,
    frames: u64,
    bytes: u64,
}

impl Charge {
    /// Charges `frames` and `bytes` to `account` (both or neither).
    pub fn new(account: &Arc<Account>, frames: u64, bytes: u64) -> Result<Charge, QuotaExceeded> {
        account.charge_frames(frames)?;
        if let Err(e) = account.charge_bytes(bytes) {
            account.uncharge_frames(frames);
            return Err(e);
        }
        Ok(Charge { account: account.clone(), frames, bytes })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.uncharge_frames(self.frames);
        self.account.uncharge_bytes(self.bytes);
    }
}
