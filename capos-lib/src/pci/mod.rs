//! PCI configuration space, decoded: the header of a function, its base
//! address registers (BARs) from the write-ones probe, bridge bus numbers and
//! the capability list (MSI, MSI-X, vendor-specific with virtio's layout,
//! PCI Express).
//!
//! Nothing here touches hardware. Configuration space is read through
//! [`ConfigSpace`], which the kernel implements for ECAM and for the legacy
//! `0xCF8`/`0xCFC` ports, and host tests for a buffer in memory. A device's
//! registers are not trusted: every pointer and length is checked, a broken
//! capability list ends with a named [`CapError`] after at most
//! [`MAX_CAPABILITIES`] entries, and nothing here panics or loops on any
//! register value.
//!
//! Offsets and bit layouts follow the PCI Local Bus Specification 3.0
//! (section 6), the PCI Express Base Specification (section 7.5) and the
//! virtio 1.2 specification (section 4.1.4).

mod bar;
mod caps;
#[cfg(test)]
mod tests;

use core::fmt;

pub use bar::{decode_bars, Bar, BarError, BarKind, BarSlot, MAX_BARS};
pub use caps::{
    capabilities, BarOffset, CapError, Capabilities, Capability, PortType, VirtioCap,
    VirtioCfgType, MAX_CAPABILITIES,
};

/// Read access to one function's configuration space.
pub trait ConfigSpace {
    /// The dword at `offset`, a multiple of 4 below 256 (legacy) or 4096
    /// (ECAM). Reads past what the mechanism reaches return all ones.
    fn read32(&self, offset: u16) -> u32;

    /// The 16-bit register at `offset` (a multiple of 2).
    fn read16(&self, offset: u16) -> u16 {
        (self.read32(offset & !3) >> ((offset & 2) * 8)) as u16
    }

    /// The byte at `offset`.
    fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset & !3) >> ((offset & 3) * 8)) as u8
    }
}

/// Register offsets of the common header (all header types).
pub mod reg {
    /// Vendor id (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device id (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command register (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status register (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision id, then prog-if, subclass, class (one dword).
    pub const CLASS_REVISION: u16 = 0x08;
    /// Header type (8 bits, bit 7: multi-function).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First BAR.
    pub const BAR0: u16 = 0x10;
    /// Bridge: primary, secondary, subordinate bus, secondary latency.
    pub const BRIDGE_BUSES: u16 = 0x18;
    /// Endpoint: subsystem vendor id, subsystem id (one dword).
    pub const SUBSYSTEM: u16 = 0x2c;
    /// Capability pointer (header types 0 and 1).
    pub const CAP_PTR: u16 = 0x34;
    /// Capability pointer of a CardBus bridge (header type 2).
    pub const CARDBUS_CAP_PTR: u16 = 0x14;
    /// Interrupt line, interrupt pin.
    pub const INTERRUPT: u16 = 0x3c;
    /// First byte after the standard header: where capabilities may start.
    pub const HEADER_END: u16 = 0x40;
    /// Size of the configuration space the legacy mechanism reaches, and of
    /// the part the capability list lives in.
    pub const LEGACY_SIZE: u16 = 0x100;
}

/// Command register bits.
pub mod command {
    /// Responds to I/O space accesses.
    pub const IO: u16 = 1 << 0;
    /// Responds to memory space accesses.
    pub const MEMORY: u16 = 1 << 1;
    /// May master the bus (DMA).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Legacy INTx disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status bit: the function has a capability list.
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// Vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;

/// Devices per bus.
pub const DEVICES_PER_BUS: u8 = 32;
/// Functions per device.
pub const FUNCTIONS_PER_DEVICE: u8 = 8;

/// Where a function sits: segment, bus, device (0..32), function (0..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// PCI segment group.
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device, below [`DEVICES_PER_BUS`].
    pub device: u8,
    /// Function, below [`FUNCTIONS_PER_DEVICE`].
    pub function: u8,
}

impl Address {
    /// The address, or `None` when device or function is out of range.
    pub fn new(segment: u16, bus: u8, device: u8, function: u8) -> Option<Address> {
        (device < DEVICES_PER_BUS && function < FUNCTIONS_PER_DEVICE).then_some(Address {
            segment,
            bus,
            device,
            function,
        })
    }

    /// Offset of this function's 4 KiB within an ECAM window whose first
    /// bus is `bus_start`, or `None` when the bus lies below it.
    pub fn ecam_offset(&self, bus_start: u8) -> Option<u64> {
        let bus = self.bus.checked_sub(bus_start)? as u64;
        Some(bus << 20 | ((self.device & 31) as u64) << 15 | ((self.function & 7) as u64) << 12)
    }

    /// The value written to port `0xCF8` to reach the dword at `offset`
    /// (below 256) through the legacy mechanism; `None` for other segments
    /// or offsets it cannot reach.
    pub fn legacy_port_address(&self, offset: u16) -> Option<u32> {
        if self.segment != 0 || offset >= reg::LEGACY_SIZE {
            return None;
        }
        Some(
            0x8000_0000
                | (self.bus as u32) << 16
                | ((self.device & 31) as u32) << 11
                | ((self.function & 7) as u32) << 8
                | (offset as u32 & 0xfc),
        )
    }
}

impl fmt::Display for Address {
    /// `bb:dd.f`, or `ssss:bb:dd.f` outside segment 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segment != 0 {
            write!(f, "{:04x}:", self.segment)?;
        }
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.device, self.function)
    }
}

/// The bus numbers of a PCI-to-PCI bridge (header type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeBuses {
    /// The bus the bridge sits on.
    pub primary: u8,
    /// The bus right behind it.
    pub secondary: u8,
    /// The highest bus behind it.
    pub subordinate: u8,
}

impl BridgeBuses {
    /// Firmware assigned numbers: a secondary bus above the primary one and
    /// no higher than the subordinate one.
    pub fn is_configured(&self) -> bool {
        self.secondary > self.primary && self.secondary <= self.subordinate
    }
}

impl fmt::Display for BridgeBuses {
    /// `buses 00 -> 01..03`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buses {:02x} -> {:02x}..{:02x}", self.primary, self.secondary, self.subordinate)
    }
}

/// The layout of the rest of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// Type 0: a device, six BARs.
    Endpoint {
        /// Subsystem vendor id.
        subsystem_vendor: u16,
        /// Subsystem id.
        subsystem: u16,
    },
    /// Type 1: a PCI-to-PCI bridge, two BARs.
    Bridge(BridgeBuses),
    /// Type 2: a CardBus bridge (not decoded further).
    CardBus,
    /// Another type (its number); nothing past the common part is decoded.
    Unknown(u8),
}

/// The common header of one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Command register when read.
    pub command: u16,
    /// Status register when read.
    pub status: u16,
    /// Revision id.
    pub revision: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Subclass.
    pub subclass: u8,
    /// Base class.
    pub class: u8,
    /// Header type without the multi-function bit.
    pub header_type: u8,
    /// Bit 7 of the header type: the device has functions besides 0.
    pub multifunction: bool,
    /// What the type-specific part holds.
    pub kind: HeaderKind,
    /// Interrupt pin (0: none, 1..=4: INTA..INTD).
    pub interrupt_pin: u8,
    /// Interrupt line the firmware wrote.
    pub interrupt_line: u8,
}

impl Header {
    /// Reads the header, or `None` when no function answers (vendor id all
    /// ones, or all zeros).
    pub fn read<C: ConfigSpace + ?Sized>(cfg: &C) -> Option<Header> {
        let id = cfg.read32(reg::VENDOR_ID);
        let vendor_id = id as u16;
        if vendor_id == 0xffff || vendor_id == 0 {
            return None;
        }
        let cmd_status = cfg.read32(reg::COMMAND);
        let class = cfg.read32(reg::CLASS_REVISION);
        let bist_type = cfg.read32(reg::HEADER_TYPE & !3);
        let raw_type = (bist_type >> 16) as u8;
        let header_type = raw_type & 0x7f;
        let kind = match header_type {
            0 => {
                let sub = cfg.read32(reg::SUBSYSTEM);
                HeaderKind::Endpoint { subsystem_vendor: sub as u16, subsystem: (sub >> 16) as u16 }
            }
            1 => {
                let buses = cfg.read32(reg::BRIDGE_BUSES);
                HeaderKind::Bridge(BridgeBuses {
                    primary: buses as u8,
                    secondary: (buses >> 8) as u8,
                    subordinate: (buses >> 16) as u8,
                })
            }
            2 => HeaderKind::CardBus,
            t => HeaderKind::Unknown(t),
        };
        let interrupt = match kind {
            HeaderKind::Endpoint { .. } | HeaderKind::Bridge(_) => cfg.read32(reg::INTERRUPT),
            _ => 0,
        };
        Some(Header {
            vendor_id,
            device_id: (id >> 16) as u16,
            command: cmd_status as u16,
            status: (cmd_status >> 16) as u16,
            revision: class as u8,
            prog_if: (class >> 8) as u8,
            subclass: (class >> 16) as u8,
            class: (class >> 24) as u8,
            header_type,
            multifunction: raw_type & 0x80 != 0,
            kind,
            interrupt_pin: (interrupt >> 8) as u8,
            interrupt_line: interrupt as u8,
        })
    }

    /// Class, subclass and prog-if as one 24-bit number (`0x010802`: NVMe).
    pub fn class_code(&self) -> u32 {
        (self.class as u32) << 16 | (self.subclass as u32) << 8 | self.prog_if as u32
    }

    /// How many BAR registers the header type has.
    pub fn bar_count(&self) -> usize {
        match self.kind {
            HeaderKind::Endpoint { .. } => 6,
            HeaderKind::Bridge(_) => 2,
            HeaderKind::CardBus | HeaderKind::Unknown(_) => 0,
        }
    }

    /// The bridge's bus numbers, when this is a PCI-to-PCI bridge.
    pub fn bridge(&self) -> Option<BridgeBuses> {
        match self.kind {
            HeaderKind::Bridge(b) => Some(b),
            _ => None,
        }
    }

    /// A virtio device (vendor 0x1af4, device 0x1000..=0x107f), whose
    /// vendor-specific capabilities have virtio's layout.
    pub fn is_virtio(&self) -> bool {
        self.vendor_id == VIRTIO_VENDOR && (0x1000..=0x107f).contains(&self.device_id)
    }

    /// Where the capability pointer is, when the status register says there
    /// is a list and the header type has one.
    pub fn capability_pointer_offset(&self) -> Option<u16> {
        if self.status & STATUS_CAP_LIST == 0 {
            return None;
        }
        match self.kind {
            HeaderKind::Endpoint { .. } | HeaderKind::Bridge(_) => Some(reg::CAP_PTR),
            HeaderKind::CardBus => Some(reg::CARDBUS_CAP_PTR),
            HeaderKind::Unknown(_) => None,
        }
    }
}

/// Offset of BAR `index`.
pub const fn bar_offset(index: usize) -> u16 {
    reg::BAR0 + 4 * index as u16
}

/// One function in one line, as the kernel logs it at boot:
/// `00:03.0 1af4:1005 class 00ff00 bars [0:io 0x20 at 0xc040, ...] caps [msix(2 ...) ...]`,
/// with `buses 00 -> 01..01` after the class for a bridge and
/// `error(...)` for a BAR or a capability entry that could not be decoded.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    /// Where the function sits.
    pub addr: Address,
    /// Its header.
    pub header: &'a Header,
    /// Its BAR registers.
    pub bars: &'a [BarSlot],
    /// Its capability list as the walk yielded it.
    pub caps: &'a [Result<Capability, CapError>],
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.header;
        write!(
            f,
            "{} {:04x}:{:04x} class {:06x}",
            self.addr,
            h.vendor_id,
            h.device_id,
            h.class_code()
        )?;
        if let Some(b) = h.bridge() {
            write!(f, " {b}")?;
        }
        f.write_str(" bars [")?;
        let mut sep = "";
        for slot in self.bars {
            match slot {
                BarSlot::Bar(b) => write!(f, "{sep}{b}")?,
                BarSlot::Invalid(e) => write!(f, "{sep}error({e})")?,
                BarSlot::Unused | BarSlot::Upper => continue,
            }
            sep = ", ";
        }
        f.write_str("] caps [")?;
        let mut sep = "";
        for c in self.caps {
            match c {
                Ok(c) => write!(f, "{sep}{c}")?,
                Err(e) => write!(f, "{sep}error({e})")?,
            }
            sep = " ";
        }
        f.write_str("]")
    }
}
