//! Physical memory map normalization.
//!
//! Firmware memory maps may be unsorted, overlapping and split into many
//! touching pieces. [`MemoryMap`] collects raw entries plus the ranges the
//! kernel itself occupies ([`MemoryMap::carve`]) and
//! [`normalizes`](MemoryMap::normalize) them into a sorted list of disjoint
//! regions where every byte has exactly one kind: the highest-ranked kind of
//! all entries covering it.
//!
//! Everything lives in fixed arrays inside [`MemoryMap`] (about 6 KiB), so it
//! works before the kernel has a heap.

use core::fmt;

use crate::frame_bitmap::FRAME_SIZE;

/// What a physical memory region holds.
///
/// Variants are declared in rank order, lowest first, so the derived `Ord`
/// equals [`RegionKind::rank`]. When entries overlap, the higher rank wins:
///
/// | rank | kind |
/// |------|------|
/// | 0 | `Usable` |
/// | 1 | `BootloaderReclaimable` |
/// | 2 | `AcpiReclaimable` |
/// | 3 | `AcpiNvs` |
/// | 4 | `Reserved` |
/// | 5 | `Defective` |
/// | 6 | `BootInfo` |
/// | 7 | `Module` |
/// | 8 | `Kernel` |
///
/// Any kind beats `Usable`, and the kernel image, boot modules and the boot
/// information block always win, so carving them out of RAM cannot be undone
/// by a firmware entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionKind {
    /// RAM free for general use.
    Usable,
    /// RAM holding boot loader data; reusable once the kernel is done with it.
    BootloaderReclaimable,
    /// RAM holding ACPI tables; reusable once they have been read.
    AcpiReclaimable,
    /// ACPI non-volatile storage; must be preserved.
    AcpiNvs,
    /// Reserved by firmware or hardware, or of a type the kernel does not know.
    Reserved,
    /// RAM reported as faulty.
    Defective,
    /// The boot information block handed over by the boot loader.
    BootInfo,
    /// A boot module loaded by the boot loader.
    Module,
    /// The kernel image.
    Kernel,
}

impl RegionKind {
    /// Every kind, in rank order.
    pub const ALL: [RegionKind; 9] = [
        RegionKind::Usable,
        RegionKind::BootloaderReclaimable,
        RegionKind::AcpiReclaimable,
        RegionKind::AcpiNvs,
        RegionKind::Reserved,
        RegionKind::Defective,
        RegionKind::BootInfo,
        RegionKind::Module,
        RegionKind::Kernel,
    ];

    /// Overlap priority: the kind with the higher rank wins.
    pub const fn rank(self) -> u8 {
        self as u8
    }

    /// Short lowercase name, for logs.
    pub const fn name(self) -> &'static str {
        match self {
            RegionKind::Usable => "usable",
            RegionKind::BootloaderReclaimable => "bootloader-reclaimable",
            RegionKind::AcpiReclaimable => "acpi-reclaimable",
            RegionKind::AcpiNvs => "acpi-nvs",
            RegionKind::Reserved => "reserved",
            RegionKind::Defective => "defective",
            RegionKind::BootInfo => "boot-info",
            RegionKind::Module => "module",
            RegionKind::Kernel => "kernel",
        }
    }
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A physical address range `[start, end)` of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte address.
    pub start: u64,
    /// One past the last byte address (exclusive).
    pub end: u64,
    /// What the range holds.
    pub kind: RegionKind,
}

impl Region {
    const EMPTY: Region = Region { start: 0, end: 0, kind: RegionKind::Usable };

    /// Size in bytes (0 if `end <= start`).
    pub const fn size(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether `addr` lies in `[start, end)`.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The whole 4 KiB frames inside the region, as `(first_frame, frame_count)`:
    /// the start is rounded up and the end rounded down to a frame boundary.
    pub const fn whole_frames(&self) -> (u64, u64) {
        let first = self.start.div_ceil(FRAME_SIZE);
        let last = self.end / FRAME_SIZE;
        (first, last.saturating_sub(first))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x}) {}", self.start, self.end, self.kind)
    }
}

/// Capacity of a [`MemoryMap`], both for raw entries and for the normalized
/// result.
pub const MAX_REGIONS: usize = 128;

/// Errors reported by [`MemoryMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemMapError {
    /// More regions were needed than the map can hold.
    Full {
        /// The map's capacity in regions.
        capacity: usize,
    },
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemMapError::Full { capacity } => {
                write!(f, "memory map full: it needs more than its capacity of {capacity} regions")
            }
        }
    }
}

/// A physical memory map with fixed capacity and no allocation.
#[derive(Debug, Clone)]
pub struct MemoryMap {
    regions: [Region; MAX_REGIONS],
    len: usize,
    scratch: [Region; MAX_REGIONS],
    normalized: bool,
}

impl Default for MemoryMap {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> Self {
        MemoryMap {
            regions: [Region::EMPTY; MAX_REGIONS],
            len: 0,
            scratch: [Region::EMPTY; MAX_REGIONS],
            normalized: true,
        }
    }

    /// Adds a raw entry of `len` bytes at `start`, as reported by firmware.
    ///
    /// Returns `Ok(false)` and ignores the entry if it is empty. A range
    /// running past the top of the address space is clamped to end at
    /// `u64::MAX` (the very last byte cannot be represented).
    pub fn add(&mut self, start: u64, len: u64, kind: RegionKind) -> Result<bool, MemMapError> {
        self.push(start, start.saturating_add(len), kind)
    }

    /// Overlays `[start, end)` with `kind` (kernel image, boot modules, boot
    /// information block). After [`normalize`](Self::normalize) the range has
    /// `kind` wherever `kind` outranks the other entries covering it. Empty
    /// or inverted ranges are ignored.
    pub fn carve(&mut self, start: u64, end: u64, kind: RegionKind) -> Result<(), MemMapError> {
        self.push(start, end, kind).map(|_| ())
    }

    fn push(&mut self, start: u64, end: u64, kind: RegionKind) -> Result<bool, MemMapError> {
        if end <= start {
            return Ok(false);
        }
        let slot =
            self.regions.get_mut(self.len).ok_or(MemMapError::Full { capacity: MAX_REGIONS })?;
        *slot = Region { start, end, kind };
        self.len += 1;
        self.normalized = false;
        Ok(true)
    }

    /// Sorts the entries, resolves overlaps and merges neighbours.
    ///
    /// Afterwards the regions are sorted by address and disjoint, every byte
    /// has the highest-ranked kind of all entries that covered it, and no two
    /// touching regions share a kind. Bytes no entry covered stay absent.
    ///
    /// Overlaps can split entries, so the result may need more regions than
    /// the input had; if it would exceed [`MAX_REGIONS`] this returns
    /// [`MemMapError::Full`] and leaves the map unchanged.
    pub fn normalize(&mut self) -> Result<(), MemMapError> {
        let input = &self.regions[..self.len];
        let mut out_len = 0usize;
        // Sweep over the elementary intervals between consecutive entry
        // boundaries, lowest address first. O(n) per boundary, at most 2n
        // boundaries.
        let mut pos = match input.iter().map(|r| r.start).min() {
            Some(start) => start,
            None => return Ok(()),
        };
        loop {
            let mut best: Option<RegionKind> = None;
            let mut next = u64::MAX;
            let mut more = false;
            for r in input {
                if r.contains(pos) {
                    best = best.max(Some(r.kind));
                }
                if r.start > pos && r.start <= next {
                    next = r.start;
                    more = true;
                }
                if r.end > pos && r.end <= next {
                    next = r.end;
                    more = true;
                }
            }
            if !more {
                break;
            }
            if let Some(kind) = best {
                match self.scratch[..out_len].last_mut() {
                    Some(prev) if prev.kind == kind && prev.end == pos => prev.end = next,
                    _ => {
                        let slot = self
                            .scratch
                            .get_mut(out_len)
                            .ok_or(MemMapError::Full { capacity: MAX_REGIONS })?;
                        *slot = Region { start: pos, end: next, kind };
                        out_len += 1;
                    }
                }
            }
            pos = next;
        }
        self.regions[..out_len].copy_from_slice(&self.scratch[..out_len]);
        self.len = out_len;
        self.normalized = true;
        Ok(())
    }

    /// Whether the map is normalized: nothing was added since the last
    /// successful [`normalize`](Self::normalize).
    pub fn is_normalized(&self) -> bool {
        self.normalized
    }

    /// The regions: normalized after [`normalize`](Self::normalize), raw
    /// entries in insertion order before.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.len]
    }

    /// The kind of the region containing `addr`, if any. Meaningful on a
    /// normalized map; on a raw one it is the kind of the first entry found.
    pub fn kind_at(&self, addr: u64) -> Option<RegionKind> {
        self.regions().iter().find(|r| r.contains(addr)).map(|r| r.kind)
    }

    /// Usable bytes, counting only whole 4 KiB frames per region (start
    /// rounded up, end rounded down). Call after [`normalize`](Self::normalize),
    /// or overlapping entries are counted twice.
    pub fn usable_bytes(&self) -> u64 {
        self.usable_frames().fold(0u64, |acc, (_, count)| acc.saturating_add(count * FRAME_SIZE))
    }

    /// Usable regions as whole 4 KiB frames: `(first_frame, frame_count)` per
    /// region, skipping regions that contain no whole frame. Call after
    /// [`normalize`](Self::normalize).
    pub fn usable_frames(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(Region::whole_frames)
            .filter(|&(_, count)| count > 0)
    }

    /// Highest end address (exclusive) of any region, 0 if there is none.
    pub fn max_address(&self) -> u64 {
        self.regions().iter().map(|r| r.end).max().unwrap_or(0)
    }

    /// Highest end address (exclusive) of any usable region, 0 if there is
    /// none.
    pub fn max_usable_address(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.end)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegionKind::*;

    const GIB: u64 = 1 << 30;

    fn r(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    fn normalized(entries: &[(u64, u64, RegionKind)]) -> MemoryMap {
        let mut map = MemoryMap::new();
        for &(start, len, kind) in entries {
            map.add(start, len, kind).unwrap();
        }
        map.normalize().unwrap();
        map
    }

    #[test]
    fn rank_matches_declaration_order() {
        for pair in RegionKind::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].rank() < pair[1].rank());
        }
        assert!(Kernel > Module && Module > BootInfo && BootInfo > Defective);
        assert!(Defective > Reserved && Reserved > AcpiNvs);
        assert!(AcpiNvs > AcpiReclaimable && AcpiReclaimable > BootloaderReclaimable);
        assert!(BootloaderReclaimable > Usable);
    }

    #[test]
    fn empty_map() {
        let mut map = MemoryMap::new();
        map.normalize().unwrap();
        assert!(map.regions().is_empty());
        assert_eq!(map.usable_bytes(), 0);
        assert_eq!(map.max_address(), 0);
        assert_eq!(map.max_usable_address(), 0);
        assert_eq!(map.usable_frames().count(), 0);
    }

    #[test]
    fn reserved_wins_over_overlapping_usable() {
        let map = normalized(&[(0, 0x10000, Usable), (0x8000, 0x10000, Reserved)]);
        assert_eq!(map.regions(), &[r(0, 0x8000, Usable), r(0x8000, 0x18000, Reserved)]);
        assert_eq!(map.usable_bytes(), 0x8000);
        assert_eq!(map.max_address(), 0x18000);
        assert_eq!(map.max_usable_address(), 0x8000);
    }

    #[test]
    fn order_of_addition_does_not_matter() {
        let a = normalized(&[(0x8000, 0x10000, Reserved), (0, 0x10000, Usable)]);
        let b = normalized(&[(0, 0x10000, Usable), (0x8000, 0x10000, Reserved)]);
        assert_eq!(a.regions(), b.regions());
    }

    #[test]
    fn entries_above_4_gib_kept() {
        let map = normalized(&[
            (4 * GIB, 4 * GIB, Usable),
            (0x10_0000, GIB, Usable),
            (0xfec0_0000, 0x1000, Reserved),
        ]);
        assert_eq!(
            map.regions(),
            &[
                r(0x10_0000, 0x10_0000 + GIB, Usable),
                r(0xfec0_0000, 0xfec0_1000, Reserved),
                r(4 * GIB, 8 * GIB, Usable),
            ]
        );
        assert_eq!(map.max_usable_address(), 8 * GIB);
        assert_eq!(map.usable_bytes(), 5 * GIB);
    }

    #[test]
    fn duplicates_and_touching_entries_merged() {
        let map = normalized(&[
            (0x1000, 0x1000, Usable),
            (0x1000, 0x1000, Usable),
            (0x2000, 0x3000, Usable),
            (0x4000, 0x1000, Usable),
            (0x5000, 0x1000, AcpiNvs),
        ]);
        assert_eq!(map.regions(), &[r(0x1000, 0x5000, Usable), r(0x5000, 0x6000, AcpiNvs)]);
    }

    #[test]
    fn zero_length_ignored() {
        let mut map = MemoryMap::new();
        assert_eq!(map.add(0x1000, 0, Usable), Ok(false));
        assert_eq!(map.add(u64::MAX, 10, Usable), Ok(false));
        assert_eq!(map.carve(0x3000, 0x2000, Kernel), Ok(()));
        assert_eq!(map.carve(0x3000, 0x3000, Kernel), Ok(()));
        assert!(map.regions().is_empty());
        assert!(map.is_normalized());
        assert_eq!(map.add(0x1000, 1, Usable), Ok(true));
        assert!(!map.is_normalized());
    }

    #[test]
    fn overflowing_length_clamped() {
        let map = normalized(&[(u64::MAX - 0x1fff, u64::MAX, Usable)]);
        assert_eq!(map.regions(), &[r(u64::MAX - 0x1fff, u64::MAX, Usable)]);
        assert_eq!(map.max_address(), u64::MAX);
        // Only the one whole frame that ends below u64::MAX counts.
        assert_eq!(map.usable_frames().collect::<Vec<_>>(), [((u64::MAX >> 12) - 1, 1)]);
        assert_eq!(map.usable_bytes(), 0x1000);
    }

    #[test]
    fn kernel_carve_splits_usable_into_three() {
        let mut map = MemoryMap::new();
        map.add(0x10_0000, 0x7ff0_0000, Usable).unwrap();
        map.carve(0x20_0000, 0x40_0000, Kernel).unwrap();
        map.normalize().unwrap();
        assert_eq!(
            map.regions(),
            &[
                r(0x10_0000, 0x20_0000, Usable),
                r(0x20_0000, 0x40_0000, Kernel),
                r(0x40_0000, 0x8000_0000, Usable),
            ]
        );
        assert_eq!(map.kind_at(0x30_0000), Some(Kernel));
        assert_eq!(map.kind_at(0x5000), None);
    }

    #[test]
    fn carve_does_not_override_higher_rank() {
        let mut map = MemoryMap::new();
        map.add(0, 0x3000, Defective).unwrap();
        map.carve(0x1000, 0x2000, AcpiReclaimable).unwrap();
        map.carve(0x1000, 0x2000, Usable).unwrap();
        map.normalize().unwrap();
        assert_eq!(map.regions(), &[r(0, 0x3000, Defective)]);
    }

    #[test]
    fn usable_frames_round_inwards() {
        let map = normalized(&[
            (0x0, 0x9fc00, Usable),
            (0x100_0800, 0x1800, Usable),
            (0x200_0800, 0x800, Usable),
        ]);
        assert_eq!(map.usable_frames().collect::<Vec<_>>(), [(0, 0x9f), (0x1001, 1)]);
        assert_eq!(map.usable_bytes(), 0xa0 * 0x1000);
    }

    #[test]
    fn normalize_is_idempotent() {
        let mut map = normalized(&[(0, 100, Usable), (50, 100, Reserved), (70, 5, Kernel)]);
        let before = map.regions().to_vec();
        map.normalize().unwrap();
        assert_eq!(map.regions(), &before[..]);
    }

    #[test]
    fn full_on_add() {
        let mut map = MemoryMap::new();
        for i in 0..MAX_REGIONS as u64 {
            assert_eq!(map.add(i * 0x2000, 0x1000, Usable), Ok(true));
        }
        let err = map.add(0x100_0000, 0x1000, Usable).unwrap_err();
        assert_eq!(err, MemMapError::Full { capacity: MAX_REGIONS });
        assert_eq!(
            err.to_string(),
            "memory map full: it needs more than its capacity of 128 regions"
        );
        // Empty entries are still ignored, not errors.
        assert_eq!(map.add(0, 0, Usable), Ok(false));
        map.normalize().unwrap();
        assert_eq!(map.regions().len(), MAX_REGIONS);
    }

    #[test]
    fn full_on_normalize_leaves_map_unchanged() {
        // One big usable range with 127 reserved holes needs 255 regions.
        let mut map = MemoryMap::new();
        map.add(0, 1 << 40, Usable).unwrap();
        for i in 0..(MAX_REGIONS as u64 - 1) {
            map.add(0x1000 + i * 0x2000, 0x1000, Reserved).unwrap();
        }
        let before = map.regions().to_vec();
        assert_eq!(map.normalize(), Err(MemMapError::Full { capacity: MAX_REGIONS }));
        assert_eq!(map.regions(), &before[..]);
        assert!(!map.is_normalized());
    }

    #[test]
    fn display() {
        assert_eq!(
            r(0x1000, 0x2000, BootloaderReclaimable).to_string(),
            "[0x1000, 0x2000) bootloader-reclaimable"
        );
    }

    fn kind() -> impl Strategy<Value = RegionKind> {
        (0..RegionKind::ALL.len()).prop_map(|i| RegionKind::ALL[i])
    }

    fn entry() -> impl Strategy<Value = (u64, u64, RegionKind)> {
        prop_oneof![
            // Dense, small addresses: lots of overlaps and touching edges.
            4 => (0u64..200, 0u64..80, kind()),
            // Anywhere, including above 4 GiB and near the top.
            1 => (any::<u64>(), any::<u64>(), kind()),
        ]
    }

    fn probe(entries: &[(u64, u64, RegionKind)], addr: u64) -> Option<RegionKind> {
        entries
            .iter()
            .filter(|&&(start, len, _)| start <= addr && addr < start.saturating_add(len))
            .map(|&(_, _, kind)| kind)
            .max()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn normalize_properties(
            entries in proptest::collection::vec(entry(), 0..50),
            probes in proptest::collection::vec(any::<u64>(), 0..20),
        ) {
            let mut map = MemoryMap::new();
            for &(start, len, kind) in &entries {
                map.add(start, len, kind).unwrap();
            }
            map.normalize().unwrap();
            let regions = map.regions();
            for reg in regions {
                prop_assert!(reg.start < reg.end);
            }
            for pair in regions.windows(2) {
                prop_assert!(pair[0].end <= pair[1].start, "sorted, disjoint: {:?}", pair);
                prop_assert!(
                    !(pair[0].end == pair[1].start && pair[0].kind == pair[1].kind),
                    "touching regions of one kind: {:?}", pair
                );
            }
            // Probe every boundary, its neighbours, and random addresses.
            let mut addrs = probes;
            for &(start, len, _) in &entries {
                let end = start.saturating_add(len);
                addrs.extend([start, start.wrapping_sub(1), end, end.wrapping_sub(1), start / 2 + end / 2]);
            }
            for addr in addrs {
                prop_assert_eq!(map.kind_at(addr), probe(&entries, addr), "at {:#x}", addr);
            }
            // Normalizing again changes nothing.
            let before = regions.to_vec();
            map.normalize().unwrap();
            prop_assert_eq!(map.regions(), &before[..]);
            // Usable accounting agrees with the regions.
            let usable: u64 = map.usable_frames().map(|(_, n)| n * FRAME_SIZE).sum();
            prop_assert_eq!(map.usable_bytes(), usable);
            prop_assert!(map.max_usable_address() <= map.max_address());
        }
    }
}
