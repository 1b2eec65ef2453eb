//! The kernel heap: a linked-list allocator over a virtual window that grows
//! on demand, a page-aligned chunk at a time, up to [`HEAP_MAX`].

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use linked_list_allocator::Heap;

use super::{paging, HEAP_BASE, HEAP_MAX, PAGE_SIZE};
use crate::sync::IrqLock;

/// Heap mapped at start-up.
const INITIAL: u64 = 256 * 1024;
/// Smallest growth step.
const GROW_MIN: u64 = 256 * 1024;

struct State {
    heap: Heap,
    mapped: u64,
}

/// The global allocator.
pub struct KernelHeap {
    state: IrqLock<State>,
}

#[global_allocator]
static HEAP: KernelHeap =
    KernelHeap { state: IrqLock::new(State { heap: Heap::empty(), mapped: 0 }) };

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

/// (bytes in use, bytes mapped).
pub fn usage() -> (usize, u64) {
    let s = HEAP.state.lock();
    (s.heap.used(), s.mapped)
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
        true
    }
}

// SAFETY: allocation is serialised by the IrqLock; blocks come from the
// linked-list heap, which never hands out overlapping blocks.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut s = self.state.lock();
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
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: per GlobalAlloc's contract `ptr` came from `alloc` with
            // this layout.
            unsafe { self.state.lock().heap.deallocate(p, layout) };
        }
    }
}
