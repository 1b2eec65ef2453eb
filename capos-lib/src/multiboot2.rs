//! Bounds-checked parser for the Multiboot2 boot information block.
//!
//! The boot loader hands the kernel a block of tags (Multiboot2 spec 1.6,
//! section 3.6). The kernel must never crash on a malformed block, so this
//! parser works on a byte slice and checks every field against the slice
//! instead of trusting the block's own size fields through raw pointers.
//! That also lets it be fuzzed on the host.
//!
//! Layout: `u32 total_size`, `u32 reserved`, then tags, each starting on an
//! 8-byte boundary with `u32 type`, `u32 size` (the size includes this 8-byte
//! header but not the padding after the tag). The last tag has type 0 and
//! size 8. All fields are little-endian.
//!
//! [`parse`] validates the tag chain once; the accessors then decode
//! individual tags and never fail, returning `None` or skipping data that is
//! too short. When a tag type appears more than once, the first one is used
//! (modules excepted: every module tag is a module).

use core::fmt;

use crate::memmap::RegionKind;

/// Value the boot loader leaves in `EAX` when it passes a Multiboot2 block.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// Size of the block header (`total_size` and `reserved`) and of a tag header.
pub const HEADER_SIZE: usize = 8;

/// Alignment of every tag within the block.
pub const TAG_ALIGN: usize = 8;

/// Size of one memory map entry as defined by the spec; larger entry sizes
/// are allowed and the extra bytes are skipped.
pub const MEMORY_ENTRY_MIN_SIZE: usize = 24;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_BOOTLOADER_NAME: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_BASIC_MEMINFO: u32 = 4;
const TAG_MMAP: u32 = 6;
const TAG_FRAMEBUFFER: u32 = 8;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;
const TAG_LOAD_BASE_ADDR: u32 = 21;

const RSDP_V1_LEN: usize = 20;
const RSDP_V2_LEN: usize = 36;
/// `addr`, `pitch`, `width`, `height`, `bpp`, `type`.
const FRAMEBUFFER_MIN_BODY: usize = 22;

/// Errors from [`parse`]: the block or its tag chain is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mb2Error {
    /// The slice cannot hold the 8-byte block header.
    TooShort {
        /// Length of the slice.
        len: usize,
    },
    /// `total_size` is smaller than the header or larger than the slice.
    BadTotalSize {
        /// The block's `total_size` field.
        total_size: u32,
        /// Length of the slice.
        available: usize,
    },
    /// A tag's size runs past `total_size`.
    TagOverrun {
        /// Byte offset of the tag within the block.
        offset: usize,
        /// The tag's type field.
        tag_type: u32,
        /// The tag's size field.
        tag_size: u32,
    },
    /// A tag's size is smaller than the 8-byte tag header.
    TagTooSmall {
        /// Byte offset of the tag within the block.
        offset: usize,
        /// The tag's type field.
        tag_type: u32,
        /// The tag's size field.
        tag_size: u32,
    },
    /// The tag chain reached `total_size` without an end tag (type 0).
    MissingEndTag,
}

impl fmt::Display for Mb2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Mb2Error::TooShort { len } => write!(
                f,
                "multiboot2 block of {len} bytes is shorter than the {HEADER_SIZE}-byte header"
            ),
            Mb2Error::BadTotalSize { total_size, available }
                if (total_size as usize) < HEADER_SIZE =>
            {
                write!(
                    f,
                    "multiboot2 total_size {total_size} is smaller than the {HEADER_SIZE}-byte \
                 header ({available} bytes available)"
                )
            }
            Mb2Error::BadTotalSize { total_size, available } => write!(
                f,
                "multiboot2 total_size {total_size} exceeds the {available} bytes available"
            ),
            Mb2Error::TagOverrun { offset, tag_type, tag_size } => write!(
                f,
                "multiboot2 tag type {tag_type} at offset {offset} has size {tag_size}, \
                 which runs past the end of the block"
            ),
            Mb2Error::TagTooSmall { offset, tag_type, tag_size } => write!(
                f,
                "multiboot2 tag type {tag_type} at offset {offset} has size {tag_size}, \
                 smaller than the {HEADER_SIZE}-byte tag header"
            ),
            Mb2Error::MissingEndTag => {
                f.write_str("multiboot2 block has no end tag (type 0) within total_size")
            }
        }
    }
}

/// One raw tag: its type and the bytes after its 8-byte header, up to its
/// declared size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mb2Tag<'a> {
    /// The tag's type field.
    pub tag_type: u32,
    /// The tag's contents after the header.
    pub data: &'a [u8],
}

/// A boot module loaded by the boot loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mb2Module<'a> {
    /// Physical address of the first byte.
    pub start: u32,
    /// Physical address one past the last byte.
    pub end: u32,
    /// The module's string (usually its command line or path).
    pub name: &'a str,
}

/// One entry of the boot loader's memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mb2MemoryEntry {
    /// Physical start address.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// Type 1 is usable, 3 ACPI reclaimable, 4 ACPI NVS, 5 defective; any
    /// other type is reserved.
    pub kind: RegionKind,
}

/// A copy of the ACPI root system description pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rsdp {
    /// ACPI 1.0 RSDP (tag 14).
    V1([u8; RSDP_V1_LEN]),
    /// ACPI 2.0+ RSDP (tag 15).
    V2([u8; RSDP_V2_LEN]),
}

impl Rsdp {
    /// The raw RSDP bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Rsdp::V1(b) => b,
            Rsdp::V2(b) => b,
        }
    }
}

/// Framebuffer description (tag 8), without the color information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical address of the framebuffer.
    pub addr: u64,
    /// Bytes per row.
    pub pitch: u32,
    /// Width in pixels (or characters in text mode).
    pub width: u32,
    /// Height in pixels (or characters in text mode).
    pub height: u32,
    /// Bits per pixel.
    pub bpp: u8,
    /// 0 indexed color, 1 direct RGB, 2 EGA text.
    pub kind: u8,
}

/// Lower and upper memory sizes from the basic memory information tag (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicMemInfo {
    /// KiB of memory starting at address 0 (at most 640).
    pub lower_kib: u32,
    /// KiB of memory starting at 1 MiB, up to the first hole.
    pub upper_kib: u32,
}

/// A validated Multiboot2 boot information block.
#[derive(Debug, Clone, Copy)]
pub struct Mb2Info<'a> {
    /// The block, exactly `total_size` bytes.
    block: &'a [u8],
    cmdline: Option<&'a [u8]>,
    bootloader_name: Option<&'a [u8]>,
    basic_meminfo: Option<&'a [u8]>,
    mmap: Option<&'a [u8]>,
    framebuffer: Option<&'a [u8]>,
    rsdp_v1: Option<&'a [u8]>,
    rsdp_v2: Option<&'a [u8]>,
    load_base: Option<&'a [u8]>,
    unknown_tags: usize,
    skipped_modules: usize,
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    let mut raw = [0u8; 4];
    raw.copy_from_slice(field);
    Some(u32::from_le_bytes(raw))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    let mut raw = [0u8; 8];
    raw.copy_from_slice(field);
    Some(u64::from_le_bytes(raw))
}

fn read_array<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes.get(..N)?);
    Some(out)
}

/// The bytes up to the first NUL, or all of them if there is none.
fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// A tag found by [`read_tag`]: the tag itself and where the next one starts.
struct TagAt<'a> {
    tag: Mb2Tag<'a>,
    next: usize,
}

/// Reads the tag at `offset` of `block`. `Ok(None)` is the end tag.
fn read_tag(block: &[u8], offset: usize) -> Result<Option<TagAt<'_>>, Mb2Error> {
    let (Some(tag_type), Some(tag_size)) =
        (read_u32(block, offset), offset.checked_add(4).and_then(|at| read_u32(block, at)))
    else {
        return Err(Mb2Error::MissingEndTag);
    };
    if (tag_size as usize) < HEADER_SIZE {
        return Err(Mb2Error::TagTooSmall { offset, tag_type, tag_size });
    }
    let overrun = Mb2Error::TagOverrun { offset, tag_type, tag_size };
    let end = offset.checked_add(tag_size as usize).ok_or(overrun)?;
    let data = block.get(offset + HEADER_SIZE..end).ok_or(overrun)?;
    if tag_type == TAG_END {
        return Ok(None);
    }
    // Past the end of the slice if rounding overflows; the next read then
    // reports the missing end tag.
    let next = end.checked_next_multiple_of(TAG_ALIGN).unwrap_or(usize::MAX);
    Ok(Some(TagAt { tag: Mb2Tag { tag_type, data }, next }))
}

/// Iterator over the tags of a validated block, end tag excluded.
#[derive(Debug, Clone)]
struct Tags<'a> {
    block: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Tags<'a> {
    type Item = Mb2Tag<'a>;

    fn next(&mut self) -> Option<Mb2Tag<'a>> {
        match read_tag(self.block, self.offset) {
            Ok(Some(TagAt { tag, next })) => {
                self.offset = next;
                Some(tag)
            }
            _ => {
                self.offset = usize::MAX;
                None
            }
        }
    }
}

/// Decodes a module tag's contents; `None` if malformed (shorter than the two
/// addresses, `end < start`, or a name that is not UTF-8).
fn decode_module(data: &[u8]) -> Option<Mb2Module<'_>> {
    let start = read_u32(data, 0)?;
    let end = read_u32(data, 4)?;
    if end < start {
        return None;
    }
    let name = core::str::from_utf8(until_nul(data.get(8..)?)).ok()?;
    Some(Mb2Module { start, end, name })
}

fn decode_memory_entry(entry: &[u8]) -> Mb2MemoryEntry {
    let kind = match read_u32(entry, 16) {
        Some(1) => RegionKind::Usable,
        Some(3) => RegionKind::AcpiReclaimable,
        Some(4) => RegionKind::AcpiNvs,
        Some(5) => RegionKind::Defective,
        _ => RegionKind::Reserved,
    };
    Mb2MemoryEntry {
        base: read_u64(entry, 0).unwrap_or(0),
        length: read_u64(entry, 8).unwrap_or(0),
        kind,
    }
}

/// Validates a Multiboot2 boot information block and indexes its tags.
///
/// Only the first `total_size` bytes of `block` are used; the slice may be
/// longer. Fails if the header or any tag header is out of bounds, a tag is
/// smaller than its header, or the chain ends without an end tag. Tags after
/// the end tag are ignored.
pub fn parse(block: &[u8]) -> Result<Mb2Info<'_>, Mb2Error> {
    if block.len() < HEADER_SIZE {
        return Err(Mb2Error::TooShort { len: block.len() });
    }
    let total_size = read_u32(block, 0).unwrap_or(0);
    let block = match block.get(..total_size as usize) {
        Some(b) if b.len() >= HEADER_SIZE => b,
        _ => return Err(Mb2Error::BadTotalSize { total_size, available: block.len() }),
    };
    let mut info = Mb2Info {
        block,
        cmdline: None,
        bootloader_name: None,
        basic_meminfo: None,
        mmap: None,
        framebuffer: None,
        rsdp_v1: None,
        rsdp_v2: None,
        load_base: None,
        unknown_tags: 0,
        skipped_modules: 0,
    };
    let mut offset = HEADER_SIZE;
    while let Some(TagAt { tag, next }) = read_tag(block, offset)? {
        let slot = match tag.tag_type {
            TAG_CMDLINE => &mut info.cmdline,
            TAG_BOOTLOADER_NAME => &mut info.bootloader_name,
            TAG_BASIC_MEMINFO => &mut info.basic_meminfo,
            TAG_MMAP => &mut info.mmap,
            TAG_FRAMEBUFFER => &mut info.framebuffer,
            TAG_ACPI_OLD => &mut info.rsdp_v1,
            TAG_ACPI_NEW => &mut info.rsdp_v2,
            TAG_LOAD_BASE_ADDR => &mut info.load_base,
            TAG_MODULE => {
                if decode_module(tag.data).is_none() {
                    info.skipped_modules += 1;
                }
                offset = next;
                continue;
            }
            _ => {
                info.unknown_tags += 1;
                offset = next;
                continue;
            }
        };
        slot.get_or_insert(tag.data);
        offset = next;
    }
    Ok(info)
}

impl<'a> Mb2Info<'a> {
    /// The block's `total_size`: the number of bytes it occupies.
    pub fn total_size(&self) -> usize {
        self.block.len()
    }

    /// Every tag in order, end tag excluded, including unknown ones.
    pub fn tags(&self) -> impl Iterator<Item = Mb2Tag<'a>> {
        Tags { block: self.block, offset: HEADER_SIZE }
    }

    /// Number of tags of a type this parser does not decode (skipped).
    pub fn unknown_tags(&self) -> usize {
        self.unknown_tags
    }

    /// The kernel command line (tag 1), up to its NUL terminator (or the tag
    /// end if it has none). `None` if the tag is absent or not valid UTF-8;
    /// see [`command_line_invalid_utf8`](Self::command_line_invalid_utf8).
    pub fn command_line(&self) -> Option<&'a str> {
        core::str::from_utf8(self.command_line_bytes()?).ok()
    }

    /// The raw command line bytes (tag 1), up to the NUL terminator.
    pub fn command_line_bytes(&self) -> Option<&'a [u8]> {
        self.cmdline.map(until_nul)
    }

    /// Whether a command line tag is present but not valid UTF-8.
    pub fn command_line_invalid_utf8(&self) -> bool {
        self.command_line_bytes().is_some_and(|b| core::str::from_utf8(b).is_err())
    }

    /// The boot loader's name (tag 2), up to its NUL terminator. `None` if
    /// the tag is absent or not valid UTF-8.
    pub fn bootloader_name(&self) -> Option<&'a str> {
        core::str::from_utf8(until_nul(self.bootloader_name?)).ok()
    }

    /// The boot modules (tag 3), in block order.
    ///
    /// Malformed module tags are skipped, not yielded: tags too small to
    /// hold both addresses, modules with `end < start`, and names that are
    /// not UTF-8. [`skipped_modules`](Self::skipped_modules) counts them.
    pub fn modules(&self) -> impl Iterator<Item = Mb2Module<'a>> {
        self.tags().filter(|t| t.tag_type == TAG_MODULE).filter_map(|t| decode_module(t.data))
    }

    /// Number of module tags [`modules`](Self::modules) skips as malformed.
    pub fn skipped_modules(&self) -> usize {
        self.skipped_modules
    }

    /// Lower and upper memory sizes (tag 4), if present and complete.
    pub fn basic_memory(&self) -> Option<BasicMemInfo> {
        let data = self.basic_meminfo?;
        Some(BasicMemInfo { lower_kib: read_u32(data, 0)?, upper_kib: read_u32(data, 4)? })
    }

    /// Whether a memory map tag (6) is present.
    pub fn has_memory_map(&self) -> bool {
        self.mmap.is_some()
    }

    /// The memory map tag's `entry_size`, if the tag is present and holds it.
    pub fn memory_map_entry_size(&self) -> Option<u32> {
        read_u32(self.mmap?, 0)
    }

    /// Whether a memory map tag is present but unusable: too short for its
    /// `entry_size` and `entry_version` fields, or `entry_size` below
    /// [`MEMORY_ENTRY_MIN_SIZE`]. [`memory_map`](Self::memory_map) then yields
    /// nothing.
    pub fn memory_map_invalid(&self) -> bool {
        self.mmap.is_some() && self.memory_entries().is_none()
    }

    fn memory_entries(&self) -> Option<(&'a [u8], usize)> {
        let data = self.mmap?;
        let entry_size = read_u32(data, 0)? as usize;
        read_u32(data, 4)?;
        if entry_size < MEMORY_ENTRY_MIN_SIZE {
            return None;
        }
        Some((data.get(8..)?, entry_size))
    }

    /// The boot loader's memory map (tag 6), entry by entry.
    ///
    /// Entries are `entry_size` bytes apart; a trailing entry cut off by the
    /// tag end is ignored. Yields nothing if the tag is absent or
    /// [invalid](Self::memory_map_invalid).
    pub fn memory_map(&self) -> impl Iterator<Item = Mb2MemoryEntry> + 'a {
        let (entries, stride) = self.memory_entries().unwrap_or((&[], MEMORY_ENTRY_MIN_SIZE));
        entries.chunks_exact(stride).map(decode_memory_entry)
    }

    /// The ACPI RSDP copy: the 2.0+ one (tag 15) if present and complete,
    /// otherwise the 1.0 one (tag 14) if present and complete.
    pub fn rsdp(&self) -> Option<Rsdp> {
        self.rsdp_v2
            .and_then(read_array)
            .map(Rsdp::V2)
            .or_else(|| self.rsdp_v1.and_then(read_array).map(Rsdp::V1))
    }

    /// The framebuffer (tag 8), if present and long enough.
    pub fn framebuffer(&self) -> Option<Framebuffer> {
        let data = self.framebuffer?;
        if data.len() < FRAMEBUFFER_MIN_BODY {
            return None;
        }
        Some(Framebuffer {
            addr: read_u64(data, 0)?,
            pitch: read_u32(data, 8)?,
            width: read_u32(data, 12)?,
            height: read_u32(data, 16)?,
            bpp: *data.get(20)?,
            kind: *data.get(21)?,
        })
    }

    /// Physical address the image was loaded at (tag 21), if present.
    pub fn load_base(&self) -> Option<u32> {
        read_u32(self.load_base?, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Assembles Multiboot2 blocks with correct alignment and padding.
    struct Builder {
        buf: Vec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Builder { buf: vec![0; 8] }
        }

        fn pad(&mut self) {
            while !self.buf.len().is_multiple_of(TAG_ALIGN) {
                self.buf.push(0xAA);
            }
        }

        /// A tag with an explicit size field.
        fn raw_tag(mut self, tag_type: u32, size: u32, body: &[u8]) -> Self {
            self.pad();
            self.buf.extend_from_slice(&tag_type.to_le_bytes());
            self.buf.extend_from_slice(&size.to_le_bytes());
            self.buf.extend_from_slice(body);
            self
        }

        fn tag(self, tag_type: u32, body: &[u8]) -> Self {
            let size = (HEADER_SIZE + body.len()) as u32;
            self.raw_tag(tag_type, size, body)
        }

        fn string(self, tag_type: u32, s: &[u8]) -> Self {
            let mut body = s.to_vec();
            body.push(0);
            self.tag(tag_type, &body)
        }

        fn module(self, start: u32, end: u32, name: &str) -> Self {
            let mut body = Vec::new();
            body.extend_from_slice(&start.to_le_bytes());
            body.extend_from_slice(&end.to_le_bytes());
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            self.tag(TAG_MODULE, &body)
        }

        fn mmap(self, entry_size: u32, entries: &[(u64, u64, u32)]) -> Self {
            let mut body = Vec::new();
            body.extend_from_slice(&entry_size.to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
            for &(base, len, ty) in entries {
                let mut e = Vec::new();
                e.extend_from_slice(&base.to_le_bytes());
                e.extend_from_slice(&len.to_le_bytes());
                e.extend_from_slice(&ty.to_le_bytes());
                e.extend_from_slice(&0u32.to_le_bytes());
                e.resize(entry_size as usize, 0xEE);
                body.extend_from_slice(&e);
            }
            self.tag(TAG_MMAP, &body)
        }

        /// Sets `total_size` to the current length without an end tag.
        fn finish_without_end(mut self) -> Vec<u8> {
            let total = self.buf.len() as u32;
            self.buf[..4].copy_from_slice(&total.to_le_bytes());
            self.buf
        }

        fn finish(self) -> Vec<u8> {
            self.tag(TAG_END, &[]).finish_without_end()
        }
    }

    fn framebuffer_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfd00_0000u64.to_le_bytes());
        b.extend_from_slice(&4096u32.to_le_bytes());
        b.extend_from_slice(&1024u32.to_le_bytes());
        b.extend_from_slice(&768u32.to_le_bytes());
        b.push(32);
        b.push(1);
        b.extend_from_slice(&[0; 2]); // reserved
        b.extend_from_slice(&[16, 8, 8, 8, 0, 8]); // color info
        b
    }

    fn rsdp_v1() -> [u8; 20] {
        core::array::from_fn(|i| i as u8 + 1)
    }

    fn rsdp_v2() -> [u8; 36] {
        core::array::from_fn(|i| 100 + i as u8)
    }

    fn full_block() -> Vec<u8> {
        let mut meminfo = Vec::new();
        meminfo.extend_from_slice(&639u32.to_le_bytes());
        meminfo.extend_from_slice(&0x7fb80u32.to_le_bytes());
        Builder::new()
            .string(TAG_CMDLINE, b"/boot/capos log=debug harness")
            .string(TAG_BOOTLOADER_NAME, b"GRUB 2.12")
            .module(0x20_0000, 0x20_1234, "init")
            .module(0x30_0000, 0x30_0000, "")
            .tag(TAG_BASIC_MEMINFO, &meminfo)
            .tag(5, &[0xff; 12]) // BIOS boot device: not decoded
            .mmap(
                24,
                &[
                    (0, 0x9fc00, 1),
                    (0x9fc00, 0x400, 2),
                    (0x10_0000, 0x7fe0_0000, 1),
                    (0x7ff0_0000, 0x10_0000, 3),
                    (0x1_0000_0000, 0x1_0000_0000, 1),
                ],
            )
            .tag(TAG_FRAMEBUFFER, &framebuffer_body())
            .tag(TAG_ACPI_OLD, &rsdp_v1())
            .tag(TAG_ACPI_NEW, &rsdp_v2())
            .tag(TAG_LOAD_BASE_ADDR, &0x20_0000u32.to_le_bytes())
            .finish()
    }

    /// Calls every accessor, for the never-panic tests.
    fn exercise(info: &Mb2Info<'_>) {
        let _ = info.command_line();
        let _ = info.command_line_invalid_utf8();
        let _ = info.bootloader_name();
        let _ = info.modules().count();
        let _ = info.skipped_modules();
        let _ = info.basic_memory();
        let _ = info.memory_map().count();
        let _ = info.memory_map_invalid();
        let _ = info.memory_map_entry_size();
        let _ = info.rsdp();
        let _ = info.framebuffer();
        let _ = info.load_base();
        let _ = info.tags().count();
        assert!(info.total_size() >= HEADER_SIZE);
    }

    #[test]
    fn happy_path_with_every_tag() {
        let block = full_block();
        assert_eq!(block.len() % 8, 0);
        let info = parse(&block).unwrap();
        assert_eq!(info.total_size(), block.len());
        assert_eq!(info.command_line(), Some("/boot/capos log=debug harness"));
        assert!(!info.command_line_invalid_utf8());
        assert_eq!(info.bootloader_name(), Some("GRUB 2.12"));
        let modules: Vec<_> = info.modules().collect();
        assert_eq!(
            modules,
            [
                Mb2Module { start: 0x20_0000, end: 0x20_1234, name: "init" },
                Mb2Module { start: 0x30_0000, end: 0x30_0000, name: "" },
            ]
        );
        assert_eq!(info.skipped_modules(), 0);
        assert_eq!(info.basic_memory(), Some(BasicMemInfo { lower_kib: 639, upper_kib: 0x7fb80 }));
        let mmap: Vec<_> = info.memory_map().collect();
        assert_eq!(mmap.len(), 5);
        assert_eq!(
            mmap[1],
            Mb2MemoryEntry { base: 0x9fc00, length: 0x400, kind: RegionKind::Reserved }
        );
        assert_eq!(mmap[3].kind, RegionKind::AcpiReclaimable);
        assert_eq!(
            mmap[4],
            Mb2MemoryEntry { base: 0x1_0000_0000, length: 0x1_0000_0000, kind: RegionKind::Usable }
        );
        assert!(!info.memory_map_invalid());
        assert_eq!(info.memory_map_entry_size(), Some(24));
        assert_eq!(
            info.framebuffer(),
            Some(Framebuffer {
                addr: 0xfd00_0000,
                pitch: 4096,
                width: 1024,
                height: 768,
                bpp: 32,
                kind: 1
            })
        );
        assert_eq!(info.rsdp(), Some(Rsdp::V2(rsdp_v2())));
        assert_eq!(info.rsdp().unwrap().bytes().len(), 36);
        assert_eq!(info.load_base(), Some(0x20_0000));
        assert_eq!(info.unknown_tags(), 1);
        assert_eq!(info.tags().count(), 11);
    }

    #[test]
    fn minimal_block_has_nothing() {
        let block = Builder::new().finish();
        assert_eq!(block.len(), 16);
        let info = parse(&block).unwrap();
        assert_eq!(info.command_line(), None);
        assert!(!info.command_line_invalid_utf8());
        assert_eq!(info.bootloader_name(), None);
        assert_eq!(info.modules().count(), 0);
        assert_eq!(info.memory_map().count(), 0);
        assert!(!info.has_memory_map());
        assert!(!info.memory_map_invalid());
        assert_eq!(info.rsdp(), None);
        assert_eq!(info.framebuffer(), None);
        assert_eq!(info.load_base(), None);
        assert_eq!(info.basic_memory(), None);
        assert_eq!(info.unknown_tags(), 0);
    }

    #[test]
    fn unknown_tags_skipped_and_counted() {
        let block = Builder::new()
            .tag(9999, &[1, 2, 3])
            .string(TAG_CMDLINE, b"log=warn")
            .tag(17, &[0; 40])
            .tag(u32::MAX, &[])
            .finish();
        let info = parse(&block).unwrap();
        assert_eq!(info.unknown_tags(), 3);
        assert_eq!(info.command_line(), Some("log=warn"));
        let types: Vec<u32> = info.tags().map(|t| t.tag_type).collect();
        assert_eq!(types, [9999, TAG_CMDLINE, 17, u32::MAX]);
    }

    #[test]
    fn first_tag_of_a_type_wins() {
        let block =
            Builder::new().string(TAG_CMDLINE, b"first").string(TAG_CMDLINE, b"second").finish();
        assert_eq!(parse(&block).unwrap().command_line(), Some("first"));
    }

    #[test]
    fn empty_module_list() {
        let block = Builder::new().string(TAG_CMDLINE, b"").finish();
        let info = parse(&block).unwrap();
        assert_eq!(info.modules().next(), None);
        assert_eq!(info.skipped_modules(), 0);
        assert_eq!(info.command_line(), Some(""));
    }

    #[test]
    fn malformed_modules_skipped_and_counted() {
        let block = Builder::new()
            .tag(TAG_MODULE, &[1, 2, 3, 4]) // too small
            .module(0x5000, 0x4000, "inverted")
            .tag(TAG_MODULE, &[0, 0x10, 0, 0, 0, 0x20, 0, 0, 0xff, 0xfe, 0])
            .module(0x1000, 0x2000, "good")
            .tag(TAG_MODULE, &[0, 0x10, 0, 0, 0, 0x20, 0, 0]) // no name: empty
            .finish();
        let info = parse(&block).unwrap();
        let names: Vec<_> = info.modules().map(|m| m.name).collect();
        assert_eq!(names, ["good", ""]);
        assert_eq!(info.skipped_modules(), 3);
    }

    #[test]
    fn string_without_nul_ends_at_tag_end() {
        let block = Builder::new().tag(TAG_CMDLINE, b"abc").finish();
        assert_eq!(parse(&block).unwrap().command_line(), Some("abc"));
    }

    #[test]
    fn invalid_utf8_command_line() {
        let block = Builder::new()
            .string(TAG_CMDLINE, b"log=\xff\xfe")
            .string(TAG_BOOTLOADER_NAME, b"\xc3")
            .finish();
        let info = parse(&block).unwrap();
        assert_eq!(info.command_line(), None);
        assert!(info.command_line_invalid_utf8());
        assert_eq!(info.command_line_bytes(), Some(&b"log=\xff\xfe"[..]));
        assert_eq!(info.bootloader_name(), None);
    }

    #[test]
    fn header_errors() {
        for len in 0..HEADER_SIZE {
            assert_eq!(parse(&vec![16u8; len]).unwrap_err(), Mb2Error::TooShort { len });
        }
        let err = parse(&[7, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err, Mb2Error::BadTotalSize { total_size: 7, available: 8 });
        assert_eq!(
            err.to_string(),
            "multiboot2 total_size 7 is smaller than the 8-byte header (8 bytes available)"
        );
        let err = parse(&[32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0]).unwrap_err();
        assert_eq!(err, Mb2Error::BadTotalSize { total_size: 32, available: 16 });
        assert_eq!(err.to_string(), "multiboot2 total_size 32 exceeds the 16 bytes available");
        let err = parse(&[8, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err, Mb2Error::MissingEndTag);
        assert_eq!(
            Mb2Error::TooShort { len: 3 }.to_string(),
            "multiboot2 block of 3 bytes is shorter than the 8-byte header"
        );
    }

    #[test]
    fn slice_longer_than_total_size() {
        let mut block = full_block();
        let total = block.len();
        block.extend_from_slice(&[0xff; 100]);
        let info = parse(&block).unwrap();
        assert_eq!(info.total_size(), total);
        assert_eq!(info.modules().count(), 2);
    }

    #[test]
    fn tag_size_past_the_end() {
        let block =
            Builder::new().string(TAG_CMDLINE, b"x").raw_tag(TAG_MODULE, 0x1000, &[0; 8]).finish();
        let err = parse(&block).unwrap_err();
        assert_eq!(
            err,
            Mb2Error::TagOverrun { offset: 24, tag_type: TAG_MODULE, tag_size: 0x1000 }
        );
        assert_eq!(
            err.to_string(),
            "multiboot2 tag type 3 at offset 24 has size 4096, which runs past the end of the block"
        );
        let block = Builder::new().raw_tag(7, u32::MAX, &[]).finish();
        assert!(matches!(
            parse(&block),
            Err(Mb2Error::TagOverrun { offset: 8, tag_type: 7, tag_size: u32::MAX })
        ));
    }

    #[test]
    fn end_tag_size_past_the_end() {
        let block = Builder::new().raw_tag(TAG_END, 16, &[]).finish_without_end();
        assert!(matches!(parse(&block), Err(Mb2Error::TagOverrun { tag_type: 0, .. })));
    }

    #[test]
    fn tag_size_below_header() {
        for size in 0..8 {
            let block = Builder::new().raw_tag(TAG_CMDLINE, size, &[0; 8]).finish();
            let err = parse(&block).unwrap_err();
            assert_eq!(
                err,
                Mb2Error::TagTooSmall { offset: 8, tag_type: TAG_CMDLINE, tag_size: size }
            );
        }
        assert_eq!(
            Mb2Error::TagTooSmall { offset: 8, tag_type: 1, tag_size: 4 }.to_string(),
            "multiboot2 tag type 1 at offset 8 has size 4, smaller than the 8-byte tag header"
        );
    }

    #[test]
    fn missing_end_tag() {
        let block = Builder::new().string(TAG_CMDLINE, b"abc").finish_without_end();
        assert_eq!(parse(&block).unwrap_err(), Mb2Error::MissingEndTag);
        // Padding after the last tag runs past total_size.
        let block = Builder::new().tag(TAG_CMDLINE, b"abc").finish_without_end();
        assert_eq!(block.len(), 19);
        assert_eq!(parse(&block).unwrap_err(), Mb2Error::MissingEndTag);
        assert_eq!(
            Mb2Error::MissingEndTag.to_string(),
            "multiboot2 block has no end tag (type 0) within total_size"
        );
    }

    #[test]
    fn tags_after_end_tag_ignored() {
        let mut block = Builder::new().finish();
        block.extend_from_slice(&Builder::new().string(TAG_CMDLINE, b"late").finish()[8..]);
        let total = block.len() as u32;
        block[..4].copy_from_slice(&total.to_le_bytes());
        let info = parse(&block).unwrap();
        assert_eq!(info.command_line(), None);
        assert_eq!(info.tags().count(), 0);
    }

    #[test]
    fn every_prefix_is_an_error_or_a_valid_parse() {
        let block = full_block();
        for n in 0..=block.len() {
            // As given: total_size still claims the full block.
            let prefix = &block[..n];
            match parse(prefix) {
                Ok(info) => {
                    assert_eq!(n, block.len());
                    exercise(&info);
                }
                Err(Mb2Error::TooShort { len }) => assert!(len < HEADER_SIZE && len == n),
                Err(e) => assert!(matches!(e, Mb2Error::BadTotalSize { .. }), "prefix {n}: {e}"),
            }
            // With total_size patched to the prefix length: exercises the
            // tag walk on every truncation point.
            let mut patched = prefix.to_vec();
            if n >= 4 {
                patched[..4].copy_from_slice(&(n as u32).to_le_bytes());
            }
            if let Ok(info) = parse(&patched) {
                exercise(&info);
            }
        }
    }

    #[test]
    fn memory_map_entry_sizes() {
        let entries = [
            (0x1000, 0x9e000, 1),
            (0xe0000, 0x20000, 2),
            (0x1_0000_0000, 0x4_0000_0000, 1),
            (0x7fee_0000, 0x1000, 4),
            (0x7fef_0000, 0x1000, 5),
            (0x7ff0_0000, 0x1000, 99),
        ];
        for entry_size in [0u32, 16] {
            let block =
                Builder::new().mmap(entry_size, &entries[..entry_size as usize / 16]).finish();
            let info = parse(&block).unwrap();
            assert_eq!(info.memory_map().count(), 0, "entry_size {entry_size}");
            assert!(info.memory_map_invalid());
            assert!(info.has_memory_map());
            assert_eq!(info.memory_map_entry_size(), Some(entry_size));
        }
        for entry_size in [24u32, 32, 40] {
            let block = Builder::new().mmap(entry_size, &entries).finish();
            let info = parse(&block).unwrap();
            assert!(!info.memory_map_invalid());
            let got: Vec<_> = info.memory_map().map(|e| (e.base, e.length, e.kind)).collect();
            assert_eq!(
                got,
                [
                    (0x1000, 0x9e000, RegionKind::Usable),
                    (0xe0000, 0x20000, RegionKind::Reserved),
                    (0x1_0000_0000, 0x4_0000_0000, RegionKind::Usable),
                    (0x7fee_0000, 0x1000, RegionKind::AcpiNvs),
                    (0x7fef_0000, 0x1000, RegionKind::Defective),
                    (0x7ff0_0000, 0x1000, RegionKind::Reserved),
                ],
                "entry_size {entry_size}"
            );
        }
    }

    #[test]
    fn memory_map_cut_off_entry_ignored() {
        let mut body = Vec::new();
        body.extend_from_slice(&24u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&0x1000u64.to_le_bytes());
        body.extend_from_slice(&0x2000u64.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&[0x11; 20]);
        let block = Builder::new().tag(TAG_MMAP, &body).finish();
        let info = parse(&block).unwrap();
        assert_eq!(info.memory_map().count(), 1);
        // A tag without even the entry_size field.
        let block = Builder::new().tag(TAG_MMAP, &[24, 0]).finish();
        let info = parse(&block).unwrap();
        assert!(info.memory_map_invalid());
        assert_eq!(info.memory_map_entry_size(), None);
        assert_eq!(info.memory_map().count(), 0);
    }

    #[test]
    fn short_fixed_tags_are_none() {
        let block = Builder::new()
            .tag(TAG_FRAMEBUFFER, &framebuffer_body()[..21])
            .tag(TAG_ACPI_OLD, &rsdp_v1()[..19])
            .tag(TAG_LOAD_BASE_ADDR, &[1, 2, 3])
            .tag(TAG_BASIC_MEMINFO, &[1, 2, 3, 4])
            .finish();
        let info = parse(&block).unwrap();
        assert_eq!(info.framebuffer(), None);
        assert_eq!(info.rsdp(), None);
        assert_eq!(info.load_base(), None);
        assert_eq!(info.basic_memory(), None);
    }

    #[test]
    fn rsdp_falls_back_to_v1() {
        let only_v1 = Builder::new().tag(TAG_ACPI_OLD, &rsdp_v1()).finish();
        assert_eq!(parse(&only_v1).unwrap().rsdp(), Some(Rsdp::V1(rsdp_v1())));
        let short_v2 = Builder::new()
            .tag(TAG_ACPI_NEW, &rsdp_v2()[..35])
            .tag(TAG_ACPI_OLD, &rsdp_v1())
            .finish();
        assert_eq!(parse(&short_v2).unwrap().rsdp(), Some(Rsdp::V1(rsdp_v1())));
        assert_eq!(Rsdp::V1(rsdp_v1()).bytes(), &rsdp_v1());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn random_blobs_never_panic(
            mut blob in proptest::collection::vec(any::<u8>(), 0..512),
            fix_total in any::<bool>(),
        ) {
            if fix_total && blob.len() >= 4 {
                let len = blob.len() as u32;
                blob[..4].copy_from_slice(&len.to_le_bytes());
            }
            if let Ok(info) = parse(&blob) {
                exercise(&info);
            }
        }

        #[test]
        fn mutated_blocks_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut block = full_block();
            for (at, byte) in edits {
                let i = at.index(block.len());
                block[i] = byte;
            }
            if truncate {
                block.truncate(cut.index(block.len() + 1));
            }
            if let Ok(info) = parse(&block) {
                exercise(&info);
            }
        }
    }
}
