//! The capability list: a chain of entries in configuration space, each
//! `id: u8, next: u8` followed by its body, starting at the pointer in the
//! header.
//!
//! The walk trusts nothing. A pointer below the header (0x40) or not a
//! multiple of 4, a pointer seen before (a loop) and more than
//! [`MAX_CAPABILITIES`] entries end the walk with that [`CapError`]; an entry
//! whose body would run past the 256 bytes the list lives in yields
//! [`CapError::Truncated`] and the walk goes on to the next entry. There are
//! only 48 dword-aligned places above the header, so an honest list is never
//! longer than that.

use core::fmt;

use super::{reg, ConfigSpace, Header};

/// Most entries a walk visits (the dword-aligned offsets in 0x40..0x100).
pub const MAX_CAPABILITIES: usize = 48;

/// Capability ids decoded here.
pub mod id {
    /// PCI power management.
    pub const POWER_MANAGEMENT: u8 = 0x01;
    /// Message signalled interrupts.
    pub const MSI: u8 = 0x05;
    /// Vendor specific (virtio's configuration structures).
    pub const VENDOR: u8 = 0x09;
    /// PCI Express.
    pub const PCI_EXPRESS: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// A place in a BAR: which BAR (`bar`, 0..6; 6 and 7 are reserved values a
/// device may still report) and the byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarOffset {
    /// BAR index (BIR).
    pub bar: u8,
    /// Offset in that BAR.
    pub offset: u32,
}

impl fmt::Display for BarOffset {
    /// `1+0x800`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.bar, self.offset)
    }
}

/// Which virtio configuration structure a vendor capability locates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioCfgType {
    /// Common configuration (1).
    Common,
    /// Notifications (2).
    Notify,
    /// ISR status (3).
    Isr,
    /// Device-specific configuration (4).
    Device,
    /// The PCI configuration access window (5).
    PciCfg,
    /// A shared memory region (8).
    SharedMemory,
    /// Vendor data (9).
    Vendor,
    /// A type virtio 1.2 does not define.
    Unknown(u8),
}

impl VirtioCfgType {
    /// The type of `cfg_type`.
    pub fn from_raw(v: u8) -> VirtioCfgType {
        match v {
            1 => Self::Common,
            2 => Self::Notify,
            3 => Self::Isr,
            4 => Self::Device,
            5 => Self::PciCfg,
            8 => Self::SharedMemory,
            9 => Self::Vendor,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for VirtioCfgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Common => f.write_str("common"),
            Self::Notify => f.write_str("notify"),
            Self::Isr => f.write_str("isr"),
            Self::Device => f.write_str("device"),
            Self::PciCfg => f.write_str("pci-cfg"),
            Self::SharedMemory => f.write_str("shm"),
            Self::Vendor => f.write_str("vendor"),
            Self::Unknown(v) => write!(f, "type{v}"),
        }
    }
}

/// A virtio structure location (`struct virtio_pci_cap`, and
/// `virtio_pci_cap64` for shared memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioCap {
    /// What the structure is.
    pub cfg_type: VirtioCfgType,
    /// The BAR holding it.
    pub bar: u8,
    /// Which of several structures of one type (shared memory region id).
    pub id: u8,
    /// Offset in the BAR.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Notify structures: the multiplier of a queue's notify offset.
    pub notify_off_multiplier: Option<u32>,
}

/// The PCI Express device/port type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortType(pub u8);

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "endpoint",
            1 => "legacy-endpoint",
            4 => "root-port",
            5 => "upstream-port",
            6 => "downstream-port",
            7 => "pcie-to-pci",
            8 => "pci-to-pcie",
            9 => "integrated",
            10 => "event-collector",
            other => return write!(f, "type{other}"),
        };
        f.write_str(name)
    }
}

/// One decoded capability; `offset` is where it sits in configuration space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Power management.
    PowerManagement {
        /// Offset.
        offset: u8,
        /// Version of the power management interface.
        version: u8,
    },
    /// MSI.
    Msi {
        /// Offset.
        offset: u8,
        /// Vectors the function can use (1..=32).
        vectors: u8,
        /// 64-bit message address.
        addr64: bool,
        /// Per-vector masking.
        per_vector_mask: bool,
        /// Enabled when read.
        enabled: bool,
    },
    /// MSI-X.
    MsiX {
        /// Offset.
        offset: u8,
        /// Table entries (1..=2048).
        table_size: u16,
        /// Where the vector table is.
        table: BarOffset,
        /// Where the pending bit array is.
        pba: BarOffset,
        /// Enabled when read.
        enabled: bool,
    },
    /// Vendor specific; virtio devices' have virtio's layout.
    Vendor {
        /// Offset.
        offset: u8,
        /// The entry's length byte.
        len: u8,
        /// The decoded virtio structure, on a virtio device.
        virtio: Option<VirtioCap>,
    },
    /// PCI Express.
    PciExpress {
        /// Offset.
        offset: u8,
        /// Capability version.
        version: u8,
        /// Device/port type.
        port_type: PortType,
    },
    /// An id not decoded here.
    Other {
        /// Offset.
        offset: u8,
        /// Capability id.
        id: u8,
    },
}

impl Capability {
    /// Where it sits in configuration space.
    pub fn offset(&self) -> u8 {
        match *self {
            Self::PowerManagement { offset, .. }
            | Self::Msi { offset, .. }
            | Self::MsiX { offset, .. }
            | Self::Vendor { offset, .. }
            | Self::PciExpress { offset, .. }
            | Self::Other { offset, .. } => offset,
        }
    }
}

impl fmt::Display for Capability {
    /// `msix(3 table 1+0x0 pba 1+0x800)`, `virtio(notify 4:0x3000+0x1000 x4)`,
    /// `pcie(v2 endpoint)`, `msi(1 64bit)`, `pm`, `vendor(8)`, `cap(0x12)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PowerManagement { .. } => f.write_str("pm"),
            Self::Msi { vectors, addr64, per_vector_mask, enabled, .. } => {
                write!(f, "msi({vectors}")?;
                if addr64 {
                    f.write_str(" 64bit")?;
                }
                if per_vector_mask {
                    f.write_str(" mask")?;
                }
                if enabled {
                    f.write_str(" on")?;
                }
                f.write_str(")")
            }
            Self::MsiX { table_size, table, pba, enabled, .. } => {
                write!(f, "msix({table_size} table {table} pba {pba}")?;
                if enabled {
                    f.write_str(" on")?;
                }
                f.write_str(")")
            }
            Self::Vendor { virtio: Some(v), .. } => {
                write!(f, "virtio({}", v.cfg_type)?;
                if v.cfg_type == VirtioCfgType::SharedMemory {
                    write!(f, " {}", v.id)?;
                }
                write!(f, " {}:{:#x}+{:#x}", v.bar, v.offset, v.length)?;
                if let Some(m) = v.notify_off_multiplier {
                    write!(f, " x{m}")?;
                }
                f.write_str(")")
            }
            Self::Vendor { len, virtio: None, .. } => write!(f, "vendor({len})"),
            Self::PciExpress { version, port_type, .. } => {
                write!(f, "pcie(v{version} {port_type})")
            }
            Self::Other { id, .. } => write!(f, "cap({id:#04x})"),
        }
    }
}

/// Why (part of) a capability list was not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// A pointer into the standard header (below 0x40); ends the walk.
    BelowHeader {
        /// The pointer.
        ptr: u8,
    },
    /// A pointer that is not a multiple of 4; ends the walk.
    Unaligned {
        /// The pointer.
        ptr: u8,
    },
    /// A pointer to an entry already visited; ends the walk.
    Loop {
        /// The pointer.
        ptr: u8,
    },
    /// More than [`MAX_CAPABILITIES`] entries; ends the walk.
    TooMany,
    /// An entry whose body would end past offset 0x100 (or, vendor
    /// specific, whose length is shorter than its layout); the walk goes on.
    Truncated {
        /// Where the entry is.
        offset: u8,
        /// Its id.
        id: u8,
        /// Bytes its layout needs.
        needs: u16,
    },
}

impl CapError {
    /// The walk stops after this error.
    pub fn ends_walk(&self) -> bool {
        !matches!(self, Self::Truncated { .. })
    }
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BelowHeader { ptr } => write!(f, "pointer {ptr:#04x} into the header"),
            Self::Unaligned { ptr } => write!(f, "unaligned pointer {ptr:#04x}"),
            Self::Loop { ptr } => write!(f, "loop back to {ptr:#04x}"),
            Self::TooMany => write!(f, "more than {MAX_CAPABILITIES} entries"),
            Self::Truncated { offset, id, needs } => {
                write!(f, "entry {id:#04x} at {offset:#04x} needs {needs} bytes")
            }
        }
    }
}

/// A walk over one function's capability list; yields each entry or the
/// error that ends (or, [`CapError::Truncated`], interrupts) it.
#[derive(Debug)]
pub struct Capabilities<'a, C: ?Sized> {
    cfg: &'a C,
    next: u8,
    virtio: bool,
    visited: u64,
    seen: usize,
    done: bool,
}

/// Walks the capability list of the function whose header is `header`.
/// Empty when the status register says there is no list.
pub fn capabilities<'a, C: ConfigSpace + ?Sized>(
    cfg: &'a C,
    header: &Header,
) -> Capabilities<'a, C> {
    let next = header.capability_pointer_offset().map(|o| cfg.read8(o)).unwrap_or(0);
    Capabilities { cfg, next, virtio: header.is_virtio(), visited: 0, seen: 0, done: false }
}

impl<C: ConfigSpace + ?Sized> Iterator for Capabilities<'_, C> {
    type Item = Result<Capability, CapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.next == 0 {
            return None;
        }
        let ptr = self.next;
        let fault = if ptr < reg::HEADER_END as u8 {
            Some(CapError::BelowHeader { ptr })
        } else if ptr & 3 != 0 {
            Some(CapError::Unaligned { ptr })
        } else if self.visited & (1u64 << ((ptr - 0x40) / 4)) != 0 {
            Some(CapError::Loop { ptr })
        } else if self.seen >= MAX_CAPABILITIES {
            Some(CapError::TooMany)
        } else {
            None
        };
        if let Some(e) = fault {
            self.done = true;
            return Some(Err(e));
        }
        self.visited |= 1u64 << ((ptr - 0x40) / 4);
        self.seen += 1;
        let head = self.cfg.read32(ptr as u16);
        self.next = (head >> 8) as u8;
        Some(decode(self.cfg, ptr, head, self.virtio))
    }
}

/// Bytes from `offset` to the end of the 256-byte space.
fn room(offset: u8) -> u16 {
    reg::LEGACY_SIZE - offset as u16
}

fn decode<C: ConfigSpace + ?Sized>(
    cfg: &C,
    offset: u8,
    head: u32,
    virtio: bool,
) -> Result<Capability, CapError> {
    let cap_id = head as u8;
    let control = (head >> 16) as u16;
    let at = |rel: u16| offset as u16 + rel;
    let need = |needs: u16| {
        if needs > room(offset) {
            Err(CapError::Truncated { offset, id: cap_id, needs })
        } else {
            Ok(())
        }
    };
    match cap_id {
        id::POWER_MANAGEMENT => {
            need(8)?;
            Ok(Capability::PowerManagement { offset, version: (control & 7) as u8 })
        }
        id::MSI => {
            let addr64 = control & (1 << 7) != 0;
            let per_vector_mask = control & (1 << 8) != 0;
            let needs = match (addr64, per_vector_mask) {
                (false, false) => 10,
                (true, false) => 14,
                (false, true) => 20,
                (true, true) => 24,
            };
            need(needs)?;
            let mmc = ((control >> 1) & 7).min(5);
            Ok(Capability::Msi {
                offset,
                vectors: 1 << mmc,
                addr64,
                per_vector_mask,
                enabled: control & 1 != 0,
            })
        }
        id::MSIX => {
            need(12)?;
            let table = cfg.read32(at(4));
            let pba = cfg.read32(at(8));
            Ok(Capability::MsiX {
                offset,
                table_size: (control & 0x7ff) + 1,
                table: BarOffset { bar: (table & 7) as u8, offset: table & !7 },
                pba: BarOffset { bar: (pba & 7) as u8, offset: pba & !7 },
                enabled: control & (1 << 15) != 0,
            })
        }
        id::VENDOR => {
            let len = control as u8;
            if len < 3 {
                return Err(CapError::Truncated { offset, id: cap_id, needs: 3 });
            }
            need(len as u16)?;
            if !virtio {
                return Ok(Capability::Vendor { offset, len, virtio: None });
            }
            let cfg_type = VirtioCfgType::from_raw((control >> 8) as u8);
            let needs = match cfg_type {
                VirtioCfgType::Notify => 20,
                VirtioCfgType::SharedMemory => 24,
                _ => 16,
            };
            if (len as u16) < needs {
                return Err(CapError::Truncated { offset, id: cap_id, needs });
            }
            let bar_id = cfg.read32(at(4));
            let mut off = cfg.read32(at(8)) as u64;
            let mut length = cfg.read32(at(12)) as u64;
            let mut notify_off_multiplier = None;
            match cfg_type {
                VirtioCfgType::Notify => notify_off_multiplier = Some(cfg.read32(at(16))),
                VirtioCfgType::SharedMemory => {
                    off |= (cfg.read32(at(16)) as u64) << 32;
                    length |= (cfg.read32(at(20)) as u64) << 32;
                }
                _ => {}
            }
            Ok(Capability::Vendor {
                offset,
                len,
                virtio: Some(VirtioCap {
                    cfg_type,
                    bar: bar_id as u8,
                    id: (bar_id >> 8) as u8,
                    offset: off,
                    length,
                    notify_off_multiplier,
                }),
            })
        }
        id::PCI_EXPRESS => {
            need(4)?;
            Ok(Capability::PciExpress {
                offset,
                version: (control & 0xf) as u8,
                port_type: PortType(((control >> 4) & 0xf) as u8),
            })
        }
        other => Ok(Capability::Other { offset, id: other }),
    }
}
