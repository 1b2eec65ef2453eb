//! Kernel stacks: each in its own slot of the stack window, with the page
//! below it left unmapped so an overflow faults instead of corrupting memory.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::VirtAddr;

use super::{paging, PAGE_SIZE, STACKS_BASE};

/// Pages in a kernel stack.
pub const KERNEL_STACK_PAGES: u64 = 16;
/// Pages in an IST (double fault, NMI, machine check) stack.
pub const IST_STACK_PAGES: u64 = 4;
/// Virtual size of one slot: guard page plus the largest stack.
const SLOT: u64 = 64 * PAGE_SIZE;

static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

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
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let slot_base = STACKS_BASE + slot * SLOT;
    // The slot's top `pages` pages are the stack; the page below is the guard.
    let bottom = slot_base + SLOT - pages * PAGE_SIZE;
    paging::map_fresh(bottom, pages).ok()?;
    Some(KernelStack { bottom, pages })
}
