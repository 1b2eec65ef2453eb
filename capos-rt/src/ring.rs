//! The process's submission/completion ring (see `docs/src/ring.md`).
//!
//! The runtime owns `sq_tail` and `cq_head`; it reads `sq_head` and
//! `cq_tail`, which the kernel writes. SQE bodies are written before the
//! release-store of `sq_tail`; CQE bodies are read after the acquire-load of
//! `cq_tail`.

use core::cell::Cell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering};

use capos_abi::{Cqe, RingHeader, Sqe, StartupHeader, TransportError, CQE_SIZE, SQE_SIZE};

use crate::syscall;

/// The SQ has no free entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

/// A view of the ring the kernel mapped for this process.
pub struct Ring {
    base: usize,
    sq_entries: u32,
    cq_entries: u32,
    sqe_offset: u32,
    cqe_offset: u32,
    sq_tail: Cell<u32>,
    cq_head: Cell<u32>,
}

impl Ring {
    /// The ring described by the startup page.
    pub fn from_startup(h: &StartupHeader) -> Ring {
        let base = h.ring_addr as usize;
        let ring = Ring {
            base,
            sq_entries: h.sq_entries,
            cq_entries: h.cq_entries,
            sqe_offset: 0,
            cqe_offset: 0,
            sq_tail: Cell::new(0),
            cq_head: Cell::new(0),
        };
        let sqe_offset = ring.field(offset_of!(RingHeader, sqe_offset)).load(Ordering::Relaxed);
        let cqe_offset = ring.field(offset_of!(RingHeader, cqe_offset)).load(Ordering::Relaxed);
        let sq_tail = ring.field(offset_of!(RingHeader, sq_tail)).load(Ordering::Relaxed);
        let cq_head = ring.field(offset_of!(RingHeader, cq_head)).load(Ordering::Relaxed);
        Ring {
            sqe_offset,
            cqe_offset,
            sq_tail: Cell::new(sq_tail),
            cq_head: Cell::new(cq_head),
            ..ring
        }
    }

    /// The ring whose header the kernel mapped at `base` (a spawned
    /// thread's ring, whose address it receives in `rsi`).
    pub fn at(base: u64) -> Ring {
        let probe = Ring {
            base: base as usize,
            sq_entries: 0,
            cq_entries: 0,
            sqe_offset: 0,
            cqe_offset: 0,
            sq_tail: Cell::new(0),
            cq_head: Cell::new(0),
        };
        let read = |off| probe.field(off).load(Ordering::Relaxed);
        Ring {
            sq_entries: read(offset_of!(RingHeader, sq_entries)),
            cq_entries: read(offset_of!(RingHeader, cq_entries)),
            sqe_offset: read(offset_of!(RingHeader, sqe_offset)),
            cqe_offset: read(offset_of!(RingHeader, cqe_offset)),
            sq_tail: Cell::new(read(offset_of!(RingHeader, sq_tail))),
            cq_head: Cell::new(read(offset_of!(RingHeader, cq_head))),
            ..probe
        }
    }

    fn field(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the kernel maps each thread's ring (header first)
        // read-write at the address it names (`ring_addr`, or `rsi` of a
        // spawned thread) for the process's whole life; header fields are
        // 4-byte aligned u32s shared with the kernel, hence atomics.
        unsafe { &*((self.base + offset) as *const AtomicU32) }
    }

    /// SQ entries.
    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    /// CQ entries.
    pub fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// Free SQ entries.
    pub fn sq_space(&self) -> u32 {
        let head = self.field(offset_of!(RingHeader, sq_head)).load(Ordering::Acquire);
        self.sq_entries - self.sq_tail.get().wrapping_sub(head).min(self.sq_entries)
    }

    /// Writes an SQE without publishing it (see [`Ring::publish`]).
    pub fn push(&self, sqe: &Sqe) -> Result<(), RingFull> {
        if self.sq_space() == 0 {
            return Err(RingFull);
        }
        let tail = self.sq_tail.get();
        let slot = tail & (self.sq_entries - 1);
        let off = self.base + (self.sqe_offset + slot * SQE_SIZE as u32) as usize;
        let bytes = sqe.to_bytes();
        // SAFETY: the slot lies inside the ring's SQE array; the kernel reads
        // it only after the release-store in `publish`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), off as *mut u8, SQE_SIZE) };
        self.sq_tail.set(tail.wrapping_add(1));
        Ok(())
    }

    /// Makes every pushed SQE visible to the kernel.
    pub fn publish(&self) {
        self.field(offset_of!(RingHeader, sq_tail)).store(self.sq_tail.get(), Ordering::Release);
    }

    /// Pushes and publishes one SQE.
    pub fn submit(&self, sqe: &Sqe) -> Result<(), RingFull> {
        self.push(sqe)?;
        self.publish();
        Ok(())
    }

    /// Takes the oldest completion, if any.
    pub fn pop(&self) -> Option<Cqe> {
        let tail = self.field(offset_of!(RingHeader, cq_tail)).load(Ordering::Acquire);
        let head = self.cq_head.get();
        if head == tail {
            return None;
        }
        let slot = head & (self.cq_entries - 1);
        let off = self.base + (self.cqe_offset + slot * CQE_SIZE as u32) as usize;
        let mut bytes = [0u8; CQE_SIZE];
        // SAFETY: the slot lies inside the CQE array and the kernel wrote it
        // before its release-store of cq_tail, which we acquired.
        unsafe { core::ptr::copy_nonoverlapping(off as *const u8, bytes.as_mut_ptr(), CQE_SIZE) };
        self.cq_head.set(head.wrapping_add(1));
        self.field(offset_of!(RingHeader, cq_head)).store(head.wrapping_add(1), Ordering::Release);
        Cqe::from_bytes(&bytes)
    }

    /// `cap_enter`: submit everything published, wait for `min_complete`.
    pub fn enter(&self, min_complete: u32, timeout_ns: u64) -> Result<u32, TransportError> {
        syscall::cap_enter(min_complete, timeout_ns)
    }

    /// Overwrites the shared `sq_tail` directly, bypassing the runtime's
    /// bookkeeping. Only for proving the kernel rejects a corrupted header;
    /// [`Ring::resync`] repairs the runtime's view afterwards.
    pub fn write_raw_sq_tail(&self, value: u32) {
        self.field(offset_of!(RingHeader, sq_tail)).store(value, Ordering::Release);
    }

    /// Overwrites the shared `cq_head` directly (see [`Ring::write_raw_sq_tail`]).
    pub fn write_raw_cq_head(&self, value: u32) {
        self.field(offset_of!(RingHeader, cq_head)).store(value, Ordering::Release);
    }

    /// Restores the shared `sq_tail`/`cq_head` from the runtime's own copies.
    pub fn resync(&self) {
        self.publish();
        self.field(offset_of!(RingHeader, cq_head)).store(self.cq_head.get(), Ordering::Release);
    }

    /// Completions the kernel reported lost for lack of CQ space.
    pub fn cq_overflow(&self) -> u32 {
        self.field(offset_of!(RingHeader, cq_overflow)).load(Ordering::Acquire)
    }
}
