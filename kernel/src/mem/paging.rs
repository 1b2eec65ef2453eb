//! The kernel page tables.
//!
//! Built once at boot, replacing the boot trampoline's tables: the kernel
//! image with per-section permissions (text RX, rodata R, data/bss RW+NX),
//! the direct map of every memory-map region with 2 MiB pages (RW+NX), and
//! all 256 upper-half PML4 slots pre-populated so every future address space
//! can share the kernel half by copying them.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use capos_lib::memmap::MemoryMap;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags as F,
    PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::{frames, phys_to_virt, HHDM_BASE, KERNEL_VMA, MMIO_BASE, MMIO_SIZE};
use crate::sync::IrqLock;

struct KernelTables {
    mapper: OffsetPageTable<'static>,
    mmio_next: u64,
}

static KERNEL: IrqLock<Option<KernelTables>> = IrqLock::new(None);
static ROOT: AtomicU64 = AtomicU64::new(0);
/// Set once the final direct map is live: page-table frames may then come
/// from anywhere in RAM.
static DIRECT_MAP_LIVE: AtomicBool = AtomicBool::new(false);

/// A paging operation that failed.
#[derive(Debug, Clone, Copy)]
pub enum PagingError {
    /// No free frame for a page table or page.
    OutOfFrames,
    /// The page is already mapped.
    AlreadyMapped(u64),
    /// The virtual window for this kind of mapping is exhausted.
    WindowFull,
    /// The owning process's account refused the frame.
    Quota(super::account::QuotaExceeded),
}

impl core::fmt::Display for PagingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfFrames => f.write_str("out of physical frames"),
            Self::AlreadyMapped(v) => write!(f, "virtual address {v:#x} is already mapped"),
            Self::WindowFull => f.write_str("virtual window exhausted"),
            Self::Quota(q) => write!(f, "{q}"),
        }
    }
}

/// The transport error a user-driven mapping that failed completes with:
/// `QuotaExceeded` over the account, `NoMemory` otherwise.
impl From<PagingError> for capos_abi::TransportError {
    fn from(e: PagingError) -> Self {
        match e {
            PagingError::Quota(_) => Self::QuotaExceeded,
            _ => Self::NoMemory,
        }
    }
}

impl<S: PageSize> From<MapToError<S>> for PagingError {
    fn from(e: MapToError<S>) -> Self {
        match e {
            MapToError::FrameAllocationFailed => Self::OutOfFrames,
            MapToError::ParentEntryHugePage => Self::AlreadyMapped(0),
            MapToError::PageAlreadyMapped(f) => Self::AlreadyMapped(f.start_address().as_u64()),
        }
    }
}

struct TableFrames;

// SAFETY: every frame returned is freshly allocated, unused and zeroed, and
// (until the direct map is live) below 4 GiB so the boot map reaches it.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let phys = if DIRECT_MAP_LIVE.load(Ordering::Acquire) {
            frames::alloc_zeroed()
        } else {
            frames::alloc_zeroed_low()
        }?;
        Some(PhysFrame::containing_address(PhysAddr::new(phys)))
    }
}

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Switches this CPU to the kernel's own page tables (no user half).
pub fn activate_kernel_space() {
    let root = kernel_root();
    let (current, _) = Cr3::read();
    if current.start_address().as_u64() != root {
        // SAFETY: the kernel tables map the whole kernel half, identical in
        // every address space.
        unsafe {
            Cr3::write(PhysFrame::containing_address(PhysAddr::new(root)), Cr3Flags::empty())
        };
    }
}

/// Physical address of the kernel PML4.
pub fn kernel_root() -> u64 {
    ROOT.load(Ordering::Acquire)
}

fn map_4k_range(
    mapper: &mut OffsetPageTable<'static>,
    virt_start: u64,
    virt_end: u64,
    flags: F,
) -> Result<(), PagingError> {
    let mut v = virt_start;
    while v < virt_end {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        let frame = PhysFrame::containing_address(PhysAddr::new(v - KERNEL_VMA));
        // SAFETY: maps a kernel-image page to its own load address in the new
        // (not yet active) table.
        unsafe { mapper.map_to(page, frame, flags, &mut TableFrames)?.ignore() };
        v += Size4KiB::SIZE;
    }
    Ok(())
}

/// Builds the kernel page tables from the memory map and switches to them.
pub fn init(map: &MemoryMap) -> Result<(), PagingError> {
    let root = frames::alloc_zeroed_low().ok_or(PagingError::OutOfFrames)?;
    // SAFETY: `root` is a fresh zeroed frame reachable through the boot
    // direct map; it becomes the kernel's PML4 and lives forever.
    let pml4: &'static mut PageTable = unsafe { &mut *(phys_to_virt(root) as *mut PageTable) };
    for slot in 256..512 {
        let pdpt = frames::alloc_zeroed_low().ok_or(PagingError::OutOfFrames)?;
        pml4[slot].set_addr(PhysAddr::new(pdpt), F::PRESENT | F::WRITABLE);
    }
    // SAFETY: the direct map at HHDM_BASE covers every page-table frame
    // (boot map now, final map after the switch).
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(HHDM_BASE)) };

    // SAFETY: linker-script symbols; only their addresses are used.
    let (ts, te, rs, re, ds, de) = unsafe {
        (
            sym(&__text_start),
            sym(&__text_end),
            sym(&__rodata_start),
            sym(&__rodata_end),
            sym(&__data_start),
            sym(&__data_end),
        )
    };
    map_4k_range(&mut mapper, ts, te, F::PRESENT | F::GLOBAL)?;
    map_4k_range(&mut mapper, rs, re, F::PRESENT | F::GLOBAL | F::NO_EXECUTE)?;
    map_4k_range(&mut mapper, ds, de, F::PRESENT | F::WRITABLE | F::GLOBAL | F::NO_EXECUTE)?;

    let huge = Size2MiB::SIZE;
    let mut mapped_2m = 0u64;
    for r in map.regions() {
        let mut p = r.start & !(huge - 1);
        let end = r.end.saturating_add(huge - 1) & !(huge - 1);
        while p < end {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(HHDM_BASE + p));
            if matches!(mapper.translate(page.start_address()), TranslateResult::NotMapped) {
                let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(p));
                let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL | F::HUGE_PAGE;
                // SAFETY: a direct-map page for physical memory the firmware
                // described; the table is not active yet.
                unsafe { mapper.map_to(page, frame, flags, &mut TableFrames)?.ignore() };
                mapped_2m += 1;
            }
            p += huge;
        }
    }

    // SAFETY: the new tables map the running kernel (text, data, stack in
    // .bss) and the direct map at the same virtual addresses as the boot
    // tables; global pages only cover kernel-half mappings.
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
        Cr3::write(PhysFrame::containing_address(PhysAddr::new(root)), Cr3Flags::empty());
    }
    ROOT.store(root, Ordering::Release);
    DIRECT_MAP_LIVE.store(true, Ordering::Release);
    crate::kinfo!(
        "mem",
        "kernel page tables live: root {:#x}, direct map {} MiB in 2 MiB pages, text RX / rodata R / data RW+NX",
        root,
        mapped_2m * 2
    );
    *KERNEL.lock() = Some(KernelTables { mapper, mmio_next: MMIO_BASE });
    Ok(())
}

fn with<T>(f: impl FnOnce(&mut KernelTables) -> T) -> T {
    let mut guard = KERNEL.lock();
    f(guard.as_mut().expect("kernel page tables exist (boot order)"))
}

/// Maps `count` fresh zeroed frames at `virt` (kernel RW+NX). On failure
/// every page mapped by this call is unmapped and freed again.
pub fn map_fresh(virt: u64, count: u64) -> Result<(), PagingError> {
    with(|k| {
        for i in 0..count {
            let res = frames::alloc_zeroed().ok_or(PagingError::OutOfFrames).and_then(|phys| {
                let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt + i * 4096));
                let frame = PhysFrame::containing_address(PhysAddr::new(phys));
                let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
                // SAFETY: a fresh frame at a kernel virtual address the
                // caller owns (heap or stack window).
                match unsafe { k.mapper.map_to(page, frame, flags, &mut TableFrames) } {
                    Ok(flush) => {
                        flush.flush();
                        Ok(())
                    }
                    Err(e) => {
                        let _ = frames::free(phys);
                        Err(e.into())
                    }
                }
            });
            if let Err(e) = res {
                for j in 0..i {
                    unmap_free(k, virt + j * 4096);
                }
                return Err(e);
            }
        }
        Ok(())
    })
}

fn unmap_free(k: &mut KernelTables, virt: u64) {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    if let Ok((frame, flush)) = k.mapper.unmap(page) {
        flush.flush();
        let _ = frames::free(frame.start_address().as_u64());
    }
}

/// Maps device memory uncached in the MMIO window.
pub fn map_mmio(phys: u64, size: u64) -> Result<u64, PagingError> {
    let first = phys & !0xfff;
    let last = (phys + size.max(1) + 0xfff) & !0xfff;
    let pages = (last - first) / 4096;
    with(|k| {
        let base = k.mmio_next;
        if base + pages * 4096 > MMIO_BASE + MMIO_SIZE {
            return Err(PagingError::WindowFull);
        }
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(base + i * 4096));
            let frame = PhysFrame::containing_address(PhysAddr::new(first + i * 4096));
            let flags = F::PRESENT
                | F::WRITABLE
                | F::NO_EXECUTE
                | F::GLOBAL
                | F::NO_CACHE
                | F::WRITE_THROUGH;
            // SAFETY: device registers at a fresh virtual address in the MMIO
            // window; only the requesting driver code uses it.
            unsafe { k.mapper.map_to(page, frame, flags, &mut TableFrames)?.flush() };
        }
        k.mmio_next = base + pages * 4096;
        Ok(base + (phys - first))
    })
}

/// A kernel virtual address for reading `size` bytes of firmware tables at
/// `phys`: the direct map when it covers them, else a fresh MMIO mapping.
pub fn map_firmware(phys: u64, size: u64) -> Result<u64, PagingError> {
    let covered = with(|k| {
        let a = k.mapper.translate_addr(VirtAddr::new(phys_to_virt(phys)));
        let b = k.mapper.translate_addr(VirtAddr::new(phys_to_virt(phys + size.max(1) - 1)));
        a.is_some() && b.is_some()
    });
    if covered {
        Ok(phys_to_virt(phys))
    } else {
        map_mmio(phys, size)
    }
}

/// Identity-maps one low page (executable) for the AP start-up trampoline.
pub fn map_identity_page(phys: u64) -> Result<(), PagingError> {
    with(|k| {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys));
        let frame = PhysFrame::containing_address(PhysAddr::new(phys));
        // SAFETY: a low page owned by the AP start-up code, mapped at its own
        // physical address in the (otherwise empty) lower half.
        unsafe {
            k.mapper.map_to(page, frame, F::PRESENT | F::WRITABLE, &mut TableFrames)?.flush()
        };
        Ok(())
    })
}

/// Removes the mapping made by [`map_identity_page`]. The page-table pages
/// under PML4 slot 0 stay allocated: APs may still cache them.
pub fn unmap_identity_page(phys: u64) {
    with(|k| {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys));
        if let Ok((_, flush)) = k.mapper.unmap(page) {
            flush.flush();
        }
    });
}
