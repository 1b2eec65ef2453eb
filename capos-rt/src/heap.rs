//! The program heap: a linked-list allocator over a fixed arena in `.bss`,
//! plus up to [`MAX_REGIONS`] regions a program adds with [`grow`] (memory
//! it maps through its `VirtualMemory` cap) when it needs more than the
//! arena, e.g. the working memory of a memory-hard password hash.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// Regions [`grow`] can add.
pub const MAX_REGIONS: usize = 4;

/// A region added by [`grow`]: its allocator and address range.
struct Region {
    heap: LockedHeap,
    start: AtomicUsize,
    end: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_REGION: Region =
    Region { heap: LockedHeap::empty(), start: AtomicUsize::new(0), end: AtomicUsize::new(0) };

static REGIONS: [Region; MAX_REGIONS] = [EMPTY_REGION; MAX_REGIONS];
/// Slots taken by [`grow`] (a slot is in use once its `end` is set).
static REGIONS_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// The regions [`grow`] has set up.
fn regions() -> impl Iterator<Item = &'static Region> {
    REGIONS.iter().filter(|r| r.end.load(Ordering::Acquire) != 0)
}

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

/// (bytes used, bytes free), regions included.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    let (mut used, mut free) = (h.used(), h.free());
    for r in regions() {
        let h = r.heap.lock();
        used += h.used();
        free += h.free();
    }
    (used, free)
}

/// Why [`grow`] failed.
#[derive(Debug)]
pub enum GrowError {
    /// All [`MAX_REGIONS`] regions are in use.
    NoRegionLeft,
    /// `bytes` is 0 or not a whole number of pages.
    BadSize(usize),
    /// The `VirtualMemory.map` call failed.
    Map(capos_schema::CallError),
}

impl core::fmt::Display for GrowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRegionLeft => write!(f, "the heap already has {MAX_REGIONS} extra regions"),
            Self::BadSize(b) => write!(f, "{b} bytes is not a positive whole number of pages"),
            Self::Map(e) => write!(f, "mapping heap memory failed: {e}"),
        }
    }
}

/// Adds `bytes` (a whole number of 4 KiB pages) of memory, mapped through
/// the `VirtualMemory` cap `vm`, to the heap.
pub fn grow(rt: &crate::Runtime, vm: u64, bytes: usize) -> Result<(), GrowError> {
    if bytes == 0 || !bytes.is_multiple_of(4096) {
        return Err(GrowError::BadSize(bytes));
    }
    // Threads may grow at once: each takes a slot of its own.
    let index = REGIONS_TAKEN.fetch_add(1, Ordering::AcqRel);
    if index >= MAX_REGIONS {
        REGIONS_TAKEN.fetch_sub(1, Ordering::AcqRel);
        return Err(GrowError::NoRegionLeft);
    }
    let addr = capos_schema::VirtualMemoryClient::new(rt, vm)
        .map(0, bytes as u64, true)
        .map_err(GrowError::Map)?;
    let region = &REGIONS[index];
    // SAFETY: the kernel just mapped `bytes` of zeroed, writable memory at
    // `addr` for this process alone, and nothing else refers to it; slot
    // `index` is this call's alone (REGIONS_TAKEN), and nothing allocates
    // from it before `end` is published below.
    unsafe { region.heap.lock().init(addr as *mut u8, bytes) };
    region.start.store(addr as usize, Ordering::Release);
    region.end.store(addr as usize + bytes, Ordering::Release);
    Ok(())
}

/// The added region holding `ptr`, if any.
fn region_of(ptr: usize) -> Option<&'static Region> {
    regions()
        .find(|r| (r.start.load(Ordering::Acquire)..r.end.load(Ordering::Acquire)).contains(&ptr))
}

// SAFETY: delegates to the locked linked-list heap.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Ok(p) = self.0.lock().allocate_first_fit(layout) {
            return p.as_ptr();
        }
        regions()
            .find_map(|r| r.heap.lock().allocate_first_fit(layout).ok())
            .map(|p| p.as_ptr())
            .unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            match region_of(ptr as usize) {
                // SAFETY: `ptr` came from `alloc` with this layout, from
                // this region (its address range says so).
                Some(r) => unsafe { r.heap.lock().deallocate(p, layout) },
                // SAFETY: `ptr` came from `alloc` with this layout, from the
                // arena.
                None => unsafe { self.0.lock().deallocate(p, layout) },
            }
        }
    }
}
