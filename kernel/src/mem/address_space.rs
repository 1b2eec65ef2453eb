//! Per-process address spaces: a private lower half, the kernel half shared
//! by copying the kernel PML4's upper 256 entries (pre-populated at boot, so
//! they never change).
//!
//! Every page mapped in the lower half belongs to the address space: dropping
//! it returns every user frame and every page-table frame. Every one of
//! those frames is charged to the owning process's [`Account`] while it is
//! held, and comes from [`frames::alloc_user_zeroed`], which leaves the
//! kernel's reserve alone.
//!
//! Nothing here allocates kernel heap except [`AddressSpace::vm_insert`]
//! and [`AddressSpace::vm_remove`] (fallibly, bounded by
//! [`MAX_VM_REGIONS`]): failure and rollback paths allocate nothing.

use alloc::sync::Arc;
use alloc::vec::Vec;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::TranslateResult;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::account::{Account, QuotaExceeded, Resource};
use super::paging::{kernel_root, PagingError};
use super::shared::SharedFrames;
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

/// Most regions the `VirtualMemory` window of one process holds.
pub const MAX_VM_REGIONS: usize = 1024;

/// Start of the window `SharedBuffer` mappings go in (apart from the
/// `VirtualMemory` window below it, so an anonymous-memory unmap can never
/// reach a shared frame).
pub const SHARED_WINDOW_START: u64 = 0x0000_2000_0000_0000;
/// End of the shared-buffer window (exclusive).
pub const SHARED_WINDOW_END: u64 = 0x0000_3000_0000_0000;
/// Most shared-buffer mappings one process holds.
pub const MAX_SHARED_MAPS: usize = 64;
/// Kernel bytes charged per shared mapping record (room for all
/// [`MAX_SHARED_MAPS`] is charged at the first mapping).
const SHARED_MAP_BYTES: u64 = core::mem::size_of::<SharedMap>() as u64;

/// One mapping in the shared-buffer window: a buffer's frames mapped whole
/// from `start`, or (`frames` `None`) device memory of `pages` pages.
struct SharedMap {
    start: u64,
    pages: u64,
    frames: Option<Arc<SharedFrames>>,
}

/// Page-table frames, charged to the account as the mapper takes them.
struct UserFrames<'a> {
    account: &'a Account,
    /// Frames handed out (and charged).
    taken: u64,
    /// Why the last request was refused.
    refused: Option<PagingError>,
}

// SAFETY: hands out fresh zeroed frames from the allocator (reachable through
// the direct map, which is live whenever address spaces exist).
unsafe impl FrameAllocator<Size4KiB> for UserFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        if let Err(q) = self.account.charge_frames(1) {
            self.refused = Some(PagingError::Quota(q));
            return None;
        }
        let Some(p) = frames::alloc_user_zeroed() else {
            self.account.uncharge_frames(1);
            self.refused = Some(PagingError::OutOfFrames);
            return None;
        };
        self.taken += 1;
        Some(PhysFrame::containing_address(PhysAddr::new(p)))
    }
}

/// A process's page tables.
pub struct AddressSpace {
    root: u64,
    mapper: OffsetPageTable<'static>,
    /// User pages currently mapped.
    pages: u64,
    /// Frames charged to `account`: pages, page tables and the root.
    charged: u64,
    account: Arc<Account>,
    /// `VirtualMemory` mappings: sorted, disjoint `(start, end)` ranges.
    vm: Vec<(u64, u64)>,
    /// Shared-buffer mappings, sorted by start. Their leaf frames belong
    /// to the [`SharedFrames`] (not counted in `pages` nor `charged`); the
    /// page tables above them are this space's.
    shared: Vec<SharedMap>,
    /// Demand-zero ranges `(start, end)` (a program's `.bss`): their frames
    /// are charged when the range is reserved (counted in `charged`) and
    /// each page is mapped, zeroed, when it is first touched, by the
    /// program or by the kernel reaching it for a call.
    lazy: arrayvec::ArrayVec<(u64, u64), MAX_LAZY>,
}

/// Most demand-zero ranges an address space has (one per ELF segment).
pub const MAX_LAZY: usize = 16;

/// Kernel bytes charged per `VirtualMemory` region record.
const VM_REGION_BYTES: u64 = 16;

/// Frames the page tables for `count` pages at `vaddr` may need at most
/// (one PT per 2 MiB touched, one PD per 1 GiB, one PDPT per 512 GiB).
pub fn table_frames_bound(vaddr: u64, count: u64) -> u64 {
    let end = vaddr.saturating_add(count.saturating_mul(PAGE_SIZE)).max(vaddr + 1);
    let spans = |shift: u32| ((end - 1) >> shift) - (vaddr >> shift) + 1;
    spans(21) + spans(30) + spans(39)
}

// SAFETY: the tables are only reached through `&mut self` (callers hold the
// process lock); the raw table pointer inside the mapper is to frames this
// object owns.
unsafe impl Send for AddressSpace {}

impl AddressSpace {
    /// A new address space with an empty lower half, charging its frames
    /// to `account`.
    pub fn new(account: Arc<Account>) -> Result<Self, PagingError> {
        account.charge_frames(1).map_err(PagingError::Quota)?;
        let Some(root) = frames::alloc_user_zeroed() else {
            account.uncharge_frames(1);
            return Err(PagingError::OutOfFrames);
        };
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
        Ok(Self {
            root,
            mapper,
            pages: 0,
            charged: 1,
            account,
            vm: Vec::new(),
            shared: Vec::new(),
            lazy: arrayvec::ArrayVec::new(),
        })
    }

    /// Private user pages mapped (shared-buffer pages not included).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The account this space charges.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
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
    /// mapped from this call. Only for an address space no other CPU runs
    /// in (a process being built): the rollback frees frames at once.
    pub fn map_new(
        &mut self,
        vaddr: u64,
        count: u64,
        writable: bool,
        executable: bool,
    ) -> Result<(), PagingError> {
        self.map_new_partial(vaddr, count, writable, executable).map_err(|(e, mapped)| {
            self.unmap(vaddr, mapped);
            e
        })
    }

    /// Reserves `count` demand-zero pages at `vaddr`: charged now, mapped
    /// writable (never executable) and zeroed on first touch.
    pub fn reserve_zeroed(&mut self, vaddr: u64, count: u64) -> Result<(), PagingError> {
        let end = check_range(vaddr, count)?;
        if count == 0 {
            return Ok(());
        }
        if self.lazy.is_full() {
            return Err(PagingError::WindowFull);
        }
        self.account.charge_frames(count).map_err(PagingError::Quota)?;
        self.charged += count;
        self.lazy.push((vaddr, end));
        Ok(())
    }

    /// Maps the page holding `vaddr` if it lies in a demand-zero range and
    /// is not mapped yet; whether it is mapped now. Its frame was charged
    /// when the range was reserved; page tables it needs are charged now
    /// (a refusal, or no free frame, leaves it unmapped).
    pub fn fault_in(&mut self, vaddr: u64) -> bool {
        let page = vaddr & !(PAGE_SIZE - 1);
        if !self.lazy.iter().any(|&(s, e)| (s..e).contains(&page)) {
            return false;
        }
        if self.mapper.translate_addr(VirtAddr::new(page)).is_some() {
            // Another thread of the process was first.
            return true;
        }
        let Some(phys) = frames::alloc_user_zeroed() else {
            crate::kwarn!("mem", "no free frame for a demand-zero page at {page:#x}");
            return false;
        };
        let flags = F::PRESENT | F::USER_ACCESSIBLE | F::WRITABLE | F::NO_EXECUTE;
        let mut tables = UserFrames { account: &self.account, taken: 0, refused: None };
        // SAFETY: a fresh frame at a user address of this address space, in
        // a range nothing else maps; intermediate tables get the USER flag.
        let mapped = unsafe {
            self.mapper.map_to(
                Page::<Size4KiB>::containing_address(VirtAddr::new(page)),
                PhysFrame::containing_address(PhysAddr::new(phys)),
                flags,
                &mut tables,
            )
        };
        self.charged += tables.taken;
        match mapped {
            Ok(flush) => {
                flush.flush();
                self.pages += 1;
                true
            }
            Err(_) => {
                let _ = frames::free(phys);
                false
            }
        }
    }

    /// Maps `count` fresh zeroed pages at `vaddr`; on failure returns the
    /// error and how many pages (from `vaddr` on) it did map, which the
    /// caller unmaps (with a TLB shootdown where other CPUs may run).
    pub fn map_new_partial(
        &mut self,
        vaddr: u64,
        count: u64,
        writable: bool,
        executable: bool,
    ) -> Result<(), (PagingError, u64)> {
        let end = check_range(vaddr, count).map_err(|e| (e, 0))?;
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
                return Err((e, (v - vaddr) / PAGE_SIZE));
            }
            v += PAGE_SIZE;
        }
        Ok(())
    }

    fn map_one(&mut self, v: u64, flags: F) -> Result<(), PagingError> {
        self.account.charge_frames(1).map_err(PagingError::Quota)?;
        let Some(phys) = frames::alloc_user_zeroed() else {
            self.account.uncharge_frames(1);
            return Err(PagingError::OutOfFrames);
        };
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        let frame = PhysFrame::containing_address(PhysAddr::new(phys));
        let mut tables = UserFrames { account: &self.account, taken: 0, refused: None };
        // SAFETY: a fresh frame at a user address of this (possibly inactive)
        // address space; intermediate tables get the USER flag from `flags`.
        let mapped = unsafe { self.mapper.map_to(page, frame, flags, &mut tables) };
        self.charged += tables.taken;
        match mapped {
            Ok(flush) => {
                flush.flush();
                self.pages += 1;
                self.charged += 1;
                Ok(())
            }
            Err(e) => {
                let _ = frames::free(phys);
                self.account.uncharge_frames(1);
                Err(tables.refused.unwrap_or_else(|| e.into()))
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
    /// in (others use [`AddressSpace::unmap_into`] and a shootdown).
    /// Allocates nothing.
    pub fn unmap(&mut self, vaddr: u64, count: u64) {
        for i in 0..count {
            if let Some(frame) = self.unmap_page(vaddr + i * PAGE_SIZE) {
                let _ = frames::free(frame);
            }
        }
    }

    fn unmap_page(&mut self, v: u64) -> Option<u64> {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        let (frame, flush) = self.mapper.unmap(page).ok()?;
        flush.flush();
        self.pages -= 1;
        self.charged -= 1;
        self.account.uncharge_frames(1);
        Some(frame.start_address().as_u64())
    }

    /// Unmaps pages from `vaddr` on (at most `count`), flushing this CPU's
    /// TLB, until `out` is full of their frames. Returns the pages walked
    /// and the frames stored; the caller frees them once no CPU can still
    /// reach them through a stale TLB entry, then goes on from
    /// `vaddr + walked` pages. Allocates nothing.
    pub fn unmap_into(&mut self, vaddr: u64, count: u64, out: &mut [u64]) -> (u64, usize) {
        let mut n = 0;
        let mut i = 0;
        while i < count && n < out.len() {
            if let Some(frame) = self.unmap_page(vaddr + i * PAGE_SIZE) {
                out[n] = frame;
                n += 1;
            }
            i += 1;
        }
        (i, n)
    }

    /// Whether `[addr, addr + len)` overlaps a `VirtualMemory` region.
    pub fn vm_overlaps(&self, addr: u64, len: u64) -> bool {
        let end = addr + len;
        // The first region ending after `addr` is the only candidate.
        let i = self.vm.partition_point(|&(_, e)| e <= addr);
        self.vm.get(i).is_some_and(|&(s, _)| s < end)
    }

    /// The lowest `len`-byte gap in `[lo, hi)` outside every region.
    pub fn vm_find_free(&self, len: u64, lo: u64, hi: u64) -> Option<u64> {
        let mut at = lo;
        for &(s, e) in &self.vm {
            if s >= at && s - at >= len {
                break;
            }
            at = at.max(e);
        }
        (at.checked_add(len)? <= hi).then_some(at)
    }

    /// Records a region (which overlaps none); fails with a named error
    /// past [`MAX_VM_REGIONS`], over the account's kernel bytes, or when the
    /// heap cannot grow the list.
    pub fn vm_insert(&mut self, addr: u64, len: u64) -> Result<(), PagingError> {
        self.vm_room()?;
        let i = self.vm.partition_point(|&(s, _)| s < addr);
        self.vm.insert(i, (addr, addr + len));
        Ok(())
    }

    fn vm_room(&mut self) -> Result<(), PagingError> {
        if self.vm.len() >= MAX_VM_REGIONS {
            return Err(PagingError::Quota(QuotaExceeded {
                resource: Resource::KernelBytes,
                limit: MAX_VM_REGIONS as u64 * VM_REGION_BYTES,
                used: self.vm.len() as u64 * VM_REGION_BYTES,
                asked: VM_REGION_BYTES,
            }));
        }
        if self.vm.len() == self.vm.capacity() {
            let grow = self.vm.capacity().clamp(4, MAX_VM_REGIONS - self.vm.len());
            self.account.charge_bytes(grow as u64 * VM_REGION_BYTES).map_err(PagingError::Quota)?;
            if self.vm.try_reserve_exact(grow).is_err() {
                self.account.uncharge_bytes(grow as u64 * VM_REGION_BYTES);
                return Err(PagingError::OutOfFrames);
            }
        }
        Ok(())
    }

    /// Removes `[addr, addr + len)` from the regions (splitting one if the
    /// range lies inside it); fails only if a split needs room it cannot
    /// get, and then changes nothing.
    pub fn vm_remove(&mut self, addr: u64, len: u64) -> Result<(), PagingError> {
        let end = addr + len;
        let i = self.vm.partition_point(|&(_, e)| e <= addr);
        if let Some(&(s, e)) = self.vm.get(i) {
            if s < addr && e > end {
                self.vm_room()?;
                self.vm[i] = (s, addr);
                self.vm.insert(i + 1, (end, e));
                return Ok(());
            }
        }
        let mut j = i;
        while j < self.vm.len() && self.vm[j].0 < end {
            let (s, e) = self.vm[j];
            if s < addr {
                self.vm[j] = (s, addr);
                j += 1;
            } else if e > end {
                self.vm[j] = (end, e);
                j += 1;
            } else {
                self.vm.remove(j);
            }
        }
        Ok(())
    }

    /// Maps all of `frames` at a free place in the shared-buffer window
    /// (with an unmapped page after it), user-readable, writable if
    /// `writable`, never executable, and records the mapping (which keeps
    /// the frames alive). Only page tables are charged to this space's
    /// account. On failure returns the error and whether any page was
    /// mapped (and unmapped again): then the caller shoots down the TLBs
    /// of the CPUs running this space before the frames may be freed.
    pub fn map_shared(
        &mut self,
        frames: &Arc<SharedFrames>,
        writable: bool,
    ) -> Result<u64, (PagingError, bool)> {
        self.reserve_shared_map().map_err(|e| (e, false))?;
        let len = frames.bytes_len();
        let start =
            self.shared_find_free(len + PAGE_SIZE).ok_or((PagingError::WindowFull, false))?;
        let pages = frames.pages();
        if self.account.left().frames < table_frames_bound(start, pages) {
            let q = QuotaExceeded {
                resource: Resource::Frames,
                limit: self.account.limits().frames,
                used: self.account.used().frames,
                asked: table_frames_bound(start, pages),
            };
            return Err((PagingError::Quota(q), false));
        }
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE | F::NO_EXECUTE;
        if writable {
            flags |= F::WRITABLE;
        }
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + i * PAGE_SIZE));
            let frame = PhysFrame::containing_address(PhysAddr::new(frames.frame(i)));
            let mut tables = UserFrames { account: &self.account, taken: 0, refused: None };
            // SAFETY: a user address of this space in the shared window,
            // where nothing else is mapped (checked by the map itself); the
            // frame stays allocated while the record made below (or, on
            // failure, the caller's `frames`) holds the SharedFrames.
            let mapped = unsafe { self.mapper.map_to(page, frame, flags, &mut tables) };
            self.charged += tables.taken;
            match mapped {
                Ok(flush) => flush.flush(),
                Err(e) => {
                    let e = tables.refused.unwrap_or_else(|| e.into());
                    for j in 0..i {
                        self.unmap_leaf(start + j * PAGE_SIZE);
                    }
                    return Err((e, i > 0));
                }
            }
        }
        let at = self.shared.partition_point(|m| m.start < start);
        // Room for MAX_SHARED_MAPS was reserved above: no allocation.
        self.shared.insert(at, SharedMap { start, pages, frames: Some(frames.clone()) });
        Ok(start)
    }

    /// Removes the mapping of `frames` at `start` and unmaps its pages
    /// (flushing this CPU's TLB only); returns the record's reference to
    /// the frames, which the caller drops once the other CPUs running this
    /// space have flushed theirs. `None` if no such mapping exists.
    /// Allocates nothing.
    pub fn unmap_shared(
        &mut self,
        start: u64,
        frames: &Arc<SharedFrames>,
    ) -> Option<Arc<SharedFrames>> {
        let i = self.shared.iter().position(|m| {
            m.start == start && m.frames.as_ref().is_some_and(|f| Arc::ptr_eq(f, frames))
        })?;
        let record = self.shared.remove(i);
        for p in 0..record.pages {
            self.unmap_leaf(start + p * PAGE_SIZE);
        }
        record.frames
    }

    /// Room for one more record in the shared window (charged for all
    /// [`MAX_SHARED_MAPS`] at the first).
    fn reserve_shared_map(&mut self) -> Result<(), PagingError> {
        if self.shared.len() >= MAX_SHARED_MAPS {
            return Err(PagingError::Quota(QuotaExceeded {
                resource: Resource::KernelBytes,
                limit: MAX_SHARED_MAPS as u64 * SHARED_MAP_BYTES,
                used: self.shared.len() as u64 * SHARED_MAP_BYTES,
                asked: SHARED_MAP_BYTES,
            }));
        }
        if self.shared.capacity() == 0 {
            let bytes = MAX_SHARED_MAPS as u64 * SHARED_MAP_BYTES;
            self.account.charge_bytes(bytes).map_err(PagingError::Quota)?;
            if self.shared.try_reserve_exact(MAX_SHARED_MAPS).is_err() {
                self.account.uncharge_bytes(bytes);
                return Err(PagingError::OutOfFrames);
            }
        }
        Ok(())
    }

    /// Maps `pages` pages of device memory from the page-aligned `phys`
    /// uncached at a free place in the shared-buffer window (with an
    /// unmapped page after it), user-writable, never executable. The
    /// memory is not the space's: it is never freed, only unmapped. Only
    /// page tables are charged. On failure returns the error and whether
    /// any page was mapped (and unmapped again: the caller shoots down).
    pub fn map_device(&mut self, phys: u64, pages: u64) -> Result<u64, (PagingError, bool)> {
        self.reserve_shared_map().map_err(|e| (e, false))?;
        let len = pages.checked_mul(PAGE_SIZE).ok_or((PagingError::WindowFull, false))?;
        let start =
            self.shared_find_free(len + PAGE_SIZE).ok_or((PagingError::WindowFull, false))?;
        if self.account.left().frames < table_frames_bound(start, pages) {
            let q = QuotaExceeded {
                resource: Resource::Frames,
                limit: self.account.limits().frames,
                used: self.account.used().frames,
                asked: table_frames_bound(start, pages),
            };
            return Err((PagingError::Quota(q), false));
        }
        let flags = F::PRESENT
            | F::USER_ACCESSIBLE
            | F::NO_EXECUTE
            | F::WRITABLE
            | F::NO_CACHE
            | F::WRITE_THROUGH;
        for i in 0..pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + i * PAGE_SIZE));
            let frame = PhysFrame::containing_address(PhysAddr::new(phys + i * PAGE_SIZE));
            let mut tables = UserFrames { account: &self.account, taken: 0, refused: None };
            // SAFETY: a user address of this space in the shared window,
            // where nothing else is mapped (checked by the map itself); the
            // frame is device memory (a BAR), never handed to the frame
            // allocator, and the record made below marks it as not ours.
            let mapped = unsafe { self.mapper.map_to(page, frame, flags, &mut tables) };
            self.charged += tables.taken;
            match mapped {
                Ok(flush) => flush.flush(),
                Err(e) => {
                    let e = tables.refused.unwrap_or_else(|| e.into());
                    for j in 0..i {
                        self.unmap_leaf(start + j * PAGE_SIZE);
                    }
                    return Err((e, i > 0));
                }
            }
        }
        let at = self.shared.partition_point(|m| m.start < start);
        // Room was reserved above: no allocation.
        self.shared.insert(at, SharedMap { start, pages, frames: None });
        Ok(start)
    }

    /// Removes the device mapping at `start` (this CPU's TLB flushed; the
    /// caller shoots down the others). False if there is none.
    pub fn unmap_device(&mut self, start: u64) -> bool {
        let Some(i) = self.shared.iter().position(|m| m.start == start && m.frames.is_none())
        else {
            return false;
        };
        let record = self.shared.remove(i);
        for p in 0..record.pages {
            self.unmap_leaf(start + p * PAGE_SIZE);
        }
        true
    }

    /// The lowest `len`-byte gap in the shared window.
    fn shared_find_free(&self, len: u64) -> Option<u64> {
        let mut at = SHARED_WINDOW_START;
        for m in &self.shared {
            if m.start >= at && m.start - at >= len {
                break;
            }
            at = at.max(m.start + m.pages * PAGE_SIZE + PAGE_SIZE);
        }
        (at.checked_add(len)? <= SHARED_WINDOW_END).then_some(at)
    }

    /// Clears the leaf entry of `v` without freeing or uncharging its
    /// frame (a shared frame). Flushes this CPU's TLB entry.
    fn unmap_leaf(&mut self, v: u64) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(v));
        if let Ok((_, flush)) = self.mapper.unmap(page) {
            flush.flush();
        }
    }

    /// Whether any page in `count` pages at `vaddr` is mapped.
    pub fn any_mapped(&self, vaddr: u64, count: u64) -> bool {
        (0..count)
            .any(|i| self.mapper.translate_addr(VirtAddr::new(vaddr + i * PAGE_SIZE)).is_some())
    }

    /// The physical address behind user address `vaddr` if the page allows
    /// `access` from user mode.
    /// A demand-zero page is mapped on the way.
    pub fn translate_user(&mut self, vaddr: u64, access: Access) -> Option<u64> {
        if let Some(phys) = self.walk_user(vaddr, access) {
            return Some(phys);
        }
        if self.fault_in(vaddr) {
            return self.walk_user(vaddr, access);
        }
        None
    }

    /// [`Self::translate_user`] of what is mapped now.
    fn walk_user(&self, vaddr: u64, access: Access) -> Option<u64> {
        if !(USER_MIN..USER_TOP).contains(&vaddr) {
            return None;
        }
        // The common case, 4 KiB pages, by a direct walk: every level must
        // be present and allow user access (and writing, for a write).
        let need = F::PRESENT
            | F::USER_ACCESSIBLE
            | if access == Access::Write { F::WRITABLE } else { F::empty() };
        let mut table = self.root;
        for level in (1..=4u32).rev() {
            let index = (vaddr >> (12 + 9 * (level - 1))) & 0x1ff;
            // SAFETY: `table` is the physical address of a page table of
            // this address space (the root, or a frame a present entry of
            // the level above names), reached through the direct map; the
            // caller holds the address-space lock, so no table is freed
            // under the walk. Entries are read as plain u64s.
            let entry = unsafe { *(phys_to_virt(table) as *const u64).add(index as usize) };
            let flags = F::from_bits_truncate(entry);
            if !flags.contains(need) {
                return None;
            }
            if level > 1 && flags.contains(F::HUGE_PAGE) {
                return self.translate_user_slow(vaddr, access);
            }
            table = entry & 0x000f_ffff_ffff_f000;
        }
        Some(table + vaddr % PAGE_SIZE)
    }

    /// `translate_user` through the mapper (huge pages).
    fn translate_user_slow(&self, vaddr: u64, access: Access) -> Option<u64> {
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
        // Shared frames are not ours to free: clear their entries first
        // (no CPU runs in this space any more, so no shootdown), and let
        // the records' references go once the tables are freed.
        let shared = core::mem::take(&mut self.shared);
        for m in &shared {
            for p in 0..m.pages {
                self.unmap_leaf(m.start + p * PAGE_SIZE);
            }
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
        self.account.uncharge_frames(self.charged);
        let cap = self.vm.capacity() as u64;
        self.account.uncharge_bytes(cap * VM_REGION_BYTES);
        if shared.capacity() > 0 {
            self.account.uncharge_bytes(MAX_SHARED_MAPS as u64 * SHARED_MAP_BYTES);
        }
        drop(shared);
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
