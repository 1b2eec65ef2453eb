//! PCI enumeration at boot: every function on every bus reachable from the
//! root buses, through PCI-to-PCI bridges, with its BARs sized and its
//! capability list decoded, kept in a bounded table for the device manager.
//!
//! Configuration space is reached through ECAM when the ACPI MCFG describes
//! windows (q35), else through the legacy `0xCF8`/`0xCFC` ports (`-machine
//! pc`). Decoding is [`capos_lib::pci`]; this module only reads and writes
//! registers. Bus numbers are the firmware's: a bridge it left unnumbered is
//! logged and not followed.

mod ecam;
mod legacy;

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use capos_lib::pci::{
    bar_offset, capabilities, command, decode_bars, reg, Address, BarSlot, CapError, Capability,
    ConfigSpace, Header, Summary, DEVICES_PER_BUS, FUNCTIONS_PER_DEVICE, MAX_BARS,
};
use spin::Once;

use crate::dev::acpi::AcpiInfo;
use crate::mem::paging::PagingError;

/// Most functions the table keeps; more are logged and left out.
pub const MAX_FUNCTIONS: usize = 256;

/// How configuration space is reached.
enum Mechanism {
    /// MCFG windows.
    Ecam(Vec<ecam::Window>),
    /// Ports `0xCF8`/`0xCFC`.
    Legacy,
}

impl Mechanism {
    /// The MCFG window covering `bus` of `segment`.
    fn window(&self, segment: u16, bus: u8) -> Option<&ecam::Window> {
        match self {
            Self::Ecam(windows) => {
                windows.iter().find(|w| w.region.segment == segment && w.covers(bus))
            }
            Self::Legacy => None,
        }
    }

    fn read32(&self, addr: Address, offset: u16) -> u32 {
        match self {
            Self::Ecam(_) => {
                self.window(addr.segment, addr.bus).map_or(u32::MAX, |w| w.read32(addr, offset))
            }
            Self::Legacy => legacy::read32(addr, offset),
        }
    }

    fn write32(&self, addr: Address, offset: u16, value: u32) {
        match self {
            Self::Ecam(_) => {
                if let Some(w) = self.window(addr.segment, addr.bus) {
                    w.write32(addr, offset, value)
                }
            }
            Self::Legacy => legacy::write32(addr, offset, value),
        }
    }

    /// Makes `bus` reachable (maps its ECAM; nothing for the ports).
    fn map_bus(&self, segment: u16, bus: u8) -> Result<(), PagingError> {
        match self {
            Self::Ecam(_) => self.window(segment, bus).map_or(Ok(()), |w| w.map_bus(bus)),
            Self::Legacy => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Ecam(_) => "ECAM",
            Self::Legacy => "legacy ports",
        }
    }
}

/// One function's configuration space through the machine's mechanism.
struct Config<'a> {
    mechanism: &'a Mechanism,
    addr: Address,
}

impl ConfigSpace for Config<'_> {
    fn read32(&self, offset: u16) -> u32 {
        self.mechanism.read32(self.addr, offset)
    }
}

impl Config<'_> {
    fn write32(&self, offset: u16, value: u32) {
        self.mechanism.write32(self.addr, offset, value)
    }
}

/// One function as enumeration found it.
pub struct Function {
    /// Where it sits.
    pub addr: Address,
    /// Its header.
    pub header: Header,
    /// Its BARs, sized.
    pub bars: [BarSlot; MAX_BARS],
    /// Its capability list in order, with the error that ended or
    /// interrupted the walk where it happened.
    pub caps: Vec<Result<Capability, CapError>>,
}

impl fmt::Display for Function {
    /// The boot log line ([`Summary`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Summary { addr: self.addr, header: &self.header, bars: &self.bars, caps: &self.caps }.fmt(f)
    }
}

static FUNCTIONS: Once<Vec<Function>> = Once::new();

/// The mechanism enumeration used, kept for the device manager.
static MECHANISM: Once<Mechanism> = Once::new();

/// Which table entries a driver has claimed.
static CLAIMED: [AtomicBool; MAX_FUNCTIONS] = [const { AtomicBool::new(false) }; MAX_FUNCTIONS];

/// Claims table entry `index` for a driver: false if it is claimed (or
/// out of the table).
pub fn try_claim(index: usize) -> bool {
    CLAIMED.get(index).is_some_and(|c| {
        c.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    })
}

/// Ends the claim of table entry `index`.
pub fn release(index: usize) {
    if let Some(c) = CLAIMED.get(index) {
        c.store(false, Ordering::Release);
    }
}

/// Whether table entry `index` is claimed.
pub fn claimed(index: usize) -> bool {
    CLAIMED.get(index).is_some_and(|c| c.load(Ordering::Acquire))
}

/// Reads the dword at `offset` (4-aligned, below 0x1000) of the function
/// at `addr`; all ones when it cannot be reached.
pub fn config_read32(addr: Address, offset: u16) -> u32 {
    MECHANISM.get().map_or(u32::MAX, |m| m.read32(addr, offset & 0xffc))
}

/// Writes the dword at `offset` (4-aligned, below 0x1000) of the function
/// at `addr`.
pub fn config_write32(addr: Address, offset: u16, value: u32) {
    if let Some(m) = MECHANISM.get() {
        m.write32(addr, offset & 0xffc, value)
    }
}

/// Read-modify-writes the 16 bits at `offset` (2-aligned): clears `clear`,
/// sets `set`. For the command register the status half is written as
/// zeros (its bits are write-one-to-clear).
pub fn config_update16(addr: Address, offset: u16, clear: u16, set: u16) {
    let dword = offset & 0xffc;
    let shift = (offset & 2) * 8;
    let old = config_read32(addr, dword);
    let half = ((old >> shift) as u16 & !clear) | set;
    let keep = if dword == reg::COMMAND { 0 } else { old & !(0xffff << shift) };
    config_write32(addr, dword, keep | (u32::from(half) << shift));
}

/// The functions enumeration found (empty before [`init`]).
pub fn functions() -> &'static [Function] {
    FUNCTIONS.get().map_or(&[], Vec::as_slice)
}

/// Sizes the BARs of the function at `cfg` with the write-ones probe, I/O
/// and memory decoding off meanwhile (left on for host bridges, which may
/// route the kernel's own accesses) and the command register restored.
fn probe_bars(cfg: &Config<'_>, header: &Header) -> [BarSlot; MAX_BARS] {
    let count = header.bar_count().min(MAX_BARS);
    if count == 0 {
        return [BarSlot::Unused; MAX_BARS];
    }
    let mut raw = [0u32; MAX_BARS];
    let mut probe = [0u32; MAX_BARS];
    let host_bridge = header.class == 0x06 && header.subclass == 0x00;
    let cmd = cfg.read16(reg::COMMAND);
    let decoding = command::IO | command::MEMORY;
    // Interrupt handlers may touch the devices (a UART behind the LPC
    // bridge) while their decoding is off: keep them out.
    x86_64::instructions::interrupts::without_interrupts(|| {
        // The status half of the dword is write-one-to-clear: write zeros
        // there.
        if !host_bridge && cmd & decoding != 0 {
            cfg.write32(reg::COMMAND, (cmd & !decoding) as u32);
        }
        for i in 0..count {
            let off = bar_offset(i);
            raw[i] = cfg.read32(off);
            cfg.write32(off, u32::MAX);
            probe[i] = cfg.read32(off);
            cfg.write32(off, raw[i]);
        }
        if !host_bridge && cmd & decoding != 0 {
            cfg.write32(reg::COMMAND, cmd as u32);
        }
    });
    // Everything written must read back as it was: a device that does not
    // take its BARs or command register back is named, not silently broken.
    for (i, &was) in raw.iter().enumerate().take(count) {
        let now = cfg.read32(bar_offset(i));
        if now != was {
            crate::kwarn!("pci", "{}: BAR {i} reads {now:#x} after sizing, was {was:#x}", cfg.addr);
        }
    }
    let now = cfg.read16(reg::COMMAND);
    if now != cmd {
        crate::kwarn!("pci", "{}: command reads {now:#06x} after sizing, was {cmd:#06x}", cfg.addr);
    }
    decode_bars(&raw[..count], &probe[..count])
}

/// Enumeration state: the table and the buses queued (the queue doubles as
/// the list of buses seen, so a bridge pointing back is not followed twice).
struct Scan<'a> {
    mechanism: &'a Mechanism,
    found: Vec<Function>,
    dropped: usize,
    queue: Vec<(u16, u8)>,
}

impl Scan<'_> {
    fn record(&mut self, addr: Address, header: Header) {
        let cfg = Config { mechanism: self.mechanism, addr };
        let bars = probe_bars(&cfg, &header);
        let caps: Vec<_> = capabilities(&cfg, &header).collect();
        let function = Function { addr, header, bars, caps };
        crate::kinfo!("pci", "{function}");
        if self.found.len() < MAX_FUNCTIONS {
            self.found.push(function);
        } else {
            self.dropped += 1;
        }
        if let Some(b) = header.bridge() {
            if !b.is_configured() || b.primary != addr.bus {
                crate::kwarn!("pci", "{addr}: bridge {b} not numbered by firmware; not followed");
            } else {
                self.enqueue(addr.segment, b.secondary);
            }
        }
    }

    fn enqueue(&mut self, segment: u16, bus: u8) {
        if !self.queue.contains(&(segment, bus)) {
            self.queue.push((segment, bus));
        }
    }

    fn scan_bus(&mut self, segment: u16, bus: u8) {
        if let Err(e) = self.mechanism.map_bus(segment, bus) {
            crate::kwarn!("pci", "bus {bus:02x} of segment {segment}: cannot map ECAM: {e}");
            return;
        }
        for device in 0..DEVICES_PER_BUS {
            let Some(addr) = Address::new(segment, bus, device, 0) else { continue };
            let Some(header) = Header::read(&Config { mechanism: self.mechanism, addr }) else {
                continue;
            };
            let functions = if header.multifunction { FUNCTIONS_PER_DEVICE } else { 1 };
            self.record(addr, header);
            for function in 1..functions {
                let Some(addr) = Address::new(segment, bus, device, function) else { continue };
                if let Some(h) = Header::read(&Config { mechanism: self.mechanism, addr }) {
                    self.record(addr, h);
                }
            }
        }
    }
}

/// Picks the mechanism: MCFG windows when ACPI names usable ones, else the
/// legacy ports when they answer.
fn mechanism(acpi: &AcpiInfo) -> Option<Mechanism> {
    let mut windows = Vec::new();
    for region in &acpi.ecam {
        match ecam::Window::new(*region) {
            Ok(w) => windows.push(w),
            Err(e) => {
                crate::kwarn!("pci", "MCFG window of segment {}: {e}; not used", region.segment)
            }
        }
    }
    if !windows.is_empty() {
        return Some(Mechanism::Ecam(windows));
    }
    legacy::present().then_some(Mechanism::Legacy)
}

/// Enumerates every function from the root buses (each MCFG window's first
/// bus, or bus 0) through the bridges, and keeps the table.
pub fn init(acpi: &AcpiInfo) {
    let Some(mechanism) = mechanism(acpi) else {
        crate::kwarn!("pci", "no configuration mechanism (no MCFG, legacy ports silent)");
        FUNCTIONS.call_once(Vec::new);
        return;
    };
    let mut scan = Scan { mechanism: &mechanism, found: Vec::new(), dropped: 0, queue: Vec::new() };
    match &mechanism {
        Mechanism::Ecam(windows) => {
            for w in windows {
                scan.enqueue(w.region.segment, w.region.bus_start);
            }
        }
        Mechanism::Legacy => scan.enqueue(0, 0),
    }
    let mut next = 0;
    while let Some(&(segment, bus)) = scan.queue.get(next) {
        next += 1;
        scan.scan_bus(segment, bus);
    }
    if scan.dropped > 0 {
        crate::kwarn!(
            "pci",
            "{} function(s) past the table's {MAX_FUNCTIONS} not kept",
            scan.dropped
        );
    }
    let (dropped, buses, found) = (scan.dropped, scan.queue.len(), scan.found);
    FUNCTIONS.call_once(|| found);
    crate::kinfo!(
        "pci",
        "{} function(s) on {} bus(es) through {}",
        functions().len() + dropped,
        buses,
        mechanism.name()
    );
    MECHANISM.call_once(|| mechanism);
}
