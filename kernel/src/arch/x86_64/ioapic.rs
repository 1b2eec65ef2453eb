//! I/O APICs: every redirection entry masked at start-up; ISA IRQs routed
//! on request, honouring the MADT's interrupt source overrides.

use alloc::vec::Vec;

use crate::dev::acpi::{AcpiInfo, Polarity, Trigger};
use crate::sync::IrqLock;

struct IoApic {
    base: u64,
    gsi_base: u32,
    entries: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` is the uncached mapping of this I/O APIC's register
        // window (IOREGSEL at +0, IOWIN at +0x10), made by `init`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }

    fn set_entry(&self, index: u32, low: u32, high: u32) {
        // Mask first so a half-written entry never fires.
        self.write(0x10 + 2 * index, 1 << 16);
        self.write(0x11 + 2 * index, high);
        self.write(0x10 + 2 * index, low);
    }
}

static IOAPICS: IrqLock<Vec<IoApic>> = IrqLock::new(Vec::new());

/// Maps every I/O APIC the MADT lists and masks all of their inputs.
pub fn init(info: &AcpiInfo) {
    let mut list = IOAPICS.lock();
    for io in &info.io_apics {
        let base = crate::mem::map_mmio(io.address, 4096);
        let mut apic = IoApic { base, gsi_base: io.gsi_base, entries: 0 };
        apic.entries = ((apic.read(1) >> 16) & 0xff) + 1;
        for i in 0..apic.entries {
            apic.set_entry(i, 1 << 16, 0);
        }
        crate::kinfo!(
            "apic",
            "I/O APIC id {} at {:#x}: GSIs {}..{}",
            io.id,
            io.address,
            io.gsi_base,
            io.gsi_base + apic.entries - 1
        );
        list.push(apic);
    }
}

/// Routes ISA IRQ `irq` to `vector` on the CPU with APIC id `dest`.
pub fn route_isa_irq(info: &AcpiInfo, irq: u8, vector: u8, dest: u32) -> Result<u32, RouteError> {
    let (gsi, polarity, trigger) = info
        .overrides
        .iter()
        .find(|o| o.isa_irq == irq)
        .map(|o| (o.gsi, o.polarity, o.trigger))
        .unwrap_or((irq as u32, Polarity::High, Trigger::Edge));
    let list = IOAPICS.lock();
    let apic = list
        .iter()
        .find(|a| gsi >= a.gsi_base && gsi < a.gsi_base + a.entries)
        .ok_or(RouteError::NoIoApicForGsi(gsi))?;
    let mut low = vector as u32;
    if polarity == Polarity::Low {
        low |= 1 << 13;
    }
    if trigger == Trigger::Level {
        low |= 1 << 15;
    }
    apic.set_entry(gsi - apic.gsi_base, low, dest << 24);
    Ok(gsi)
}

/// Why an interrupt could not be routed.
#[derive(Debug, Clone, Copy)]
pub enum RouteError {
    /// No I/O APIC handles this global system interrupt.
    NoIoApicForGsi(u32),
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RouteError::NoIoApicForGsi(g) => write!(f, "no I/O APIC handles GSI {g}"),
        }
    }
}
