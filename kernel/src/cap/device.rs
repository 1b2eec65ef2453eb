//! The device manager (`devices`) and the caps of a claimed PCI function:
//! `Device`, `DeviceMmio`, `DmaPool`, `DmaBuffer`, `Interrupt`.
//!
//! A claim is one [`Claim`]: the function's table entry (marked claimed in
//! `dev::pci`), the BAR mappings and DMA buffers made through it, and the
//! device vectors its Interrupts use. The `Device` cap owns the claim: when
//! the last cap to it is gone (a driver's exit drops its table), the claim
//! is released in this order: bus mastering and MSI-X are turned off and
//! every vector masked at the device, the vectors are given back (pending
//! waits end with `Revoked`), the BARs and DMA buffers are unmapped from
//! their holders with a TLB shootdown, and only then are the DMA frames
//! freed and the table entry released. Every cap derived from the claim
//! fails with `Revoked` from then on.
//!
//! No IOMMU: a device address is a physical address, and a driver with bus
//! mastering reaches all memory. No interrupt remapping: a driver that maps
//! the BAR holding the MSI-X table can retarget its vectors.
//!
//! Locks: a claim's state, then an address space; shootdowns and
//! completions with neither held.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use capos_abi::TransportError;
use capos_lib::pci::{command, Address, BarKind, BarSlot, Capability, VirtioCfgType, MAX_BARS};
use capos_schema::capos_capnp::{
    device, device_manager, device_mmio, dma_buffer, dma_pool, interrupt, pci_device,
};
use capos_schema::{
    dispatch_device_in, dispatch_device_manager_in, dispatch_device_mmio_in,
    dispatch_dma_buffer_in, dispatch_dma_pool_in, dispatch_interrupt_in, DeviceManagerServer,
    DeviceMmioServer, DeviceServer, DmaBufferServer, DmaPoolServer, InterruptServer, ServerError,
};

use super::{exception, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame, Refusal};
use crate::arch::x86_64::trap::{self, DEVICE_VECTORS, VEC_DEVICE_BASE};
use crate::completion::PendingCall;
use crate::dev::pci::{self, Function, MAX_FUNCTIONS};
use crate::mem::account::Account;
use crate::mem::paging::PagingError;
use crate::mem::shared::SharedFrames;
use crate::mem::PAGE_SIZE;
use crate::proc::Process;
use crate::sync::IrqLock;

/// Largest DMA pool budget.
pub const MAX_POOL_BYTES: u64 = 64 * 1024 * 1024;
/// Largest DMA buffer: one frame (physically contiguous).
pub const MAX_DMA_BYTES: u64 = PAGE_SIZE;
/// Most live DMA buffers of one claim.
pub const MAX_DMA_BUFFERS: usize = 256;
/// Most BAR mappings of one claim.
pub const MAX_MMIO_MAPS: usize = 16;
/// Most Interrupts of one claim.
pub const MAX_VECTORS: usize = 32;

/// Kernel bytes charged to the claimer for the claim's records.
const CLAIM_BYTES: u64 = (core::mem::size_of::<Claim>()
    + MAX_DMA_BUFFERS * core::mem::size_of::<DmaEntry>()
    + MAX_MMIO_MAPS * core::mem::size_of::<MmioMap>()
    + MAX_VECTORS * core::mem::size_of::<(u16, usize)>()) as u64;

/// MSI-X message control: enable, function mask.
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// MSI message control: enable, multiple message enable (bits 4..7).
const MSI_ENABLE: u16 = 1 << 0;
const MSI_MME: u16 = 0b111 << 4;

/// Kernel addresses of each function's MSI-X table (mapped once, kept).
static MSIX_TABLES: [AtomicU64; MAX_FUNCTIONS] = [const { AtomicU64::new(0) }; MAX_FUNCTIONS];

/// The Interrupt each device vector belongs to.
static VECTOR_OWNERS: [IrqLock<Option<Weak<KernelInterrupt>>>; DEVICE_VECTORS] =
    [const { IrqLock::new(None) }; DEVICE_VECTORS];

struct MmioMap {
    /// The DeviceMmio cap's id.
    id: u64,
    process: Weak<Process>,
    addr: u64,
}

struct DmaEntry {
    id: u64,
    pool: u64,
    process: Weak<Process>,
    addr: u64,
    bytes: u64,
    frames: Arc<SharedFrames>,
}

struct ClaimState {
    maps: Vec<MmioMap>,
    dma: Vec<DmaEntry>,
    /// (MSI-X entry, device vector slot).
    vectors: Vec<(u16, usize)>,
    next_id: u64,
}

/// One claimed function.
pub struct Claim {
    /// Its entry in `dev::pci::functions()`.
    index: usize,
    released: AtomicBool,
    state: IrqLock<ClaimState>,
    account: Arc<Account>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.account.uncharge_bytes(CLAIM_BYTES);
    }
}

/// Why a device operation was refused.
enum DevError {
    NotFound(&'static str),
    Invalid(&'static str),
    State(&'static str),
    Exhausted(&'static str),
    Unsupported(&'static str),
    Revoked,
    Exiting,
    Paging(PagingError),
}

fn server_error(e: DevError, refusal: &Refusal) -> ServerError {
    match e {
        DevError::NotFound(m) => ServerError::exception(exception::NOT_FOUND, m),
        DevError::Invalid(m) => ServerError::exception(exception::INVALID_ARGUMENT, m),
        DevError::State(m) => ServerError::exception(exception::BAD_STATE, m),
        DevError::Exhausted(m) => ServerError::exception(exception::EXHAUSTED, m),
        DevError::Unsupported(m) => ServerError::exception(exception::UNSUPPORTED, m),
        DevError::Revoked => refusal.refuse(TransportError::Revoked),
        DevError::Exiting => ServerError::exception(exception::BAD_STATE, "process is exiting"),
        DevError::Paging(PagingError::WindowFull) => {
            ServerError::exception(exception::EXHAUSTED, "shared-buffer window full")
        }
        DevError::Paging(e) => refusal.refuse(e.into()),
    }
}

fn shootdown(p: &Arc<Process>) {
    crate::arch::x86_64::tlb::shootdown(crate::sched::cpus_running(p));
}

impl Claim {
    fn function(&self) -> &'static Function {
        &pci::functions()[self.index]
    }

    fn addr(&self) -> Address {
        self.function().addr
    }

    fn live(&self) -> Result<(), DevError> {
        if self.released.load(Ordering::Acquire) {
            Err(DevError::Revoked)
        } else {
            Ok(())
        }
    }

    fn msix(&self) -> Option<(u8, u16, u8, u32)> {
        self.function().caps.iter().find_map(|c| match c {
            Ok(Capability::MsiX { offset, table_size, table, .. }) => {
                Some((*offset, *table_size, table.bar, table.offset))
            }
            _ => None,
        })
    }

    /// The kernel address of MSI-X entry `entry` (the table mapped on first
    /// use).
    fn msix_entry(&self, entry: u16) -> Result<*mut u32, DevError> {
        let (_, size, bar, offset) = self.msix().ok_or(DevError::Unsupported("no MSI-X"))?;
        if entry >= size {
            return Err(DevError::Invalid("MSI-X entry out of the table"));
        }
        let mut base = MSIX_TABLES[self.index].load(Ordering::Acquire);
        if base == 0 {
            let Some(BarSlot::Bar(b)) = self.function().bars.get(bar as usize) else {
                return Err(DevError::Unsupported("MSI-X table in an unimplemented BAR"));
            };
            if b.kind == BarKind::Io || b.address == 0 {
                return Err(DevError::Unsupported("MSI-X table BAR not memory"));
            }
            let table = b.address + u64::from(offset);
            let mapped = crate::mem::paging::map_mmio(table, u64::from(size) * 16)
                .map_err(DevError::Paging)?;
            base = match MSIX_TABLES[self.index].compare_exchange(
                0,
                mapped,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => mapped,
                Err(other) => other,
            };
        }
        Ok((base + u64::from(entry) * 16) as *mut u32)
    }

    /// The MSI capability: offset, 64-bit address, per-vector masking.
    fn msi(&self) -> Option<(u8, bool, bool)> {
        self.function().caps.iter().find_map(|c| match c {
            Ok(Capability::Msi { offset, addr64, per_vector_mask, .. }) => {
                Some((*offset, *addr64, *per_vector_mask))
            }
            _ => None,
        })
    }

    /// Masks or unmasks MSI vector 0: its mask bit when the function has
    /// per-vector masking, else the MSI enable bit.
    fn mask_msi(&self, masked: bool) {
        let Some((off, addr64, pvm)) = self.msi() else { return };
        let off = u16::from(off);
        if pvm {
            let mask_reg = off + if addr64 { 0x10 } else { 0x0c };
            let old = pci::config_read32(self.addr(), mask_reg);
            let new = if masked { old | 1 } else { old & !1 };
            pci::config_write32(self.addr(), mask_reg, new);
        } else if masked {
            pci::config_update16(self.addr(), off + 2, MSI_ENABLE, 0);
        } else {
            pci::config_update16(self.addr(), off + 2, MSI_MME, MSI_ENABLE);
        }
    }

    /// Sets or clears the mask of vector `entry` (an MSI-X entry, or MSI
    /// vector 0 on a function without MSI-X).
    fn mask_entry(&self, entry: u16, masked: bool) {
        if self.msix().is_none() {
            return self.mask_msi(masked);
        }
        if let Ok(e) = self.msix_entry(entry) {
            // SAFETY: `e` is entry `entry` (in the table) of the MSI-X table
            // mapped uncached in the kernel's MMIO window; dword 3 is its
            // vector control.
            unsafe { core::ptr::write_volatile(e.add(3), u32::from(masked)) };
        }
    }

    /// Releases the claim (see the module documentation for the order).
    fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let addr = self.addr();
        pci::config_update16(addr, capos_lib::pci::reg::COMMAND, command::BUS_MASTER, 0);
        let (maps, dma, vectors) = {
            let mut st = self.state.lock();
            (
                core::mem::take(&mut st.maps),
                core::mem::take(&mut st.dma),
                core::mem::take(&mut st.vectors),
            )
        };
        for &(entry, _) in &vectors {
            self.mask_entry(entry, true);
        }
        if let Some((off, ..)) = self.msix() {
            pci::config_update16(addr, u16::from(off) + 2, MSIX_ENABLE, MSIX_FUNCTION_MASK);
        }
        if let Some((off, ..)) = self.msi() {
            pci::config_update16(addr, u16::from(off) + 2, MSI_ENABLE | MSI_MME, 0);
        }
        for &(_, slot) in &vectors {
            let owner = VECTOR_OWNERS[slot].lock().take();
            trap::free_device_vector(slot);
            if let Some(irq) = owner.and_then(|w| w.upgrade()) {
                irq.end(TransportError::Revoked);
            }
        }
        for m in &maps {
            let Some(p) = m.process.upgrade() else { continue };
            let done = p.space.lock().as_mut().is_some_and(|s| s.unmap_device(m.addr));
            if done {
                shootdown(&p);
            }
        }
        for d in &dma {
            let Some(p) = d.process.upgrade() else { continue };
            let record = p.space.lock().as_mut().and_then(|s| s.unmap_shared(d.addr, &d.frames));
            if record.is_some() {
                shootdown(&p);
            }
            drop(record);
        }
        crate::kinfo!(
            "dev",
            "{}: released ({} BAR mapping(s), {} DMA buffer(s), {} vector(s))",
            addr,
            maps.len(),
            dma.len(),
            vectors.len()
        );
        drop(maps);
        drop(dma);
        drop(vectors);
        pci::release(self.index);
    }
}

/// Fills a `PciDevice` with table entry `index`.
fn describe(f: &Function, index: usize, mut b: pci_device::Builder<'_>) {
    b.set_segment(f.addr.segment);
    b.set_bus(f.addr.bus);
    b.set_device(f.addr.device);
    b.set_function(f.addr.function);
    b.set_vendor_id(f.header.vendor_id);
    b.set_device_id(f.header.device_id);
    b.set_class_code(f.header.class);
    b.set_subclass(f.header.subclass);
    b.set_prog_if(f.header.prog_if);
    b.set_claimed(pci::claimed(index));
    let bars = f.bars.iter().filter_map(|s| match s {
        BarSlot::Bar(b) => Some(*b),
        _ => None,
    });
    let mut list = b.reborrow().init_bars(bars.clone().count() as u32);
    for (i, bar) in bars.enumerate() {
        let mut e = list.reborrow().get(i as u32);
        e.set_index(bar.index);
        e.set_kind(match bar.kind {
            BarKind::Io => 0,
            BarKind::Mem32 => 1,
            BarKind::Mem64 => 2,
        });
        e.set_prefetchable(bar.prefetchable);
        e.set_address(bar.address);
        e.set_size(bar.size);
    }
    let mut virtio = 0;
    for c in f.caps.iter().flatten() {
        match c {
            Capability::Msi { vectors, .. } => b.set_msi_vectors(u16::from(*vectors)),
            Capability::MsiX { table_size, table, .. } => {
                b.set_msix_table_size(*table_size);
                b.set_msix_table_bar(table.bar);
                b.set_msix_table_offset(table.offset);
            }
            Capability::Vendor { virtio: Some(_), .. } => virtio += 1,
            _ => {}
        }
    }
    let mut list = b.init_virtio(virtio);
    let mut i = 0;
    for c in f.caps.iter().flatten() {
        let Capability::Vendor { virtio: Some(v), .. } = c else { continue };
        let mut e = list.reborrow().get(i);
        i += 1;
        e.set_cfg_type(match v.cfg_type {
            VirtioCfgType::Common => 1,
            VirtioCfgType::Notify => 2,
            VirtioCfgType::Isr => 3,
            VirtioCfgType::Device => 4,
            VirtioCfgType::PciCfg => 5,
            VirtioCfgType::SharedMemory => 8,
            VirtioCfgType::Vendor => 9,
            VirtioCfgType::Unknown(t) => t,
        });
        e.set_bar(v.bar);
        e.set_offset(v.offset);
        e.set_length(v.length);
        e.set_notify_off_multiplier(v.notify_off_multiplier.unwrap_or(0));
    }
}

/// Claims table entry `index` for `caller`: the Device cap.
fn claim(caller: &Arc<Process>, index: usize) -> Result<CapEntry, DevError> {
    if pci::functions()[index].header.class == 0x06 {
        return Err(DevError::Unsupported("bridges stay with the kernel"));
    }
    let account = {
        let guard = caller.space.lock();
        guard.as_ref().ok_or(DevError::Exiting)?.account().clone()
    };
    account.charge_bytes(CLAIM_BYTES).map_err(|q| DevError::Paging(PagingError::Quota(q)))?;
    let mut st = ClaimState { maps: Vec::new(), dma: Vec::new(), vectors: Vec::new(), next_id: 1 };
    if st.maps.try_reserve_exact(MAX_MMIO_MAPS).is_err()
        || st.dma.try_reserve_exact(MAX_DMA_BUFFERS).is_err()
        || st.vectors.try_reserve_exact(MAX_VECTORS).is_err()
    {
        account.uncharge_bytes(CLAIM_BYTES);
        return Err(DevError::Paging(PagingError::OutOfFrames));
    }
    if !pci::try_claim(index) {
        account.uncharge_bytes(CLAIM_BYTES);
        return Err(DevError::State("the device is claimed"));
    }
    let claim = Arc::new(Claim {
        index,
        released: AtomicBool::new(false),
        state: IrqLock::new(st),
        account,
    });
    let addr = claim.addr();
    pci::config_update16(
        addr,
        capos_lib::pci::reg::COMMAND,
        0,
        command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE,
    );
    crate::kinfo!("dev", "{addr}: claimed by pid {}", caller.pid);
    Ok(CapEntry::new(Arc::new(KernelDevice { claim })))
}

// --- DeviceManager ----------------------------------------------------------

/// The device manager (the `devices` grant).
pub struct KernelDeviceManager;

struct ManagerServer<'a> {
    ctx: &'a CallContext<'a>,
    refusal: &'a Refusal,
}

impl DeviceManagerServer for ManagerServer<'_> {
    type Cap = CapEntry;

    fn list(
        &mut self,
        _params: device_manager::list_params::Reader<'_>,
        results: device_manager::list_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let fs = pci::functions();
        let mut list = results.init_devices(fs.len() as u32);
        for (i, f) in fs.iter().enumerate() {
            describe(f, i, list.reborrow().get(i as u32));
        }
        Ok(())
    }

    fn claim(
        &mut self,
        params: device_manager::claim_params::Reader<'_>,
        _results: device_manager::claim_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let want =
            (params.get_segment(), params.get_bus(), params.get_device(), params.get_function());
        let index = pci::functions()
            .iter()
            .position(|f| (f.addr.segment, f.addr.bus, f.addr.device, f.addr.function) == want)
            .ok_or(DevError::NotFound("no function at that address"))
            .map_err(|e| server_error(e, self.refusal))?;
        claim(self.ctx.caller, index).map_err(|e| server_error(e, self.refusal))
    }

    fn claim_match(
        &mut self,
        params: device_manager::claim_match_params::Reader<'_>,
        _results: device_manager::claim_match_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let (v, d) = (params.get_vendor_id(), params.get_device_id());
        let mut found = false;
        for (i, f) in pci::functions().iter().enumerate() {
            if f.header.vendor_id != v || f.header.device_id != d {
                continue;
            }
            found = true;
            match claim(self.ctx.caller, i) {
                Err(DevError::State(_)) => continue,
                r => return r.map_err(|e| server_error(e, self.refusal)),
            }
        }
        Err(server_error(
            if found {
                DevError::State("every function with those ids is claimed")
            } else {
                DevError::NotFound("no function with those ids")
            },
            self.refusal,
        ))
    }
}

impl CapObject for KernelDeviceManager {
    fn interface_id(&self) -> u64 {
        capos_schema::device_manager::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::device_manager::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::device_manager::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_device_manager_in(
            &mut ManagerServer { ctx, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome_caps(r))
    }
}

// --- Device -----------------------------------------------------------------

/// A claimed function; its drop releases the claim.
pub struct KernelDevice {
    claim: Arc<Claim>,
}

impl Drop for KernelDevice {
    fn drop(&mut self) {
        self.claim.release();
    }
}

struct DeviceServerImpl<'a> {
    claim: &'a Arc<Claim>,
    refusal: &'a Refusal,
}

impl DeviceServerImpl<'_> {
    fn io_bar(&self, bar: u8, offset: u32, width: u8) -> Result<u16, DevError> {
        self.claim.live()?;
        if !matches!(width, 1 | 2 | 4) {
            return Err(DevError::Invalid("width is not 1, 2 or 4"));
        }
        let Some(BarSlot::Bar(b)) = self.claim.function().bars.get(bar as usize) else {
            return Err(DevError::Invalid("no such BAR"));
        };
        if b.kind != BarKind::Io {
            return Err(DevError::Invalid("not an I/O BAR"));
        }
        let end = u64::from(offset) + u64::from(width);
        if end > b.size || !offset.is_multiple_of(u32::from(width)) {
            return Err(DevError::Invalid("offset outside the BAR or unaligned"));
        }
        u16::try_from(b.address + u64::from(offset))
            .map_err(|_| DevError::Invalid("I/O BAR above the port space"))
    }
}

impl DeviceServer for DeviceServerImpl<'_> {
    type Cap = CapEntry;

    fn info(
        &mut self,
        _params: device::info_params::Reader<'_>,
        results: device::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.claim.live().map_err(|e| server_error(e, self.refusal))?;
        describe(self.claim.function(), self.claim.index, results.init_device());
        Ok(())
    }

    fn mmio(
        &mut self,
        params: device::mmio_params::Reader<'_>,
        _results: device::mmio_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let r = (|| {
            self.claim.live()?;
            let bar = params.get_bar() as usize;
            if bar >= MAX_BARS {
                return Err(DevError::Invalid("BAR index out of range"));
            }
            let Some(BarSlot::Bar(b)) = self.claim.function().bars.get(bar) else {
                return Err(DevError::Invalid("no BAR starts at that index"));
            };
            if b.kind == BarKind::Io {
                return Err(DevError::Invalid("an I/O BAR (use portRead/portWrite)"));
            }
            if b.address == 0 || !b.address.is_multiple_of(PAGE_SIZE) || b.size < PAGE_SIZE {
                return Err(DevError::Invalid(
                    "BAR not page aligned, smaller than a page or unassigned",
                ));
            }
            let id = {
                let mut st = self.claim.state.lock();
                st.next_id += 1;
                st.next_id
            };
            Ok(CapEntry::new(Arc::new(KernelDeviceMmio {
                claim: self.claim.clone(),
                id,
                phys: b.address,
                size: b.size,
            })))
        })();
        r.map_err(|e| server_error(e, self.refusal))
    }

    fn dma_pool(
        &mut self,
        params: device::dma_pool_params::Reader<'_>,
        _results: device::dma_pool_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let r = (|| {
            self.claim.live()?;
            let budget = params.get_budget_bytes();
            if budget == 0 || budget > MAX_POOL_BYTES {
                return Err(DevError::Invalid("budget not in 1..=64 MiB"));
            }
            let id = {
                let mut st = self.claim.state.lock();
                st.next_id += 1;
                st.next_id
            };
            Ok(CapEntry::new(Arc::new(KernelDmaPool { claim: self.claim.clone(), id, budget })))
        })();
        r.map_err(|e| server_error(e, self.refusal))
    }

    fn interrupt(
        &mut self,
        params: device::interrupt_params::Reader<'_>,
        _results: device::interrupt_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        new_interrupt(self.claim, params.get_index()).map_err(|e| server_error(e, self.refusal))
    }

    fn port_read(
        &mut self,
        params: device::port_read_params::Reader<'_>,
        mut results: device::port_read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let width = params.get_width();
        let port = self
            .io_bar(params.get_bar(), params.get_offset(), width)
            .map_err(|e| server_error(e, self.refusal))?;
        // SAFETY: `port` lies inside an I/O BAR of the function the caller
        // has claimed; reading it has effects only on that device.
        let value = unsafe {
            match width {
                1 => u32::from(x86_64::instructions::port::Port::<u8>::new(port).read()),
                2 => u32::from(x86_64::instructions::port::Port::<u16>::new(port).read()),
                _ => x86_64::instructions::port::Port::<u32>::new(port).read(),
            }
        };
        results.set_value(value);
        Ok(())
    }

    fn port_write(
        &mut self,
        params: device::port_write_params::Reader<'_>,
        _results: device::port_write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let width = params.get_width();
        let port = self
            .io_bar(params.get_bar(), params.get_offset(), width)
            .map_err(|e| server_error(e, self.refusal))?;
        let v = params.get_value();
        // SAFETY: `port` lies inside an I/O BAR of the function the caller
        // has claimed; writing it has effects only on that device.
        unsafe {
            match width {
                1 => x86_64::instructions::port::Port::<u8>::new(port).write(v as u8),
                2 => x86_64::instructions::port::Port::<u16>::new(port).write(v as u16),
                _ => x86_64::instructions::port::Port::<u32>::new(port).write(v),
            }
        }
        Ok(())
    }
}

impl CapObject for KernelDevice {
    fn interface_id(&self) -> u64 {
        capos_schema::device::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::device::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::device::method::name(method).is_some()
    }

    fn revoked(&self) -> bool {
        self.claim.released.load(Ordering::Acquire)
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_device_in(
            &mut DeviceServerImpl { claim: &self.claim, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome_caps(r))
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("Device {}", self.claim.addr())
    }
}

// --- DeviceMmio -------------------------------------------------------------

/// One memory BAR of a claim.
pub struct KernelDeviceMmio {
    claim: Arc<Claim>,
    id: u64,
    phys: u64,
    size: u64,
}

impl KernelDeviceMmio {
    fn map(&self, caller: &Arc<Process>) -> Result<u64, DevError> {
        self.claim.live()?;
        let mut st = self.claim.state.lock();
        if self.claim.released.load(Ordering::Acquire) {
            return Err(DevError::Revoked);
        }
        st.maps.retain(|m| m.process.upgrade().is_some_and(|p| !p.ended.load(Ordering::Acquire)));
        if st.maps.iter().any(|m| m.id == self.id) {
            return Err(DevError::State("this BAR cap is mapped already"));
        }
        if st.maps.len() >= MAX_MMIO_MAPS {
            return Err(DevError::Exhausted("too many BAR mappings"));
        }
        let mapped = {
            let mut guard = caller.space.lock();
            let space = guard.as_mut().ok_or(DevError::Exiting)?;
            space.map_device(self.phys, self.size / PAGE_SIZE)
        };
        match mapped {
            Ok(addr) => {
                // Capacity was reserved at the claim.
                st.maps.push(MmioMap { id: self.id, process: Arc::downgrade(caller), addr });
                Ok(addr)
            }
            Err((e, touched)) => {
                drop(st);
                if touched {
                    shootdown(caller);
                }
                Err(DevError::Paging(e))
            }
        }
    }

    fn unmap(&self, caller: &Arc<Process>) -> Result<(), DevError> {
        self.claim.live()?;
        let mut st = self.claim.state.lock();
        let i = st
            .maps
            .iter()
            .position(|m| m.id == self.id && core::ptr::eq(m.process.as_ptr(), Arc::as_ptr(caller)))
            .ok_or(DevError::NotFound("this BAR cap is not mapped by the caller"))?;
        let m = st.maps.swap_remove(i);
        let done = caller.space.lock().as_mut().is_some_and(|s| s.unmap_device(m.addr));
        drop(st);
        if done {
            shootdown(caller);
        }
        Ok(())
    }
}

struct MmioServer<'a> {
    cap: &'a KernelDeviceMmio,
    ctx: &'a CallContext<'a>,
    refusal: &'a Refusal,
}

impl DeviceMmioServer for MmioServer<'_> {
    fn map(
        &mut self,
        _params: device_mmio::map_params::Reader<'_>,
        mut results: device_mmio::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let addr = self.cap.map(self.ctx.caller).map_err(|e| server_error(e, self.refusal))?;
        results.set_addr(addr);
        results.set_size(self.cap.size);
        Ok(())
    }

    fn unmap(
        &mut self,
        _params: device_mmio::unmap_params::Reader<'_>,
        _results: device_mmio::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.unmap(self.ctx.caller).map_err(|e| server_error(e, self.refusal))
    }
}

impl CapObject for KernelDeviceMmio {
    fn interface_id(&self) -> u64 {
        capos_schema::device_mmio::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::device_mmio::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::device_mmio::method::name(method).is_some()
    }

    fn revoked(&self) -> bool {
        self.claim.released.load(Ordering::Acquire)
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_device_mmio_in(
            &mut MmioServer { cap: self, ctx, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome(r))
    }
}

// --- DmaPool / DmaBuffer ----------------------------------------------------

/// A DMA budget of a claim.
pub struct KernelDmaPool {
    claim: Arc<Claim>,
    id: u64,
    budget: u64,
}

impl KernelDmaPool {
    fn alloc(&self, caller: &Arc<Process>, bytes: u64) -> Result<CapEntry, DevError> {
        self.claim.live()?;
        if bytes == 0 || bytes > MAX_DMA_BYTES {
            return Err(DevError::Invalid("size not in 1..=4096"));
        }
        let account = {
            let guard = caller.space.lock();
            guard.as_ref().ok_or(DevError::Exiting)?.account().clone()
        };
        let mut st = self.claim.state.lock();
        if self.claim.released.load(Ordering::Acquire) {
            return Err(DevError::Revoked);
        }
        let used: u64 = st.dma.iter().filter(|d| d.pool == self.id).map(|_| PAGE_SIZE).sum();
        if used + PAGE_SIZE > self.budget {
            return Err(DevError::Exhausted("over the pool's budget"));
        }
        if st.dma.len() >= MAX_DMA_BUFFERS {
            return Err(DevError::Exhausted("too many DMA buffers"));
        }
        let frames = SharedFrames::new(&account, 1).map_err(DevError::Paging)?;
        let mapped = {
            let mut guard = caller.space.lock();
            let space = guard.as_mut().ok_or(DevError::Exiting)?;
            space.map_shared(&frames, true)
        };
        let addr = match mapped {
            Ok(a) => a,
            Err((e, touched)) => {
                drop(st);
                if touched {
                    shootdown(caller);
                }
                return Err(DevError::Paging(e));
            }
        };
        st.next_id += 1;
        let id = st.next_id;
        // Capacity was reserved at the claim.
        st.dma.push(DmaEntry {
            id,
            pool: self.id,
            process: Arc::downgrade(caller),
            addr,
            bytes,
            frames,
        });
        Ok(CapEntry::new(Arc::new(KernelDmaBuffer { claim: self.claim.clone(), id })))
    }
}

struct PoolServer<'a> {
    cap: &'a KernelDmaPool,
    ctx: &'a CallContext<'a>,
    refusal: &'a Refusal,
}

impl DmaPoolServer for PoolServer<'_> {
    type Cap = CapEntry;

    fn alloc(
        &mut self,
        params: dma_pool::alloc_params::Reader<'_>,
        _results: dma_pool::alloc_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        self.cap
            .alloc(self.ctx.caller, params.get_bytes())
            .map_err(|e| server_error(e, self.refusal))
    }
}

impl CapObject for KernelDmaPool {
    fn interface_id(&self) -> u64 {
        capos_schema::dma_pool::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::dma_pool::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::dma_pool::method::name(method).is_some()
    }

    fn revoked(&self) -> bool {
        self.claim.released.load(Ordering::Acquire)
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_dma_pool_in(
            &mut PoolServer { cap: self, ctx, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome_caps(r))
    }
}

/// One DMA buffer of a claim.
pub struct KernelDmaBuffer {
    claim: Arc<Claim>,
    id: u64,
}

impl KernelDmaBuffer {
    fn info(&self) -> Result<(u64, u64, u64), DevError> {
        self.claim.live()?;
        let st = self.claim.state.lock();
        let d = st.dma.iter().find(|d| d.id == self.id).ok_or(DevError::Revoked)?;
        Ok((d.addr, d.frames.frame(0), d.bytes))
    }

    fn free(&self) -> Result<(), DevError> {
        self.claim.live()?;
        let d = {
            let mut st = self.claim.state.lock();
            let i = st.dma.iter().position(|d| d.id == self.id).ok_or(DevError::Revoked)?;
            st.dma.swap_remove(i)
        };
        if let Some(p) = d.process.upgrade() {
            let record = p.space.lock().as_mut().and_then(|s| s.unmap_shared(d.addr, &d.frames));
            shootdown(&p);
            drop(record);
        }
        drop(d);
        Ok(())
    }
}

impl Drop for KernelDmaBuffer {
    fn drop(&mut self) {
        // The last cap gone: the buffer is freed (unless released already).
        let _ = self.free();
    }
}

struct BufferServer<'a> {
    cap: &'a KernelDmaBuffer,
    refusal: &'a Refusal,
}

impl DmaBufferServer for BufferServer<'_> {
    fn info(
        &mut self,
        _params: dma_buffer::info_params::Reader<'_>,
        mut results: dma_buffer::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let (addr, dev, size) = self.cap.info().map_err(|e| server_error(e, self.refusal))?;
        results.set_addr(addr);
        results.set_device_addr(dev);
        results.set_size(size);
        Ok(())
    }

    fn free(
        &mut self,
        _params: dma_buffer::free_params::Reader<'_>,
        _results: dma_buffer::free_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.free().map_err(|e| server_error(e, self.refusal))
    }
}

impl CapObject for KernelDmaBuffer {
    fn interface_id(&self) -> u64 {
        capos_schema::dma_buffer::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::dma_buffer::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::dma_buffer::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_dma_buffer_in(
            &mut BufferServer { cap: self, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome(r))
    }
}

// --- Interrupt --------------------------------------------------------------

struct Waiter {
    call: PendingCall,
    timer: Option<u64>,
    generation: u64,
}

/// One MSI-X vector of a claim.
pub struct KernelInterrupt {
    this: Weak<KernelInterrupt>,
    claim: Arc<Claim>,
    entry: u16,
    slot: usize,
    waiter: IrqLock<(Option<Waiter>, u64)>,
}

fn new_interrupt(claim: &Arc<Claim>, entry: u16) -> Result<CapEntry, DevError> {
    claim.live()?;
    let msix = claim.msix();
    if msix.is_none() {
        if claim.msi().is_none() {
            return Err(DevError::Unsupported("no MSI-X nor MSI capability"));
        }
        if entry != 0 {
            return Err(DevError::Invalid("MSI: only vector 0"));
        }
    }
    let e = match msix {
        Some(_) => Some(claim.msix_entry(entry)?),
        None => None,
    };
    // Held to the end: a release either runs before (and the check below
    // fails) or after (and finds the vector to mask and give back).
    let mut st = claim.state.lock();
    claim.live()?;
    if st.vectors.iter().any(|&(i, _)| i == entry) {
        return Err(DevError::State("that vector is handed out already"));
    }
    if st.vectors.len() >= MAX_VECTORS {
        return Err(DevError::Exhausted("too many vectors for one device"));
    }
    let slot = trap::alloc_device_vector().ok_or(DevError::Exhausted("no free vector"))?;
    // Capacity was reserved at the claim.
    st.vectors.push((entry, slot));
    let irq = Arc::new_cyclic(|this| KernelInterrupt {
        this: this.clone(),
        claim: claim.clone(),
        entry,
        slot,
        waiter: IrqLock::new((None, 0)),
    });
    *VECTOR_OWNERS[slot].lock() = Some(Arc::downgrade(&irq));
    let apic =
        crate::arch::x86_64::percpu::all().next().map_or(0, |c| c.apic_id.load(Ordering::Acquire));
    let (address, data) = (0xFEE0_0000 | (apic << 12), u32::from(VEC_DEVICE_BASE) + slot as u32);
    match (msix, e) {
        (Some((off, ..)), Some(e)) => {
            // SAFETY: `e` is entry `entry` of the claim's MSI-X table,
            // mapped uncached in the kernel's MMIO window: message address
            // low, high, data, vector control.
            unsafe {
                core::ptr::write_volatile(e.add(3), 1);
                core::ptr::write_volatile(e, address);
                core::ptr::write_volatile(e.add(1), 0);
                core::ptr::write_volatile(e.add(2), data);
            }
            pci::config_update16(claim.addr(), u16::from(off) + 2, MSIX_FUNCTION_MASK, MSIX_ENABLE);
        }
        _ => {
            // MSI, one vector: masked (or disabled) until `unmask`.
            if let Some((off, addr64, pvm)) = claim.msi() {
                let off = u16::from(off);
                let a = claim.addr();
                pci::config_update16(a, off + 2, MSI_ENABLE | MSI_MME, 0);
                pci::config_write32(a, off + 4, address);
                if addr64 {
                    pci::config_write32(a, off + 8, 0);
                    pci::config_write32(a, off + 0x0c, data);
                } else {
                    pci::config_write32(a, off + 8, data);
                }
                if pvm {
                    claim.mask_msi(true);
                    pci::config_update16(a, off + 2, MSI_MME, MSI_ENABLE);
                }
            }
        }
    }
    drop(st);
    Ok(CapEntry::new(irq))
}

fn encode_count(count: u64) -> Vec<u8> {
    capos_schema::wire::encode::<interrupt::wait_results::Owned>(|mut r| {
        r.set_count(count);
        Ok(())
    })
    .expect("a one-field results message encodes")
}

/// The device-vector hook: wakes the waiter of the vector's Interrupt.
pub fn interrupt_fired(slot: usize) {
    let Some(owner) = VECTOR_OWNERS.get(slot) else { return };
    let irq = owner.lock().as_ref().and_then(Weak::upgrade);
    if let Some(irq) = irq {
        irq.fire();
    }
}

impl KernelInterrupt {
    fn fire(&self) {
        let woken = {
            let mut w = self.waiter.lock();
            if w.0.is_none() {
                return;
            }
            let count = trap::take_device_count(self.slot);
            if count == 0 {
                return;
            }
            w.0.take().map(|waiter| (waiter, count))
        };
        if let Some((waiter, count)) = woken {
            if let Some(t) = waiter.timer {
                crate::time::cancel(t);
            }
            crate::completion::complete(waiter.call, Ok(encode_count(count)));
        }
    }

    fn timed_out(&self, generation: u64) {
        let w = {
            let mut w = self.waiter.lock();
            if w.0.as_ref().is_some_and(|x| x.generation == generation) {
                w.0.take()
            } else {
                None
            }
        };
        if let Some(w) = w {
            crate::completion::complete(w.call, Err(TransportError::Timeout));
        }
    }

    /// Ends a pending wait with `e`.
    fn end(&self, e: TransportError) {
        let w = self.waiter.lock().0.take();
        if let Some(w) = w {
            if let Some(t) = w.timer {
                crate::time::cancel(t);
            }
            crate::completion::complete(w.call, Err(e));
        }
    }

    fn set_mask(&self, masked: bool) -> Result<(), DevError> {
        self.claim.live()?;
        self.claim.mask_entry(self.entry, masked);
        Ok(())
    }
}

impl Drop for KernelInterrupt {
    fn drop(&mut self) {
        let mine = {
            let mut st = self.claim.state.lock();
            let i = st.vectors.iter().position(|&(_, s)| s == self.slot);
            i.map(|i| st.vectors.swap_remove(i))
        };
        if mine.is_some() {
            self.claim.mask_entry(self.entry, true);
            *VECTOR_OWNERS[self.slot].lock() = None;
            trap::free_device_vector(self.slot);
        }
        self.end(TransportError::Disconnected);
    }
}

struct IrqServer<'a> {
    cap: &'a KernelInterrupt,
    refusal: &'a Refusal,
    /// `wait` found nothing: its timeout.
    defer: Option<u64>,
}

impl InterruptServer for IrqServer<'_> {
    fn wait(
        &mut self,
        params: interrupt::wait_params::Reader<'_>,
        mut results: interrupt::wait_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.claim.live().map_err(|e| server_error(e, self.refusal))?;
        let count = trap::take_device_count(self.cap.slot);
        if count > 0 {
            results.set_count(count);
        } else {
            self.defer = Some(params.get_timeout_ns());
        }
        Ok(())
    }

    fn mask(
        &mut self,
        _params: interrupt::mask_params::Reader<'_>,
        _results: interrupt::mask_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.set_mask(true).map_err(|e| server_error(e, self.refusal))
    }

    fn unmask(
        &mut self,
        _params: interrupt::unmask_params::Reader<'_>,
        _results: interrupt::unmask_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.set_mask(false).map_err(|e| server_error(e, self.refusal))
    }

    fn ack(
        &mut self,
        _params: interrupt::ack_params::Reader<'_>,
        _results: interrupt::ack_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.claim.live().map_err(|e| server_error(e, self.refusal))
    }
}

impl CapObject for KernelInterrupt {
    fn interface_id(&self) -> u64 {
        capos_schema::interrupt::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::interrupt::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::interrupt::method::name(method).is_some()
    }

    fn revoked(&self) -> bool {
        self.claim.released.load(Ordering::Acquire)
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let mut server = IrqServer { cap: self, refusal: &refusal, defer: None };
        let r = dispatch_interrupt_in(&mut server, method, frame);
        let defer = server.defer;
        let done = refusal.or(|| super::outcome(r));
        let Some(timeout_ns) = defer else { return done };
        if !matches!(done, CallOutcome::Built { .. }) {
            return done;
        }
        let mut w = self.waiter.lock();
        // An interrupt may have come since the check.
        let count = trap::take_device_count(self.slot);
        if count > 0 {
            return CallOutcome::done(encode_count(count));
        }
        if timeout_ns == 0 {
            return CallOutcome::Failed(TransportError::Timeout);
        }
        if w.0.as_ref().is_some_and(|x| x.call.is_live()) {
            return CallOutcome::Exception(capos_schema::wire::encode_exception(
                &capos_schema::CapException {
                    code: exception::BAD_STATE,
                    message: "a wait is pending already".into(),
                },
            ));
        }
        w.1 += 1;
        let generation = w.1;
        let timer = crate::time::deadline_after_ns(timeout_ns).map(|deadline| {
            let this = self.this.clone();
            crate::time::call_at(
                deadline,
                ctx.caller.pid,
                Box::new(move || {
                    if let Some(i) = this.upgrade() {
                        i.timed_out(generation);
                    }
                }),
            )
        });
        w.0 = Some(Waiter { call: ctx.pending(), timer, generation });
        CallOutcome::Pending
    }
}
