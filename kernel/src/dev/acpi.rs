//! ACPI static tables (through the `acpi` crate): the MADT for CPUs, I/O
//! APICs and ISA interrupt overrides; the MCFG for PCIe configuration space.
//!
//! Firmware tables are trusted only as far as the crate checks them; when
//! there is no usable RSDP or MADT the kernel falls back to one CPU and the
//! standard PC APIC addresses, with a warning.

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use capos_lib::multiboot2::Rsdp;

use crate::mem::paging;

/// One processor the MADT lists.
#[derive(Debug, Clone, Copy)]
pub struct CpuEntry {
    /// Local APIC id.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub uid: u32,
    /// Usable now (flag bit 0).
    pub enabled: bool,
}

/// One I/O APIC.
#[derive(Debug, Clone, Copy)]
pub struct IoApicInfo {
    /// I/O APIC id.
    pub id: u8,
    /// Physical register base.
    pub address: u64,
    /// First global system interrupt it handles.
    pub gsi_base: u32,
}

/// Interrupt pin polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Active high.
    High,
    /// Active low.
    Low,
}

/// Interrupt trigger mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Edge triggered.
    Edge,
    /// Level triggered.
    Level,
}

/// An ISA IRQ wired to a different GSI or with non-ISA signalling.
#[derive(Debug, Clone, Copy)]
pub struct IsaOverride {
    /// ISA IRQ number.
    pub isa_irq: u8,
    /// Global system interrupt it arrives on.
    pub gsi: u32,
    /// Polarity.
    pub polarity: Polarity,
    /// Trigger mode.
    pub trigger: Trigger,
}

/// One PCIe enhanced configuration (ECAM) window from the MCFG.
#[derive(Debug, Clone, Copy)]
pub struct EcamRegion {
    /// Physical base.
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus.
    pub bus_start: u8,
    /// Last bus.
    pub bus_end: u8,
}

/// What the kernel learned from ACPI.
#[derive(Debug)]
pub struct AcpiInfo {
    /// ACPI revision of the root table (0: RSDT).
    pub revision: u8,
    /// Local APIC physical base.
    pub local_apic: u64,
    /// Processors.
    pub cpus: Vec<CpuEntry>,
    /// I/O APICs.
    pub io_apics: Vec<IoApicInfo>,
    /// ISA interrupt overrides.
    pub overrides: Vec<IsaOverride>,
    /// PCIe ECAM windows (empty when there is no MCFG).
    pub ecam: Vec<EcamRegion>,
}

/// Why firmware tables were not used.
#[derive(Debug)]
pub enum AcpiInitError {
    /// The loader passed no RSDP.
    NoRsdp,
    /// RSDP signature wrong.
    BadRsdpSignature,
    /// RSDP checksum wrong.
    BadRsdpChecksum,
    /// The crate rejected the tables.
    Tables(acpi::AcpiError),
    /// No MADT.
    NoMadt,
}

impl core::fmt::Display for AcpiInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => f.write_str("the boot loader passed no RSDP"),
            Self::BadRsdpSignature => f.write_str("RSDP signature is not \"RSD PTR \""),
            Self::BadRsdpChecksum => f.write_str("RSDP checksum does not add up"),
            Self::Tables(e) => write!(f, "ACPI tables rejected: {e:?}"),
            Self::NoMadt => f.write_str("no MADT (APIC) table"),
        }
    }
}

#[derive(Clone, Copy)]
struct Handler;

impl AcpiHandler for Handler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = paging::map_firmware(phys as u64, size as u64)
            .unwrap_or_else(|e| panic!("acpi: cannot map table at {phys:#x}+{size:#x}: {e}"));
        let ptr = NonNull::new(virt as *mut T).expect("mapped firmware address is non-null");
        // SAFETY: `virt` maps `size` bytes at `phys` for the kernel's lifetime.
        unsafe { PhysicalMapping::new(phys, ptr, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
}

fn rsdp_root(rsdp: &Rsdp) -> Result<(u8, u64), AcpiInitError> {
    let (bytes, v2): (&[u8], bool) = match rsdp {
        Rsdp::V1(b) => (b, false),
        Rsdp::V2(b) => (b, true),
    };
    if &bytes[0..8] != b"RSD PTR " {
        return Err(AcpiInitError::BadRsdpSignature);
    }
    if !checksum_ok(&bytes[..20]) || (v2 && !checksum_ok(&bytes[..36])) {
        return Err(AcpiInitError::BadRsdpChecksum);
    }
    let rsdt = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as u64;
    if v2 && bytes[15] >= 2 {
        let mut x = [0u8; 8];
        x.copy_from_slice(&bytes[24..32]);
        let xsdt = u64::from_le_bytes(x);
        if xsdt != 0 {
            return Ok((2, xsdt));
        }
    }
    Ok((0, rsdt))
}

fn flags_to_signal(flags: u16) -> (Polarity, Trigger) {
    let polarity = if flags & 0b11 == 0b11 { Polarity::Low } else { Polarity::High };
    let trigger = if (flags >> 2) & 0b11 == 0b11 { Trigger::Level } else { Trigger::Edge };
    (polarity, trigger)
}

fn parse(rsdp: Option<&Rsdp>) -> Result<AcpiInfo, AcpiInitError> {
    let (revision, root) = rsdp_root(rsdp.ok_or(AcpiInitError::NoRsdp)?)?;
    // SAFETY: `root` comes from a checksummed RSDP; the crate validates the
    // root table's signature and checksum before using it.
    let tables = unsafe { AcpiTables::from_rsdt(Handler, revision, root as usize) }
        .map_err(AcpiInitError::Tables)?;
    let madt = tables.find_table::<Madt>().map_err(|_| AcpiInitError::NoMadt)?;
    let mut info = AcpiInfo {
        revision,
        local_apic: madt.get().local_apic_address as u64,
        cpus: Vec::new(),
        io_apics: Vec::new(),
        overrides: Vec::new(),
        ecam: Vec::new(),
    };
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                info.cpus.push(CpuEntry {
                    apic_id: e.apic_id as u32,
                    uid: e.processor_id as u32,
                    enabled: flags & 1 != 0,
                });
            }
            MadtEntry::LocalX2Apic(e) => {
                let (id, flags, uid) = (e.x2apic_id, e.flags, e.processor_uid);
                if id < 255 {
                    info.cpus.push(CpuEntry { apic_id: id, uid, enabled: flags & 1 != 0 });
                } else {
                    crate::kwarn!("acpi", "CPU with x2APIC id {id} needs x2APIC mode; not started");
                }
            }
            MadtEntry::IoApic(e) => info.io_apics.push(IoApicInfo {
                id: e.io_apic_id,
                address: e.io_apic_address as u64,
                gsi_base: e.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(e) if e.bus == 0 => {
                let (polarity, trigger) = flags_to_signal(e.flags);
                info.overrides.push(IsaOverride {
                    isa_irq: e.irq,
                    gsi: e.global_system_interrupt,
                    polarity,
                    trigger,
                });
            }
            MadtEntry::LocalApicAddressOverride(e) => info.local_apic = e.local_apic_address,
            _ => {}
        }
    }
    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        for e in mcfg.entries() {
            info.ecam.push(EcamRegion {
                base: e.base_address,
                segment: e.pci_segment_group,
                bus_start: e.bus_number_start,
                bus_end: e.bus_number_end,
            });
        }
    }
    Ok(info)
}

/// Reads the tables, or falls back to one CPU and PC defaults (with a
/// warning naming why).
pub fn init(rsdp: Option<&Rsdp>) -> AcpiInfo {
    match parse(rsdp) {
        Ok(info) => {
            crate::kinfo!(
                "acpi",
                "revision {}: {} CPU(s) ({} enabled), {} I/O APIC(s), {} ISA override(s), local APIC at {:#x}",
                info.revision,
                info.cpus.len(),
                info.cpus.iter().filter(|c| c.enabled).count(),
                info.io_apics.len(),
                info.overrides.len(),
                info.local_apic
            );
            if info.ecam.is_empty() {
                crate::kinfo!("acpi", "no MCFG: PCIe enhanced configuration space not described");
            }
            for e in &info.ecam {
                crate::kinfo!(
                    "acpi",
                    "MCFG: segment {} buses {}..={} at {:#x}",
                    e.segment,
                    e.bus_start,
                    e.bus_end,
                    e.base
                );
            }
            info
        }
        Err(e) => {
            crate::kwarn!("acpi", "{e}; assuming one CPU and standard PC APIC addresses");
            let cpus = alloc::vec![CpuEntry {
                apic_id: crate::arch::x86_64::apic::id(),
                uid: 0,
                enabled: true
            }];
            let io_apics = alloc::vec![IoApicInfo { id: 0, address: 0xFEC0_0000, gsi_base: 0 }];
            AcpiInfo {
                revision: 0,
                local_apic: 0xFEE0_0000,
                cpus,
                io_apics,
                overrides: Vec::new(),
                ecam: Vec::new(),
            }
        }
    }
}
