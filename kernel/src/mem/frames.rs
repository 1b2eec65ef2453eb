//! The physical frame allocator: a bitmap (logic in `capos_lib::frame_bitmap`)
//! over every frame up to the highest usable address, stored in a usable
//! region found at boot.

use core::sync::atomic::{AtomicU64, Ordering};

use capos_lib::frame_bitmap::{FrameBitmap, FrameError, FRAME_SIZE};
use capos_lib::memmap::MemoryMap;

use crate::sync::IrqLock;

static FRAMES: IrqLock<Option<FrameBitmap<'static>>> = IrqLock::new(None);
static LOW_PAGE: AtomicU64 = AtomicU64::new(0);
/// Frames user-driven allocations leave to the kernel (see [`alloc_user`]).
static RESERVE: AtomicU64 = AtomicU64::new(RESERVE_FRAMES);

/// Least number of frames kept back from user-driven allocations, so
/// teardown, rollback, error completion and the kernel heap can always get
/// a frame: 2 MiB, or 1/64 of the frames free at boot if that is more.
pub const RESERVE_FRAMES: u64 = 512;

/// The free page below 1 MiB set aside for the AP start-up trampoline.
pub fn trampoline_page() -> Option<u64> {
    match LOW_PAGE.load(Ordering::Acquire) {
        0 => None,
        p => Some(p),
    }
}

/// Frames below this address are reachable through the boot page tables'
/// direct map (and, being below 4 GiB, can hold AP-visible page tables).
pub const LOW_LIMIT: u64 = 1 << 32;

/// Why the frame allocator could not start.
#[derive(Debug, Clone, Copy)]
pub enum FramesInitError {
    /// No usable region below 4 GiB can hold the bitmap.
    NoRoomForBitmap {
        /// Bytes the bitmap needs.
        bytes: u64,
    },
    /// The bitmap rejected its storage.
    Bitmap(FrameError),
}

impl core::fmt::Display for FramesInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRoomForBitmap { bytes } => {
                write!(f, "no usable region below 4 GiB holds the {bytes}-byte frame bitmap")
            }
            Self::Bitmap(e) => write!(f, "frame bitmap: {e}"),
        }
    }
}

/// Builds the allocator from the normalized memory map (kernel, modules and
/// boot information already carved out). Frame 0 is never handed out.
pub fn init(map: &MemoryMap) -> Result<(), FramesInitError> {
    let frame_count = map.max_usable_address().div_ceil(FRAME_SIZE) as usize;
    let words = FrameBitmap::words_needed(frame_count);
    let bytes = (words as u64 * 8).div_ceil(FRAME_SIZE) * FRAME_SIZE;
    let storage_phys = map
        .usable_frames()
        .map(|(first, count)| (first * FRAME_SIZE, count * FRAME_SIZE))
        .find(|&(start, len)| start >= 0x10_0000 && len >= bytes && start + bytes <= LOW_LIMIT)
        .map(|(start, _)| start)
        .ok_or(FramesInitError::NoRoomForBitmap { bytes })?;
    // SAFETY: the range is usable RAM (from the memory map, outside every
    // carved region), below 4 GiB so the boot direct map covers it, and it is
    // reserved in the bitmap below so nothing else ever owns it.
    let storage: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(super::phys_to_virt(storage_phys) as *mut u64, words)
    };
    let mut bitmap = FrameBitmap::new(storage, frame_count).map_err(FramesInitError::Bitmap)?;
    for (first, count) in map.usable_frames() {
        bitmap.add_free_range(first as usize, count as usize);
    }
    bitmap.reserve_range((storage_phys / FRAME_SIZE) as usize, (bytes / FRAME_SIZE) as usize);
    // Memory below 1 MiB is kept out of general use: one page of it is set
    // aside for the AP start-up trampoline (SIPI vectors address only the
    // first megabyte), the rest holds firmware data on many machines.
    let low_frames = (0x10_0000 / FRAME_SIZE) as usize;
    let trampoline = (1..low_frames).find(|&f| bitmap.is_free(f));
    if let Some(f) = trampoline {
        LOW_PAGE.store(f as u64 * FRAME_SIZE, Ordering::Release);
    }
    bitmap.reserve_range(0, low_frames);
    crate::kinfo!(
        "mem",
        "frame bitmap: {} frames tracked, {} free, bitmap at {:#x} ({} KiB)",
        frame_count,
        bitmap.free_count(),
        storage_phys,
        bytes / 1024
    );
    RESERVE.store(RESERVE_FRAMES.max(bitmap.free_count() as u64 / 64), Ordering::Release);
    *FRAMES.lock() = Some(bitmap);
    Ok(())
}

fn with<T>(f: impl FnOnce(&mut FrameBitmap<'static>) -> T) -> T {
    let mut guard = FRAMES.lock();
    let bitmap = guard.as_mut().expect("frame allocator initialised before use (boot order)");
    f(bitmap)
}

/// A free frame's physical address.
pub fn alloc() -> Option<u64> {
    with(|b| b.alloc()).map(|f| f as u64 * FRAME_SIZE)
}

/// A zero-filled free frame for a user-driven allocation (a process's
/// pages and page tables): refused while no more than the kernel's reserve
/// is free. The caller has charged it to the process's account.
pub fn alloc_user_zeroed() -> Option<u64> {
    let reserve = RESERVE.load(Ordering::Acquire) as usize;
    let phys = with(|b| if b.free_count() > reserve { b.alloc() } else { None })
        .map(|f| f as u64 * FRAME_SIZE)?;
    zero(phys);
    Some(phys)
}

/// Frames kept back from user-driven allocations.
pub fn reserve() -> u64 {
    RESERVE.load(Ordering::Acquire)
}

/// A free frame whose frame number is below `limit_frame`.
pub fn alloc_below(limit_frame: u64) -> Option<u64> {
    with(|b| b.alloc_below(limit_frame as usize)).map(|f| f as u64 * FRAME_SIZE)
}

/// A zero-filled free frame below [`LOW_LIMIT`] (for page tables built
/// before the final direct map exists).
pub fn alloc_zeroed_low() -> Option<u64> {
    let phys = alloc_below(LOW_LIMIT / FRAME_SIZE)?;
    zero(phys);
    Some(phys)
}

/// A zero-filled free frame.
pub fn alloc_zeroed() -> Option<u64> {
    let phys = alloc()?;
    zero(phys);
    Some(phys)
}

fn zero(phys: u64) {
    // SAFETY: the frame was just allocated to the caller and is mapped in the
    // direct map.
    unsafe { core::ptr::write_bytes(super::phys_to_virt(phys) as *mut u8, 0, FRAME_SIZE as usize) };
}

/// Returns a frame to the allocator.
pub fn free(phys: u64) -> Result<(), FrameError> {
    with(|b| b.free((phys / FRAME_SIZE) as usize))
}

/// Free frames right now.
pub fn free_count() -> usize {
    with(|b| b.free_count())
}
