//! PCIe enhanced configuration access (ECAM): each function's 4 KiB of
//! configuration space is memory at `base + (bus << 20 | device << 15 |
//! function << 12)` in a window the ACPI MCFG table describes.
//!
//! A window for 256 buses is 256 MiB, so it is mapped one bus (1 MiB) at a
//! time, when enumeration first reaches that bus.

use core::sync::atomic::{AtomicU64, Ordering};

use capos_lib::pci::Address;

use crate::dev::acpi::EcamRegion;
use crate::mem::paging::{self, PagingError};

/// Bytes of configuration space per bus.
const BUS_SIZE: u64 = 1 << 20;

/// Why an MCFG window is not used.
#[derive(Debug, Clone, Copy)]
pub enum EcamError {
    /// The last bus lies below the first.
    EmptyRange {
        /// First bus.
        start: u8,
        /// Last bus.
        end: u8,
    },
    /// The base is not 1 MiB aligned, or the window wraps past 2^64.
    BadBase(u64),
}

impl core::fmt::Display for EcamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::EmptyRange { start, end } => write!(f, "bus range {start}..={end} is empty"),
            Self::BadBase(b) => write!(f, "base {b:#x} is not 1 MiB aligned or wraps"),
        }
    }
}

/// One MCFG window and the buses of it mapped so far.
pub struct Window {
    /// The window as the MCFG gives it.
    pub region: EcamRegion,
    /// Kernel virtual address of each bus's 1 MiB, 0 while unmapped.
    buses: [AtomicU64; 256],
}

impl Window {
    /// A window for `region`, nothing mapped yet.
    pub fn new(region: EcamRegion) -> Result<Window, EcamError> {
        if region.bus_end < region.bus_start {
            return Err(EcamError::EmptyRange { start: region.bus_start, end: region.bus_end });
        }
        let len = (region.bus_end as u64 + 1) * BUS_SIZE;
        if !region.base.is_multiple_of(BUS_SIZE) || region.base.checked_add(len).is_none() {
            return Err(EcamError::BadBase(region.base));
        }
        Ok(Window { region, buses: [const { AtomicU64::new(0) }; 256] })
    }

    /// The window covers `bus`.
    pub fn covers(&self, bus: u8) -> bool {
        (self.region.bus_start..=self.region.bus_end).contains(&bus)
    }

    /// Maps the configuration space of `bus` (once).
    pub fn map_bus(&self, bus: u8) -> Result<(), PagingError> {
        let slot = &self.buses[bus as usize];
        if !self.covers(bus) || slot.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        // The base's offset is that of bus 0 of the segment, whatever the
        // first bus the window decodes (ACPI's MCFG convention).
        let phys = self.region.base + (bus as u64) * BUS_SIZE;
        slot.store(paging::map_mmio(phys, BUS_SIZE)?, Ordering::Release);
        Ok(())
    }

    fn dword(&self, addr: Address, offset: u16) -> Option<*mut u32> {
        if addr.segment != self.region.segment || offset >= 4096 {
            return None;
        }
        let bus = self.buses[addr.bus as usize].load(Ordering::Acquire);
        if bus == 0 {
            return None;
        }
        // Offset of the function within its bus's 1 MiB.
        let within = addr.ecam_offset(addr.bus)?;
        Some((bus + within + (offset as u64 & !3)) as *mut u32)
    }

    /// The dword at `offset` of function `addr`, all ones when its bus is
    /// not mapped.
    pub fn read32(&self, addr: Address, offset: u16) -> u32 {
        match self.dword(addr, offset) {
            // SAFETY: `p` lies in a bus's 1 MiB of ECAM mapped uncached by
            // `map_bus` for the kernel's lifetime, dword aligned.
            Some(p) => unsafe { core::ptr::read_volatile(p) },
            None => u32::MAX,
        }
    }

    /// Writes the dword at `offset` of function `addr`; ignored when its
    /// bus is not mapped.
    pub fn write32(&self, addr: Address, offset: u16, value: u32) {
        if let Some(p) = self.dword(addr, offset) {
            // SAFETY: as in `read32`; the caller writes registers it owns
            // (BAR probing and the command register, restored afterwards).
            unsafe { core::ptr::write_volatile(p, value) }
        }
    }
}
