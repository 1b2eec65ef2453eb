//! Loading a validated static ELF into a new address space.

use capos_lib::elf::{self, ElfLimits};

use crate::mem::address_space::{AddressSpace, USER_MIN};
use crate::mem::paging::PagingError;
use crate::mem::{phys_to_virt, PAGE_SIZE};

/// Why a program could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The ELF image failed validation.
    Invalid(elf::ElfError),
    /// Mapping a segment failed (out of frames, or over the quota).
    Paging(PagingError),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "invalid ELF: {e}"),
            Self::Paging(e) => write!(f, "loading segments: {e}"),
        }
    }
}

/// Lowest address a segment may use.
const MIN_VADDR: u64 = 0x20_0000;
/// Segments must end below this (the ring, stack and startup page live above).
const MAX_VADDR: u64 = 0x0000_7000_0000_0000;

/// Validates `image` and maps its segments into `space`; returns the entry.
pub fn load(space: &mut AddressSpace, image: &[u8]) -> Result<u64, LoadError> {
    let limits =
        ElfLimits { user_top: MAX_VADDR, min_vaddr: MIN_VADDR.max(USER_MIN), max_segments: 16 };
    let elf = elf::parse(image, &limits).map_err(LoadError::Invalid)?;
    for seg in elf.segments() {
        let start = seg.vaddr & !(PAGE_SIZE - 1);
        let mut end = (seg.vaddr + seg.memsz).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        // Pages of a writable data segment past its file bytes (its `.bss`)
        // are demand-zero: charged now, mapped when first touched.
        if seg.writable && !seg.executable {
            let file_end = ((seg.vaddr + seg.file_bytes.len() as u64).div_ceil(PAGE_SIZE)
                * PAGE_SIZE)
                .max(start);
            if file_end < end {
                space
                    .reserve_zeroed(file_end, (end - file_end) / PAGE_SIZE)
                    .map_err(LoadError::Paging)?;
                end = file_end;
            }
        }
        let pages = (end - start) / PAGE_SIZE;
        // Map writable for the copy, then set the segment's permissions.
        space.map_new(start, pages, true, false).map_err(LoadError::Paging)?;
        let bytes = seg.file_bytes;
        let mut copied = 0usize;
        while copied < bytes.len() {
            let va = seg.vaddr + copied as u64;
            let n = ((PAGE_SIZE - va % PAGE_SIZE) as usize).min(bytes.len() - copied);
            let phys = space.translate_any(va).expect("segment page mapped just above");
            // SAFETY: `phys..phys+n` lies in a frame just mapped for this
            // segment (fresh, zeroed, owned by `space`), reached through the
            // direct map; `n` stays inside the page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes[copied..].as_ptr(),
                    phys_to_virt(phys) as *mut u8,
                    n,
                )
            };
            copied += n;
        }
        space.protect(start, pages, seg.writable, seg.executable);
    }
    Ok(elf.entry())
}
