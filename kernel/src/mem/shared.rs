//! Frames shared between address spaces: the memory of a `SharedBuffer`.
//!
//! A [`SharedFrames`] owns a fixed set of zeroed 4 KiB frames, charged to
//! the account of the process that made it for as long as it lives. Every
//! address space that maps it holds an `Arc` to it (next to the mapping),
//! and so does the buffer's cap object until revocation: the frames go back
//! to the allocator, and the charge to the account, when the last of those
//! goes. The physical addresses are kept in index frames (512 per frame,
//! charged as frames too), not on the kernel heap, so a 256 MiB buffer
//! costs 128 index frames and a few bytes of heap.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::account::Account;
use super::paging::PagingError;
use super::{frames, phys_to_virt, PAGE_SIZE};

/// Physical addresses one index frame holds.
const PER_INDEX: u64 = PAGE_SIZE / 8;

/// Kernel bytes charged for the object itself besides its index list.
const OBJECT_BYTES: u64 = 64;

/// A set of frames mapped by one or more address spaces.
pub struct SharedFrames {
    /// Index frames, each an array of [`PER_INDEX`] data-frame addresses.
    index: Vec<u64>,
    /// Data frames recorded in the index (all of `asked` once `new` is done).
    pages: u64,
    /// Data frames asked for: the account is charged with these, their
    /// index frames and [`Self::bytes`] of them.
    asked: u64,
    account: Arc<Account>,
}

impl SharedFrames {
    /// Index frames `pages` data frames need.
    pub const fn index_frames(pages: u64) -> u64 {
        pages.div_ceil(PER_INDEX)
    }

    fn bytes(index: u64) -> u64 {
        OBJECT_BYTES + index * 8
    }

    /// `pages` fresh zeroed frames charged to `account`. Fails with
    /// `Quota` (nothing charged) when the account cannot hold them and
    /// with `OutOfFrames` when the machine has no more for user memory
    /// (what was taken is given back first).
    pub fn new(account: &Arc<Account>, pages: u64) -> Result<Arc<SharedFrames>, PagingError> {
        let index_len = Self::index_frames(pages);
        account.charge_frames(pages + index_len).map_err(PagingError::Quota)?;
        if let Err(q) = account.charge_bytes(Self::bytes(index_len)) {
            account.uncharge_frames(pages + index_len);
            return Err(PagingError::Quota(q));
        }
        // From here on `Drop` gives back whatever was taken: it frees the
        // data frames recorded so far and uncharges the whole charge.
        let mut this =
            SharedFrames { index: Vec::new(), pages: 0, asked: pages, account: account.clone() };
        let Ok(len) = usize::try_from(index_len) else { return Err(PagingError::OutOfFrames) };
        if this.index.try_reserve_exact(len).is_err() {
            return Err(PagingError::OutOfFrames);
        }
        while this.pages < pages {
            let slot = this.pages % PER_INDEX;
            if slot == 0 {
                let Some(f) = frames::alloc_user_zeroed() else {
                    return Err(PagingError::OutOfFrames);
                };
                this.index.push(f);
            }
            let Some(f) = frames::alloc_user_zeroed() else {
                return Err(PagingError::OutOfFrames);
            };
            let at = this.entry(this.pages);
            // SAFETY: `at` is inside an index frame this object owns
            // (allocated above), reached through the direct map, 8-aligned.
            unsafe { core::ptr::write(at, f) };
            this.pages += 1;
        }
        Ok(Arc::new(this))
    }

    /// Pointer to the index entry of data frame `i` (`i` within the index
    /// frames allocated so far).
    fn entry(&self, i: u64) -> *mut u64 {
        let table = self.index[(i / PER_INDEX) as usize];
        (phys_to_virt(table) + (i % PER_INDEX) * 8) as *mut u64
    }

    /// Data frames.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Bytes of memory (pages times the page size).
    pub fn bytes_len(&self) -> u64 {
        self.pages * PAGE_SIZE
    }

    /// Physical address of data frame `i` (`i < pages`).
    pub fn frame(&self, i: u64) -> u64 {
        debug_assert!(i < self.pages);
        // SAFETY: `i < pages`, so the entry was written by `new` and lies
        // in an index frame this object owns.
        unsafe { core::ptr::read(self.entry(i)) }
    }
}

impl Drop for SharedFrames {
    fn drop(&mut self) {
        // Every address space that mapped these frames has unmapped them
        // (its Arc is gone) and shot down the TLBs of the CPUs running it.
        for i in 0..self.pages {
            let _ = frames::free(self.frame(i));
        }
        for &f in &self.index {
            let _ = frames::free(f);
        }
        // `new` charged for every page asked for, also when it failed
        // part-way and fewer are recorded.
        let index_len = Self::index_frames(self.asked);
        self.account.uncharge_frames(self.asked + index_len);
        self.account.uncharge_bytes(Self::bytes(index_len));
    }
}
