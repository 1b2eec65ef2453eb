//! Per-process address spaces: a private lower half, the kernel half shared
//! by copying the kernel PML4's upper 256 entries (pre-populated at boot, so
//! they never change).
//!
//! Every page mapped in the lower half belongs to the address space: dropping
//! it returns every user frame and every page-table frame.

use alloc::vec::Vec;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::paging::{kernel_root, PagingError};
use super::{frames, phys_to_virt, HHDM_BASE, PAGE_SIZE};

/// First address user mappings may use (page 0..64 KiB stays unmapped).
pub const USER_MIN: u64 = 0x1_0000;
/// One past the highest user address.
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Access a user page must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Readable by the process.
    Read,
    /// Writable by the process.
    Write,
}

struct UserFrames;

// SAFETY: hands out fresh zeroed frames from the allocator (reachable through
// the direct map, which is live whenever address spaces exist).
unsafe impl FrameAllocator<Size4KiB> for UserFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        frames::alloc_zeroed().map(|p| PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

/// A process's page tables.
pub struct AddressSpace {
    root: u64,
    mapper: OffsetPageTable<'static>,
    /// User pages currently mapped.
    pages: u64,
}

// SAFETY: the tables are only reached through `&mut self` (callers hold the
// process lock); the raw table pointer inside the mapper is to frames this
// object owns.
unsafe impl Send for AddressSpace {}

impl AddressSpace {
    /// A new address space with an empty lower half.
    pub fn new() -> Result<Self, PagingError> {
        let root = frames::alloc_zeroed().ok_or(PagingError::OutOfFrames)?;
        // SAFETY: `root` is a fresh zeroed frame owned by this address space;
        // the kernel root is live for the kernel's lifetime.
        let (table, kernel) = unsafe {
            (
                &mut *(phys_to_virt(root) as *mut PageTable),
                &*(phys_to_virt(kernel_root()) as *const PageTable),
            )
        };
        for slot in 256..512 {
            table[slot] = kernel[slot].clone();
        }
        // SAFETY: the direct map covers every page-table frame.
        let mapper = unsafe { OffsetPageTable::new(table, VirtAddr::new(HHDM_BASE)) };
        Ok(Self { root, mapper, pages: 0 })
    }

    /// User pages mapped.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Makes this the active address space on the calling CPU.
    pub fn activate(&self) {
        let (current, _) = Cr3::read();
        if current.start_address().as_u64() != self.root {
            // SAFETY: the kernel half is identical in every address space, so
            // the running kernel code and stack stay mapped.
            unsafe {
                Cr3::write(
                    PhysFrame::containing_address(PhysAddr::new(self.root)),
                    Cr3Flags::empty(),
                )
            };
        }
    }

    /// Maps `count` fresh zeroed pages at `vaddr`. On failure nothing stays
    /// mapped from this call.
    pub fn map_new(
        &mut self,
        vaddr: u64,
        count: u64,
        writable: bool,
        executable: bool,
    ) -> Result<(), PagingError> {
        let end = check_range(vaddr, count)?;
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
        if writable {
            flags |= F::WRITABLE;
        }
        if !executable {
            flags |= F::NO_EXECUTE;
        }
        let mut v = vaddr;
        while v < end {
            if let Err(e) = self.map_one(v, flags) {
                self.unmap(vaddr, (v - vaddr) / PAGE_SIZE);
                return Err(e);
            }
            v += PAGE_SIZE;
        }
        Ok(())
    }

    fn map_one(&mut self, v: u64, flags: F) -> Result<(), PagingError> {
        let phys = frames::alloc_zeroed().ok_or(PagingError::OutOfFrames)?;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        let frame = PhysFrame::containing_address(PhysAddr::new(phys));
        // SAFETY: a fresh frame at a user address of this (possibly inactive)
        // address space; intermediate tables get the USER flag from `flags`.
        match unsafe { self.mapper.map_to(page, frame, flags, &mut UserFrames) } {
            Ok(flush) => {
                flush.flush();
                self.pages += 1;
                Ok(())
            }
            Err(e) => {
                let _ = frames::free(phys);
                Err(e.into())
            }
        }
    }

    /// Changes the permissions of mapped pages (e.g. read-only after loading).
    pub fn protect(&mut self, vaddr: u64, count: u64, writable: bool, executable: bool) {
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
        if writable {
            flags |= F::WRITABLE;
        }
        if !executable {
            flags |= F::NO_EXECUTE;
        }
        for i in 0..count {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(vaddr + i * PAGE_SIZE));
            // SAFETY: only the leaf flags of user pages change.
            if let Ok(flush) = unsafe { self.mapper.update_flags(page, flags) } {
                flush.flush();
            }
        }
    }

    /// Unmaps `count` pages at `vaddr` and frees their frames; pages that are
    /// not mapped are skipped. Only for an address space no other CPU runs
    /// in (others use [`AddressSpace::unmap_keep_frames`] and a shootdown).
    pub fn unmap(&mut self, vaddr: u64, count: u64) {
        for frame in self.unmap_keep_frames(vaddr, count) {
            let _ = frames::free(frame);
        }
    }

    /// Unmaps `count` pages at `vaddr` (flushing this CPU's TLB) and returns
    /// their frames, which the caller frees once no CPU can still reach
    /// them through a stale TLB entry.
    pub fn unmap_keep_frames(&mut self, vaddr: u64, count: u64) -> Vec<u64> {
        let mut freed = Vec::new();
        for i in 0..count {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(vaddr + i * PAGE_SIZE));
            if let Ok((frame, flush)) = self.mapper.unmap(page) {
                flush.flush();
                freed.push(frame.start_address().as_u64());
                self.pages -= 1;
            }
        }
        freed
    }

    /// Whether any page in `count` pages at `vaddr` is mapped.
    pub fn any_mapped(&self, vaddr: u64, count: u64) -> bool {
        (0..count)
            .any(|i| self.mapper.translate_addr(VirtAddr::new(vaddr + i * PAGE_SIZE)).is_some())
    }

    /// The physical address behind user address `vaddr` if the page allows
    /// `access` from user mode.
    pub fn translate_user(&self, vaddr: u64, access: Access) -> Option<u64> {
        if !(USER_MIN..USER_TOP).contains(&vaddr) {
            return None;
        }
        match self.mapper.translate(VirtAddr::new(vaddr)) {
            TranslateResult::Mapped { frame, offset, flags } => {
                if !flags.contains(F::USER_ACCESSIBLE) {
                    return None;
                }
                if access == Access::Write && !flags.contains(F::WRITABLE) {
                    return None;
                }
                Some(frame.start_address().as_u64() + offset)
            }
            _ => None,
        }
    }

    /// Physical address of a mapped page, regardless of user permissions
    /// (for the kernel's own setup writes, e.g. into read-only segments).
    pub fn translate_any(&self, vaddr: u64) -> Option<u64> {
        self.mapper.translate_addr(VirtAddr::new(vaddr)).map(|p| p.as_u64())
    }
}

fn check_range(vaddr: u64, count: u64) -> Result<u64, PagingError> {
    let end = count
        .checked_mul(PAGE_SIZE)
        .and_then(|len| vaddr.checked_add(len))
        .ok_or(PagingError::WindowFull)?;
    if !vaddr.is_multiple_of(PAGE_SIZE) || vaddr < USER_MIN || end > USER_TOP {
        return Err(PagingError::WindowFull);
    }
    Ok(end)
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // Never free the tables the CPU is using.
        let (current, _) = Cr3::read();
        if current.start_address().as_u64() == self.root {
            // SAFETY: the kernel root maps the whole kernel half.
            unsafe {
                Cr3::write(
                    PhysFrame::containing_address(PhysAddr::new(kernel_root())),
                    Cr3Flags::empty(),
                )
            };
        }
        // SAFETY: the root frame is ours and mapped in the direct map.
        let pml4 = unsafe { &mut *(phys_to_virt(self.root) as *mut PageTable) };
        for slot in 0..256 {
            if pml4[slot].is_unused() {
                continue;
            }
            free_table(pml4[slot].addr().as_u64(), 3);
            pml4[slot].set_unused();
        }
        let _ = frames::free(self.root);
    }
}

/// Frees a page table of `level` (3 = PDPT, 2 = PD, 1 = PT), everything it
/// maps, and itself.
fn free_table(phys: u64, level: u8) {
    // SAFETY: `phys` is a page-table frame of a dying address space, reached
    // through the direct map; nothing else references it.
    let table = unsafe { &mut *(phys_to_virt(phys) as *mut PageTable) };
    for entry in table.iter_mut() {
        if entry.is_unused() {
            continue;
        }
        let addr = entry.addr().as_u64();
        if level == 1 || entry.flags().contains(F::HUGE_PAGE) {
            // User mappings are all 4 KiB pages this space owns.
            let _ = frames::free(addr);
        } else {
            free_table(addr, level - 1);
        }
        entry.set_unused();
    }
    let _ = frames::free(phys);
}
