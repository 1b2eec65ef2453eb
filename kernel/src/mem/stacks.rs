//! Kernel stacks: each in its own slot of the stack window, with the page
//! below it left unmapped so an overflow faults instead of corrupting memory.
//!
//! A freed stack is kept mapped and handed out again to the next request of
//! the same size. Its mapping never changes, so no other CPU can hold a stale
//! TLB entry for it (a CPU other than the owner's touches a new thread's
//! stack when it builds its first frame), and no TLB shootdown is needed.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;

use alloc::vec::Vec;

use super::{paging, PAGE_SIZE, STACKS_BASE};
use crate::sync::IrqLock;

/// Pages in a kernel stack.
pub const KERNEL_STACK_PAGES: u64 = 16;
/// Pages in an IST (double fault, NMI, machine check) stack.
pub const IST_STACK_PAGES: u64 = 4;
/// Virtual size of one slot: guard page plus the largest stack.
const SLOT: u64 = 64 * PAGE_SIZE;

static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);
/// Freed stacks, still mapped, reused before new slots.
static FREE: IrqLock<Vec<KernelStack>> = IrqLock::new(Vec::new());

/// A mapped kernel stack.
#[derive(Debug, Clone, Copy)]
pub struct KernelStack {
    bottom: u64,
    pages: u64,
}

impl KernelStack {
    /// Initial stack pointer (one past the highest byte).
    pub fn top(&self) -> VirtAddr {
        VirtAddr::new(self.bottom + self.pages * PAGE_SIZE)
    }

    /// The unmapped guard page's address.
    pub fn guard(&self) -> u64 {
        self.bottom - PAGE_SIZE
    }
}

/// Maps a new stack of `pages` pages (at most 63) over an unmapped guard page.
pub fn alloc(pages: u64) -> Option<KernelStack> {
    assert!(pages < SLOT / PAGE_SIZE, "stack of {pages} pages fits a slot");
    {
        let mut free = FREE.lock();
        if let Some(i) = free.iter().position(|s| s.pages == pages) {
            return Some(free.swap_remove(i));
        }
    }
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let slot_base = STACKS_BASE + slot * SLOT;
    // The slot's top `pages` pages are the stack; the page below is the guard.
    let bottom = slot_base + SLOT - pages * PAGE_SIZE;
    paging::map_fresh(bottom, pages).ok()?;
    Some(KernelStack { bottom, pages })
}

/// Pages held by freed stacks kept for reuse (reported as free memory: they
/// are a cache, not in use).
pub fn pooled_pages() -> u64 {
    FREE.lock().iter().map(|s| s.pages).sum()
}

/// Returns a stack for reuse (it stays mapped).
///
/// # Safety
/// Nothing may run on the stack or hold pointers into it any more.
pub unsafe fn free(stack: KernelStack) {
    FREE.lock().push(stack);
}
