//! The program heap: a linked-list allocator over a fixed arena in `.bss`.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::LockedHeap;

/// Bytes of heap every program gets.
pub const HEAP_BYTES: usize = 2 * 1024 * 1024;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_BYTES]>);

// SAFETY: the arena is handed to the allocator once (guarded by READY) and
// only ever reached through it afterwards.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_BYTES]));
static READY: AtomicBool = AtomicBool::new(false);

struct Heap(LockedHeap);

#[global_allocator]
static HEAP: Heap = Heap(LockedHeap::empty());

/// Hands the arena to the allocator (once).
pub fn init() {
    if READY.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: first and only initialisation (READY), with the whole arena,
    // which nothing else references.
    unsafe { HEAP.0.lock().init(ARENA.0.get() as *mut u8, HEAP_BYTES) };
}

/// (bytes used, bytes free).
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used(), h.free())
}

// SAFETY: delegates to the locked linked-list heap.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map(|p| p.as_ptr())
            .unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout.
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}
