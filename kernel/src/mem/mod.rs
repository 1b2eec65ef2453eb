//! Memory management: physical frames, kernel page tables, heap, stacks.
//!
//! Kernel virtual layout (the upper half is shared by every address space):
//!
//! | range start             | PML4 slot | what                                   |
//! |-------------------------|-----------|----------------------------------------|
//! | `0xffff_8000_0000_0000` | 256       | direct map of all physical memory      |
//! | `0xffff_c000_0000_0000` | 384       | kernel heap (grows on demand)          |
//! | `0xffff_d000_0000_0000` | 416       | device MMIO windows (uncached)         |
//! | `0xffff_e000_0000_0000` | 448       | kernel stacks, each over a guard page  |
//! | `0xffff_ffff_8000_0000` | 511       | kernel image                           |

pub mod account;
pub mod address_space;
pub mod frames;
pub mod heap;
pub mod paging;
pub mod shared;
pub mod stacks;
pub mod user;

/// Base of the direct map of physical memory.
pub const HHDM_BASE: u64 = 0xffff_8000_0000_0000;
/// Base of the kernel heap.
pub const HEAP_BASE: u64 = 0xffff_c000_0000_0000;
/// Largest the kernel heap may grow.
pub const HEAP_MAX: u64 = 1 << 30;
/// Base of the MMIO window.
pub const MMIO_BASE: u64 = 0xffff_d000_0000_0000;
/// Size of the MMIO window.
pub const MMIO_SIZE: u64 = 1 << 39;
/// Base of the kernel stack area.
pub const STACKS_BASE: u64 = 0xffff_e000_0000_0000;
/// Virtual base the kernel image is linked at.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
/// Page size.
pub const PAGE_SIZE: u64 = 4096;

/// The direct-map address of physical address `phys`.
pub const fn phys_to_virt(phys: u64) -> u64 {
    HHDM_BASE + phys
}

/// Maps `size` bytes of device memory at `phys` uncached; returns the
/// virtual address of `phys`.
pub fn map_mmio(phys: u64, size: u64) -> u64 {
    paging::map_mmio(phys, size).unwrap_or_else(|e| {
        panic!("mem: cannot map MMIO {phys:#x}+{size:#x}: {e}");
    })
}
