//! The kernel heap: a linked-list allocator over a virtual window that grows
//! on demand, a page-aligned chunk at a time, up to [`HEAP_MAX`].
//!
//! Small blocks (up to 2 KiB) are served from per-size-class free lists in
//! front of it: a freed small block is kept on its class's list and handed
//! out again in O(1), instead of a first-fit walk of the linked list on every
//! allocation. Blocks on those lists count as free in [`usage`].

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;

use super::{paging, HEAP_BASE, HEAP_MAX, PAGE_SIZE};
use crate::sync::IrqLock;

/// Heap mapped at start-up.
const INITIAL: u64 = 128 * 1024;
/// Smallest growth step.
const GROW_MIN: u64 = 256 * 1024;

/// Size classes: 16, 32, ... 2048 bytes (each class's blocks are aligned to
/// their size).
const CLASSES: usize = 8;
const MIN_CLASS: usize = 16;

struct State {
    heap: Heap,
    mapped: u64,
    /// Heads of the per-class free lists (0 = empty); each free block holds
    /// the address of the next.
    free: [usize; CLASSES],
    /// Bytes sitting on the free lists.
    cached: usize,
    /// Allocations made since boot (how the bench counts a path's).
    allocations: u64,
}

/// The size class serving `layout`, if it is small.
fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(MIN_CLASS).next_power_of_two();
    let class = size.trailing_zeros() as usize - MIN_CLASS.trailing_zeros() as usize;
    (class < CLASSES).then_some(class)
}

fn class_layout(class: usize) -> Layout {
    let size = MIN_CLASS << class;
    Layout::from_size_align(size, size).expect("size classes are powers of two")
}

/// The global allocator.
pub struct KernelHeap {
    state: IrqLock<State>,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    state: IrqLock::new(State {
        heap: Heap::empty(),
        mapped: 0,
        free: [0; CLASSES],
        cached: 0,
        allocations: 0,
    }),
};

/// Maps the first chunk and hands it to the allocator.
pub fn init() -> Result<(), paging::PagingError> {
    paging::map_fresh(HEAP_BASE, INITIAL / PAGE_SIZE)?;
    let mut s = HEAP.state.lock();
    // SAFETY: [HEAP_BASE, HEAP_BASE + INITIAL) was just mapped RW and is used
    // by nothing else.
    unsafe { s.heap.init(HEAP_BASE as *mut u8, INITIAL as usize) };
    s.mapped = INITIAL;
    crate::kinfo!(
        "mem",
        "heap at {:#x}, {} KiB mapped, grows on demand",
        HEAP_BASE,
        INITIAL / 1024
    );
    Ok(())
}

/// Heap allocations made since boot.
pub fn allocations() -> u64 {
    HEAP.state.lock().allocations
}

/// (bytes in use, bytes mapped).
pub fn usage() -> (usize, u64) {
    let s = HEAP.state.lock();
    (s.heap.used() - s.cached, s.mapped)
}

impl State {
    fn grow(&mut self, layout: &Layout) -> bool {
        let want = (layout.size() + layout.align()) as u64;
        let by = want.max(GROW_MIN).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if self.mapped + by > HEAP_MAX {
            return false;
        }
        if paging::map_fresh(HEAP_BASE + self.mapped, by / PAGE_SIZE).is_err() {
            return false;
        }
        // SAFETY: the pages right after the current heap top were just
        // mapped and belong to nobody else.
        unsafe { self.heap.extend(by as usize) };
        self.mapped += by;
        // Logging takes only the serial lock and never allocates.
        crate::kinfo!("mem", "heap grew to {} KiB", self.mapped / 1024);
        true
    }
}

// SAFETY: allocation is serialised by the IrqLock; blocks come from the
// linked-list heap, which never hands out overlapping blocks.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = self.state.lock();
        s.allocations += 1;
        let layout = match class_of(&layout) {
            Some(class) => {
                let head = s.free[class];
                if head != 0 {
                    // SAFETY: `head` is a free block of this class that
                    // `dealloc` put on the list; its first word holds the
                    // next block's address.
                    s.free[class] = unsafe { *(head as *const usize) };
                    s.cached -= MIN_CLASS << class;
                    return head as *mut u8;
                }
                class_layout(class)
            }
            None => layout,
        };
        loop {
            if let Ok(p) = s.heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            if !s.grow(&layout) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else { return };
        let mut s = self.state.lock();
        match class_of(&layout) {
            Some(class) => {
                // SAFETY: `ptr` came from `alloc` for this layout, so it is a
                // block of this class (at least 16 bytes, aligned), now
                // unused: its first word can link the free list.
                unsafe { *(ptr as *mut usize) = s.free[class] };
                s.free[class] = ptr as usize;
                s.cached += MIN_CLASS << class;
            }
            // SAFETY: per GlobalAlloc's contract `ptr` came from `alloc` with
            // this (large) layout.
            None => unsafe { s.heap.deallocate(p, layout) },
        }
    }
}
