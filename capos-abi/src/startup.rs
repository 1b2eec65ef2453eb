//! The startup page: what the kernel tells a new process about itself.
//!
//! One 4 KiB page mapped read-only at [`STARTUP_PAGE_ADDR`] in every
//! process. It holds a [`StartupHeader`] at offset 0, `capset_count`
//! [`CapSetEntry`] records at `capset_offset` (the process's initial caps,
//! by name), and `args_len` bytes of arguments at `args_offset`, each
//! argument terminated by one NUL byte.
//!
//! The kernel builds the page with [`StartupHeader::to_bytes`] and
//! [`CapSetEntry::to_bytes`]; the runtime reads it with
//! [`StartupPage::parse`], which checks every field.

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::{put, read_u32, read_u64, ring_layout, CapId, PAGE_SIZE, USER_TOP};

/// Where the startup page is mapped (read-only) in every process.
pub const STARTUP_PAGE_ADDR: u64 = 0x0000_7fff_ffe0_0000;
/// Size of the startup page in bytes.
pub const STARTUP_PAGE_SIZE: usize = 4096;
/// [`StartupHeader::magic`]: the bytes `b"capOSsup"` read as a little-endian `u64`.
pub const STARTUP_MAGIC: u64 = u64::from_le_bytes(*b"capOSsup");
/// [`StartupHeader::version`] of this ABI.
pub const STARTUP_VERSION: u32 = 1;
/// Most cap set entries a startup page carries.
pub const MAX_CAPSET: u32 = 64;
/// Bytes in a [`CapSetEntry`] name.
pub const CAPSET_NAME_LEN: usize = 32;
/// Size of the [`StartupHeader`] in bytes.
pub const STARTUP_HEADER_SIZE: usize = 56;
/// Size of one [`CapSetEntry`] in bytes.
pub const CAPSET_ENTRY_SIZE: usize = 48;

/// The header at offset 0 of the startup page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(C)]
pub struct StartupHeader {
    /// [`STARTUP_MAGIC`].
    pub magic: u64,
    /// [`STARTUP_VERSION`].
    pub version: u32,
    /// Number of [`CapSetEntry`] records, at most [`MAX_CAPSET`].
    pub capset_count: u32,
    /// User address of the ring mapping (page-aligned).
    pub ring_addr: u64,
    /// Size of the ring mapping: `ring_layout(sq_entries, cq_entries).total_bytes`.
    pub ring_bytes: u64,
    /// SQ size of the ring.
    pub sq_entries: u32,
    /// CQ size of the ring.
    pub cq_entries: u32,
    /// Byte offset of the arguments within the page.
    pub args_offset: u32,
    /// Length of the arguments in bytes, terminating NULs included.
    pub args_len: u32,
    /// Byte offset of the cap set records within the page (a multiple of 8).
    pub capset_offset: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = assert!(size_of::<StartupHeader>() == STARTUP_HEADER_SIZE);
const _: () = assert!(align_of::<StartupHeader>() == 8);
const _: () = assert!(offset_of!(StartupHeader, magic) == 0);
const _: () = assert!(offset_of!(StartupHeader, version) == 8);
const _: () = assert!(offset_of!(StartupHeader, capset_count) == 12);
const _: () = assert!(offset_of!(StartupHeader, ring_addr) == 16);
const _: () = assert!(offset_of!(StartupHeader, ring_bytes) == 24);
const _: () = assert!(offset_of!(StartupHeader, sq_entries) == 32);
const _: () = assert!(offset_of!(StartupHeader, cq_entries) == 36);
const _: () = assert!(offset_of!(StartupHeader, args_offset) == 40);
const _: () = assert!(offset_of!(StartupHeader, args_len) == 44);
const _: () = assert!(offset_of!(StartupHeader, capset_offset) == 48);
const _: () = assert!(offset_of!(StartupHeader, reserved) == 52);

impl StartupHeader {
    /// Decodes a header from its little-endian form; `None` when `bytes` is
    /// shorter than [`STARTUP_HEADER_SIZE`]. No field is checked.
    pub fn from_bytes(bytes: &[u8]) -> Option<StartupHeader> {
        let b = bytes.get(..STARTUP_HEADER_SIZE)?;
        Some(StartupHeader {
            magic: read_u64(b, 0)?,
            version: read_u32(b, 8)?,
            capset_count: read_u32(b, 12)?,
            ring_addr: read_u64(b, 16)?,
            ring_bytes: read_u64(b, 24)?,
            sq_entries: read_u32(b, 32)?,
            cq_entries: read_u32(b, 36)?,
            args_offset: read_u32(b, 40)?,
            args_len: read_u32(b, 44)?,
            capset_offset: read_u32(b, 48)?,
            reserved: read_u32(b, 52)?,
        })
    }

    /// The little-endian form (identical to the in-memory layout on x86_64).
    pub fn to_bytes(&self) -> [u8; STARTUP_HEADER_SIZE] {
        let mut b = [0u8; STARTUP_HEADER_SIZE];
        put(&mut b, 0, self.magic.to_le_bytes());
        put(&mut b, 8, self.version.to_le_bytes());
        put(&mut b, 12, self.capset_count.to_le_bytes());
        put(&mut b, 16, self.ring_addr.to_le_bytes());
        put(&mut b, 24, self.ring_bytes.to_le_bytes());
        put(&mut b, 32, self.sq_entries.to_le_bytes());
        put(&mut b, 36, self.cq_entries.to_le_bytes());
        put(&mut b, 40, self.args_offset.to_le_bytes());
        put(&mut b, 44, self.args_len.to_le_bytes());
        put(&mut b, 48, self.capset_offset.to_le_bytes());
        put(&mut b, 52, self.reserved.to_le_bytes());
        b
    }
}

/// One initial capability of a process, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(C)]
pub struct CapSetEntry {
    /// The name, UTF-8, padded with NUL bytes (all 32 bytes may be used).
    pub name: [u8; CAPSET_NAME_LEN],
    /// The cap, a [`CapId`] value.
    pub cap: u64,
    /// The interface the cap speaks.
    pub interface_id: u64,
}

const _: () = assert!(size_of::<CapSetEntry>() == CAPSET_ENTRY_SIZE);
const _: () = assert!(align_of::<CapSetEntry>() == 8);
const _: () = assert!(offset_of!(CapSetEntry, name) == 0);
const _: () = assert!(offset_of!(CapSetEntry, cap) == 32);
const _: () = assert!(offset_of!(CapSetEntry, interface_id) == 40);

impl CapSetEntry {
    /// An entry named `name`; `None` when `name` is empty, longer than
    /// [`CAPSET_NAME_LEN`] bytes, or contains a NUL byte.
    pub fn new(name: &str, cap: CapId, interface_id: u64) -> Option<CapSetEntry> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > CAPSET_NAME_LEN || bytes.contains(&0) {
            return None;
        }
        let mut padded = [0u8; CAPSET_NAME_LEN];
        padded[..bytes.len()].copy_from_slice(bytes);
        Some(CapSetEntry { name: padded, cap: cap.0, interface_id })
    }

    /// The name without its NUL padding; `None` when it is empty, not UTF-8,
    /// or has a non-NUL byte after the first NUL.
    pub fn name_str(&self) -> Option<&str> {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(CAPSET_NAME_LEN);
        if len == 0 || self.name[len..].iter().any(|&b| b != 0) {
            return None;
        }
        core::str::from_utf8(&self.name[..len]).ok()
    }

    /// The cap as a [`CapId`].
    pub const fn cap_id(&self) -> CapId {
        CapId(self.cap)
    }

    /// Decodes an entry from its little-endian form; `None` when `bytes` is
    /// shorter than [`CAPSET_ENTRY_SIZE`]. The name is not checked.
    pub fn from_bytes(bytes: &[u8]) -> Option<CapSetEntry> {
        let b = bytes.get(..CAPSET_ENTRY_SIZE)?;
        let mut name = [0u8; CAPSET_NAME_LEN];
        name.copy_from_slice(&b[..CAPSET_NAME_LEN]);
        Some(CapSetEntry { name, cap: read_u64(b, 32)?, interface_id: read_u64(b, 40)? })
    }

    /// The little-endian form (identical to the in-memory layout on x86_64).
    pub fn to_bytes(&self) -> [u8; CAPSET_ENTRY_SIZE] {
        let mut b = [0u8; CAPSET_ENTRY_SIZE];
        b[..CAPSET_NAME_LEN].copy_from_slice(&self.name);
        put(&mut b, 32, self.cap.to_le_bytes());
        put(&mut b, 40, self.interface_id.to_le_bytes());
        b
    }
}

/// What is wrong with a startup page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupError {
    /// The page is shorter than the header.
    PageTooShort {
        /// Bytes available.
        len: usize,
    },
    /// `magic` is not [`STARTUP_MAGIC`].
    BadMagic {
        /// The value found.
        magic: u64,
    },
    /// `version` is not [`STARTUP_VERSION`].
    BadVersion {
        /// The value found.
        version: u32,
    },
    /// `reserved` is not zero.
    ReservedNonZero {
        /// The value found.
        value: u32,
    },
    /// `sq_entries`, `cq_entries` and `ring_bytes` do not describe a valid
    /// ring, or `ring_addr` is not a page-aligned user range.
    BadRing {
        /// `ring_addr` found.
        ring_addr: u64,
        /// `ring_bytes` found.
        ring_bytes: u64,
        /// `sq_entries` found.
        sq_entries: u32,
        /// `cq_entries` found.
        cq_entries: u32,
    },
    /// `capset_count` exceeds [`MAX_CAPSET`].
    TooManyCaps {
        /// The value found.
        count: u32,
    },
    /// `capset_offset` is not a multiple of 8.
    CapSetMisaligned {
        /// The value found.
        offset: u32,
    },
    /// The cap set records do not fit in the page after the header.
    CapSetOutOfPage {
        /// `capset_offset` found.
        offset: u32,
        /// `capset_count` found.
        count: u32,
    },
    /// The arguments do not fit in the page after the header.
    ArgsOutOfPage {
        /// `args_offset` found.
        offset: u32,
        /// `args_len` found.
        len: u32,
    },
    /// The arguments and the cap set records overlap.
    ArgsOverlapCapSet {
        /// `args_offset` found.
        args_offset: u32,
        /// `capset_offset` found.
        capset_offset: u32,
    },
    /// The argument bytes do not end with a NUL.
    ArgsNotTerminated {
        /// `args_len` found.
        len: u32,
    },
    /// A cap set entry name is empty, not UTF-8 or not NUL-padded.
    BadCapName {
        /// Index of the entry.
        index: u32,
    },
    /// Two cap set entries share a name.
    DuplicateCapName {
        /// Index of the second entry with the name.
        index: u32,
    },
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StartupError::PageTooShort { len } => write!(
                f,
                "startup page: {len} bytes is shorter than the {STARTUP_HEADER_SIZE}-byte header"
            ),
            StartupError::BadMagic { magic } => {
                write!(f, "startup page: magic {magic:#018x} is not {STARTUP_MAGIC:#018x}")
            }
            StartupError::BadVersion { version } => {
                write!(f, "startup page: version {version} is not {STARTUP_VERSION}")
            }
            StartupError::ReservedNonZero { value } => {
                write!(f, "startup page: reserved field is {value:#x}, not 0")
            }
            StartupError::BadRing { ring_addr, ring_bytes, sq_entries, cq_entries } => write!(
                f,
                "startup page: ring at {ring_addr:#x} of {ring_bytes} bytes with \
                 {sq_entries} SQEs and {cq_entries} CQEs is not a valid ring mapping"
            ),
            StartupError::TooManyCaps { count } => {
                write!(f, "startup page: capset_count {count} exceeds {MAX_CAPSET}")
            }
            StartupError::CapSetMisaligned { offset } => {
                write!(f, "startup page: capset_offset {offset} is not a multiple of 8")
            }
            StartupError::CapSetOutOfPage { offset, count } => write!(
                f,
                "startup page: {count} cap set entries at offset {offset} do not fit \
                 between the header and the end of the page"
            ),
            StartupError::ArgsOutOfPage { offset, len } => write!(
                f,
                "startup page: {len} argument bytes at offset {offset} do not fit \
                 between the header and the end of the page"
            ),
            StartupError::ArgsOverlapCapSet { args_offset, capset_offset } => write!(
                f,
                "startup page: arguments at offset {args_offset} overlap the cap set \
                 at offset {capset_offset}"
            ),
            StartupError::ArgsNotTerminated { len } => {
                write!(f, "startup page: the {len} argument bytes do not end with a NUL")
            }
            StartupError::BadCapName { index } => write!(
                f,
                "startup page: cap set entry {index} has an empty, non-UTF-8 or \
                 non-NUL-padded name"
            ),
            StartupError::DuplicateCapName { index } => {
                write!(f, "startup page: cap set entry {index} repeats an earlier name")
            }
        }
    }
}

/// A checked view of a startup page.
#[derive(Debug, Clone, Copy)]
pub struct StartupPage<'a> {
    header: StartupHeader,
    capset: &'a [u8],
    args: &'a [u8],
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (both non-empty).
fn ranges_overlap(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a_len != 0 && b_len != 0 && a < b + b_len && b < a + a_len
}

/// `offset..offset + len` if it lies between the header and `page_len`; an
/// empty range anywhere is accepted and becomes `0..0`.
fn body_range(offset: u32, len: usize, page_len: usize) -> Option<core::ops::Range<usize>> {
    if len == 0 {
        return Some(0..0);
    }
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(len)?;
    (start >= STARTUP_HEADER_SIZE && end <= page_len).then_some(start..end)
}

impl<'a> StartupPage<'a> {
    /// Checks every field of the startup page `page` (normally the full
    /// [`STARTUP_PAGE_SIZE`] bytes) and returns a view of it.
    pub fn parse(page: &'a [u8]) -> Result<StartupPage<'a>, StartupError> {
        let page = &page[..page.len().min(STARTUP_PAGE_SIZE)];
        let header = StartupHeader::from_bytes(page)
            .ok_or(StartupError::PageTooShort { len: page.len() })?;
        if header.magic != STARTUP_MAGIC {
            return Err(StartupError::BadMagic { magic: header.magic });
        }
        if header.version != STARTUP_VERSION {
            return Err(StartupError::BadVersion { version: header.version });
        }
        if header.reserved != 0 {
            return Err(StartupError::ReservedNonZero { value: header.reserved });
        }
        let ring_ok = ring_layout(header.sq_entries, header.cq_entries)
            .is_some_and(|l| u64::from(l.total_bytes) == header.ring_bytes)
            && header.ring_addr % PAGE_SIZE == 0
            && header.ring_addr != 0
            && header.ring_addr.checked_add(header.ring_bytes).is_some_and(|end| end <= USER_TOP);
        if !ring_ok {
            return Err(StartupError::BadRing {
                ring_addr: header.ring_addr,
                ring_bytes: header.ring_bytes,
                sq_entries: header.sq_entries,
                cq_entries: header.cq_entries,
            });
        }

        let count = header.capset_count;
        if count > MAX_CAPSET {
            return Err(StartupError::TooManyCaps { count });
        }
        if header.capset_offset % 8 != 0 {
            return Err(StartupError::CapSetMisaligned { offset: header.capset_offset });
        }
        let capset_len = count as usize * CAPSET_ENTRY_SIZE;
        let capset = body_range(header.capset_offset, capset_len, page.len())
            .ok_or(StartupError::CapSetOutOfPage { offset: header.capset_offset, count })?;
        let args = body_range(header.args_offset, header.args_len as usize, page.len()).ok_or(
            StartupError::ArgsOutOfPage { offset: header.args_offset, len: header.args_len },
        )?;
        if ranges_overlap(args.start, args.len(), capset.start, capset.len()) {
            return Err(StartupError::ArgsOverlapCapSet {
                args_offset: header.args_offset,
                capset_offset: header.capset_offset,
            });
        }
        let args = &page[args];
        if args.last().is_some_and(|&b| b != 0) {
            return Err(StartupError::ArgsNotTerminated { len: header.args_len });
        }

        let view = StartupPage { header, capset: &page[capset], args };
        for (i, entry) in view.capset().enumerate() {
            let index = i as u32;
            let name = entry.name_str().ok_or(StartupError::BadCapName { index })?;
            if view.capset().take(i).any(|earlier| earlier.name_str() == Some(name)) {
                return Err(StartupError::DuplicateCapName { index });
            }
        }
        Ok(view)
    }

    /// The header.
    pub fn header(&self) -> &StartupHeader {
        &self.header
    }

    /// The cap set entries, in page order.
    pub fn capset(&self) -> impl ExactSizeIterator<Item = CapSetEntry> + 'a {
        // Every chunk is exactly one entry long, so decoding cannot fail.
        self.capset
            .chunks_exact(CAPSET_ENTRY_SIZE)
            .map(|chunk| CapSetEntry::from_bytes(chunk).unwrap_or_default())
    }

    /// The cap set entry named `name`.
    pub fn cap(&self, name: &str) -> Option<CapSetEntry> {
        self.capset().find(|entry| entry.name_str() == Some(name))
    }

    /// The raw argument bytes, terminating NULs included.
    pub fn args_bytes(&self) -> &'a [u8] {
        self.args
    }

    /// The arguments, without their terminating NULs.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.args.split_last().into_iter().flat_map(|(_, body)| body.split(|&b| b == 0))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::RING_ADDR;
    use std::vec::Vec;

    fn header() -> StartupHeader {
        StartupHeader {
            magic: STARTUP_MAGIC,
            version: STARTUP_VERSION,
            capset_count: 2,
            ring_addr: RING_ADDR,
            ring_bytes: ring_layout(64, 128).unwrap().total_bytes as u64,
            sq_entries: 64,
            cq_entries: 128,
            args_offset: 64 + 2 * CAPSET_ENTRY_SIZE as u32,
            args_len: 11,
            capset_offset: 64,
            reserved: 0,
        }
    }

    fn page_with(h: StartupHeader) -> Vec<u8> {
        let mut page = std::vec![0u8; STARTUP_PAGE_SIZE];
        page[..STARTUP_HEADER_SIZE].copy_from_slice(&h.to_bytes());
        let log = CapSetEntry::new("log", CapId::new(0, 0), 0x1111).unwrap();
        let timer = CapSetEntry::new("timer", CapId::new(1, 0), 0x2222).unwrap();
        page[64..112].copy_from_slice(&log.to_bytes());
        page[112..160].copy_from_slice(&timer.to_bytes());
        page[160..171].copy_from_slice(b"init\0-v\0\0x\0");
        page
    }

    #[test]
    fn magic_spells_capossup() {
        assert_eq!(STARTUP_MAGIC.to_le_bytes(), *b"capOSsup");
    }

    #[test]
    fn parses_a_well_formed_page() {
        let page = page_with(header());
        let view = StartupPage::parse(&page).unwrap();
        assert_eq!(*view.header(), header());
        let names: Vec<_> = view.capset().map(|e| e.name_str().unwrap().len()).collect();
        assert_eq!(names, [3, 5]);
        assert_eq!(view.capset().len(), 2);
        let timer = view.cap("timer").unwrap();
        assert_eq!((timer.cap_id(), timer.interface_id), (CapId::new(1, 0), 0x2222));
        assert!(view.cap("net").is_none());
        let args: Vec<&[u8]> = view.args().collect();
        assert_eq!(args, [&b"init"[..], b"-v", b"", b"x"]);
        assert_eq!(view.args_bytes().len(), 11);
    }

    #[test]
    fn empty_capset_and_args() {
        let h = StartupHeader { capset_count: 0, args_len: 0, args_offset: 0, ..header() };
        let page = page_with(h);
        let view = StartupPage::parse(&page).unwrap();
        assert_eq!(view.capset().count(), 0);
        assert_eq!(view.args().count(), 0);
    }

    #[test]
    fn header_and_entry_round_trip() {
        let h = header();
        assert_eq!(StartupHeader::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(StartupHeader::from_bytes(&h.to_bytes()[..55]), None);
        let e = CapSetEntry::new("a-long-name-of-exactly-32-bytes!", CapId::new(5, 6), 7).unwrap();
        assert_eq!(e.name_str(), Some("a-long-name-of-exactly-32-bytes!"));
        assert_eq!(CapSetEntry::from_bytes(&e.to_bytes()), Some(e));
        assert_eq!(CapSetEntry::from_bytes(&e.to_bytes()[..47]), None);
    }

    #[test]
    fn capset_names_are_checked() {
        assert!(CapSetEntry::new("", CapId::NULL, 0).is_none());
        assert!(CapSetEntry::new("a\0b", CapId::NULL, 0).is_none());
        assert!(CapSetEntry::new("this-name-is-thirty-three-bytes!!", CapId::NULL, 0).is_none());
        let mut e = CapSetEntry::new("ok", CapId::NULL, 0).unwrap();
        e.name[5] = b'x';
        assert_eq!(e.name_str(), None, "bytes after the padding starts");
        e.name = [0xff; CAPSET_NAME_LEN];
        assert_eq!(e.name_str(), None, "not UTF-8");
        e.name = [0; CAPSET_NAME_LEN];
        assert_eq!(e.name_str(), None, "empty");
    }

    #[test]
    fn rejects_each_bad_field() {
        let cases: [(StartupHeader, StartupError); 10] = [
            (StartupHeader { magic: 1, ..header() }, StartupError::BadMagic { magic: 1 }),
            (StartupHeader { version: 2, ..header() }, StartupError::BadVersion { version: 2 }),
            (StartupHeader { reserved: 9, ..header() }, StartupError::ReservedNonZero { value: 9 }),
            (
                StartupHeader { capset_count: 65, ..header() },
                StartupError::TooManyCaps { count: 65 },
            ),
            (
                StartupHeader { capset_offset: 60, ..header() },
                StartupError::CapSetMisaligned { offset: 60 },
            ),
            (
                StartupHeader { capset_offset: 8, ..header() },
                StartupError::CapSetOutOfPage { offset: 8, count: 2 },
            ),
            (
                StartupHeader { capset_offset: 4056, ..header() },
                StartupError::CapSetOutOfPage { offset: 4056, count: 2 },
            ),
            (
                StartupHeader { args_offset: 4090, ..header() },
                StartupError::ArgsOutOfPage { offset: 4090, len: 11 },
            ),
            (
                StartupHeader { args_offset: 100, ..header() },
                StartupError::ArgsOverlapCapSet { args_offset: 100, capset_offset: 64 },
            ),
            (
                StartupHeader { args_len: 10, ..header() },
                StartupError::ArgsNotTerminated { len: 10 },
            ),
        ];
        for (h, want) in cases {
            assert_eq!(StartupPage::parse(&page_with(h)).unwrap_err(), want);
        }
        for h in [
            StartupHeader { sq_entries: 3, ..header() },
            StartupHeader { ring_bytes: 4096, ..header() },
            StartupHeader { ring_addr: RING_ADDR + 1, ..header() },
            StartupHeader { ring_addr: 0, ..header() },
            StartupHeader { ring_addr: USER_TOP - 4096, ..header() },
            StartupHeader { ring_addr: u64::MAX - 4095, ..header() },
        ] {
            assert!(matches!(
                StartupPage::parse(&page_with(h)).unwrap_err(),
                StartupError::BadRing { .. }
            ));
        }
        assert_eq!(
            StartupPage::parse(&[0u8; 55]).unwrap_err(),
            StartupError::PageTooShort { len: 55 }
        );
    }

    #[test]
    fn rejects_bad_and_duplicate_names() {
        let mut page = page_with(header());
        page[112..144].copy_from_slice(&[0u8; 32]);
        page[112..115].copy_from_slice(b"log");
        assert_eq!(
            StartupPage::parse(&page).unwrap_err(),
            StartupError::DuplicateCapName { index: 1 }
        );
        page[64] = 0;
        assert_eq!(StartupPage::parse(&page).unwrap_err(), StartupError::BadCapName { index: 0 });
    }

    #[test]
    fn errors_name_the_value() {
        let msg = std::format!("{}", StartupError::TooManyCaps { count: 99 });
        assert_eq!(msg, "startup page: capset_count 99 exceeds 64");
    }
}
