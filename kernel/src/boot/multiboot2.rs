//! Multiboot2 (GRUB 2) adapter.
//!
//! The boot information block is parsed by the bounds-checked
//! `capos_lib::multiboot2` parser; this file only reaches the block through
//! the boot direct map and fills in [`BootInfo`].

use capos_lib::memmap::{MemoryMap, RegionKind};
use capos_lib::multiboot2::{self as mb2, Mb2Error};

use super::{BootInfo, Module, MAX_MODULES};
use crate::mem::phys_to_virt;

/// The value a Multiboot2 loader leaves in EAX.
pub const MAGIC: u32 = 0x36d7_6289;
/// Largest boot information block accepted.
const MAX_BLOCK: u32 = 1 << 20;

/// Why the boot information could not be used.
#[derive(Debug, Clone, Copy)]
pub enum BootError {
    /// EAX did not hold the Multiboot2 magic: not started by a Multiboot2 loader.
    BadMagic(u32),
    /// The block's address is null or misaligned.
    BadAddress(u32),
    /// The block claims to be larger than [`MAX_BLOCK`].
    TooLarge(u32),
    /// The block is malformed.
    Malformed(Mb2Error),
    /// The loader gave no memory map.
    NoMemoryMap,
    /// More memory-map entries than the kernel keeps.
    MemoryMapFull,
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "boot magic {m:#x} is not Multiboot2 ({MAGIC:#x})"),
            Self::BadAddress(a) => {
                write!(f, "boot information address {a:#x} is null or misaligned")
            }
            Self::TooLarge(s) => write!(f, "boot information claims {s} bytes (limit {MAX_BLOCK})"),
            Self::Malformed(e) => write!(f, "boot information malformed: {e}"),
            Self::NoMemoryMap => f.write_str("boot loader gave no memory map"),
            Self::MemoryMapFull => f.write_str("memory map has more entries than the kernel keeps"),
        }
    }
}

extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

/// Builds [`BootInfo`] from the registers GRUB left.
pub fn parse(magic: u32, mbi_phys: u32) -> Result<BootInfo, BootError> {
    if magic != MAGIC {
        return Err(BootError::BadMagic(magic));
    }
    if mbi_phys == 0 || !mbi_phys.is_multiple_of(8) {
        return Err(BootError::BadAddress(mbi_phys));
    }
    let base = phys_to_virt(mbi_phys as u64) as *const u8;
    // SAFETY: the boot tables map the first 4 GiB at the direct-map base and
    // the loader placed the block there; the first 8 bytes hold its size.
    let total = unsafe { core::ptr::read_unaligned(base as *const u32) };
    if total > MAX_BLOCK {
        return Err(BootError::TooLarge(total));
    }
    // SAFETY: as above; `total` is bounded, and the block's memory is carved
    // out of usable RAM below so it stays intact for the kernel's lifetime.
    let block: &'static [u8] = unsafe { core::slice::from_raw_parts(base, total.max(8) as usize) };
    let info = mb2::parse(block).map_err(BootError::Malformed)?;

    let mut map = MemoryMap::new();
    let mut any = false;
    for e in info.memory_map() {
        map.add(e.base, e.length, e.kind).map_err(|_| BootError::MemoryMapFull)?;
        any = true;
    }
    if !any {
        return Err(BootError::NoMemoryMap);
    }
    let (ks, ke) = (
        core::ptr::addr_of!(__kernel_phys_start) as u64,
        core::ptr::addr_of!(__kernel_phys_end) as u64,
    );
    let carve = |map: &mut MemoryMap, s: u64, e: u64, k: RegionKind| {
        map.carve(s, e, k).map_err(|_| BootError::MemoryMapFull)
    };
    carve(&mut map, ks, ke, RegionKind::Kernel)?;
    carve(&mut map, mbi_phys as u64, mbi_phys as u64 + total as u64, RegionKind::BootInfo)?;

    let mut modules = [None; MAX_MODULES];
    let mut count = 0;
    let mut dropped = 0;
    for m in info.modules() {
        if m.end < m.start {
            continue;
        }
        carve(&mut map, m.start as u64, m.end as u64, RegionKind::Module)?;
        if count < MAX_MODULES {
            modules[count] =
                Some(Module { name: m.name, start: m.start as u64, end: m.end as u64 });
            count += 1;
        } else {
            dropped += 1;
        }
    }
    map.normalize().map_err(|_| BootError::MemoryMapFull)?;

    Ok(BootInfo {
        memory_map: map,
        modules,
        modules_dropped: dropped,
        cmdline: info.command_line().unwrap_or(""),
        cmdline_invalid: info.command_line().is_none() && info.command_line_invalid_utf8(),
        rsdp: info.rsdp(),
        framebuffer: info.framebuffer(),
        bootloader: info.bootloader_name().unwrap_or("unknown"),
        unknown_tags: info.unknown_tags(),
    })
}
