//! Base address registers from what the write-ones probe read back.
//!
//! The kernel reads each BAR, writes all ones to it with I/O and memory
//! decoding off, reads the result (the probe value: the address bits the
//! device decodes read back as ones, the others as zeros) and restores the
//! original. The size is the lowest address bit set in the probe value; a
//! probe with no address bits set is an unimplemented BAR. A 64-bit BAR
//! takes two registers, the second holding the upper half of both the
//! address and the probe.

use core::fmt;

/// Most BARs a header has (type 0).
pub const MAX_BARS: usize = 6;

/// What a BAR maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// I/O ports.
    Io,
    /// Memory below 4 GiB (types 00 and the old "below 1 MiB" 01).
    Mem32,
    /// Memory anywhere, two registers.
    Mem64,
}

/// One implemented BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// The register it starts at (0..6).
    pub index: u8,
    /// I/O or memory, and the address width.
    pub kind: BarKind,
    /// Memory that may be prefetched (reads have no side effects).
    pub prefetchable: bool,
    /// The address firmware assigned (0 when none was).
    pub address: u64,
    /// Size in bytes, a power of two.
    pub size: u64,
}

/// Why a BAR register could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarError {
    /// A 64-bit BAR in the last register has no register for its upper half.
    Mem64InLastSlot {
        /// The register.
        index: u8,
    },
    /// Memory type 11, which the specification reserves.
    ReservedType {
        /// The register.
        index: u8,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mem64InLastSlot { index } => {
                write!(f, "{index}:64-bit BAR in the last register")
            }
            Self::ReservedType { index } => write!(f, "{index}:reserved memory type 11"),
        }
    }
}

/// What one BAR register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarSlot {
    /// Not implemented (the probe read back no address bits), or past the
    /// header's BARs.
    Unused,
    /// A BAR starting here.
    Bar(Bar),
    /// The upper half of the 64-bit BAR in the register before.
    Upper,
    /// A register that cannot be decoded.
    Invalid(BarError),
}

const IO_FLAG: u32 = 1;
const MEM_TYPE_MASK: u32 = 0b110;
const MEM_TYPE_64: u32 = 0b100;
const MEM_TYPE_RESERVED: u32 = 0b110;
const PREFETCHABLE: u32 = 1 << 3;
const IO_ADDR_MASK: u32 = !0b11;
const MEM_ADDR_MASK: u32 = !0b1111;

/// Lowest set bit of `mask`: the size of a region whose address bits are
/// `mask`.
fn size_of_mask(mask: u64) -> u64 {
    mask & mask.wrapping_neg()
}

/// Decodes BAR registers from their original values (`raw`) and the values
/// the write-ones probe read back (`probe`), register by register. Only the
/// first `min(raw.len(), probe.len(), 6)` registers are looked at; the rest
/// are [`BarSlot::Unused`].
pub fn decode_bars(raw: &[u32], probe: &[u32]) -> [BarSlot; MAX_BARS] {
    let count = raw.len().min(probe.len()).min(MAX_BARS);
    let mut slots = [BarSlot::Unused; MAX_BARS];
    let mut i = 0;
    while i < count {
        let (r, p) = (raw[i], probe[i]);
        let index = i as u8;
        if r & IO_FLAG != 0 {
            let mask = (p & IO_ADDR_MASK) as u64;
            if mask != 0 {
                slots[i] = BarSlot::Bar(Bar {
                    index,
                    kind: BarKind::Io,
                    prefetchable: false,
                    address: (r & IO_ADDR_MASK) as u64,
                    size: size_of_mask(mask),
                });
            }
            i += 1;
            continue;
        }
        let prefetchable = r & PREFETCHABLE != 0;
        match r & MEM_TYPE_MASK {
            MEM_TYPE_RESERVED => {
                slots[i] = BarSlot::Invalid(BarError::ReservedType { index });
                i += 1;
            }
            MEM_TYPE_64 => {
                if i + 1 >= count {
                    slots[i] = BarSlot::Invalid(BarError::Mem64InLastSlot { index });
                    i += 1;
                    continue;
                }
                let mask = (probe[i + 1] as u64) << 32 | (p & MEM_ADDR_MASK) as u64;
                if mask != 0 {
                    slots[i] = BarSlot::Bar(Bar {
                        index,
                        kind: BarKind::Mem64,
                        prefetchable,
                        address: (raw[i + 1] as u64) << 32 | (r & MEM_ADDR_MASK) as u64,
                        size: size_of_mask(mask),
                    });
                }
                slots[i + 1] = BarSlot::Upper;
                i += 2;
            }
            _ => {
                let mask = (p & MEM_ADDR_MASK) as u64;
                if mask != 0 {
                    slots[i] = BarSlot::Bar(Bar {
                        index,
                        kind: BarKind::Mem32,
                        prefetchable,
                        address: (r & MEM_ADDR_MASK) as u64,
                        size: size_of_mask(mask),
                    });
                }
                i += 1;
            }
        }
    }
    slots
}

impl fmt::Display for Bar {
    /// `0:io 0x20 at 0xc040`, `4:mem64 pf 0x4000 at 0xfe000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            BarKind::Io => "io",
            BarKind::Mem32 => "mem32",
            BarKind::Mem64 => "mem64",
        };
        write!(f, "{}:{}", self.index, kind)?;
        if self.prefetchable {
            f.write_str(" pf")?;
        }
        write!(f, " {:#x} at {:#x}", self.size, self.address)
    }
}
