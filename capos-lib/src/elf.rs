//! ELF64 validation for capOS user programs.
//!
//! [`parse`] checks every field of an ELF file header and program header
//! table that matters for loading, against the rules below, before the
//! kernel maps anything. capOS loads static, non-PIE x86_64 executables
//! only; the image is a byte slice and nothing is allocated on success.
//!
//! The file header and program headers are read with `goblin` (its
//! `elf64` structures, read little-endian through `scroll`, which checks
//! every offset against the image); this module holds the policy.
//!
//! File header: magic, class ELF64, little-endian, identification version 1,
//! OS ABI System V (0) or standalone (255), ABI version 0, type `ET_EXEC`
//! (`ET_DYN` is refused: no PIE or shared objects), machine x86_64,
//! version 1, no processor flags, header size 64, program header entry size
//! 56, the program header table inside the image, and a section header table
//! (when present) with 64-byte entries inside the image.
//!
//! Program headers: `PT_LOAD` segments are loaded; `PT_NULL`, `PT_NOTE`,
//! `PT_PHDR`, `PT_GNU_STACK` (unless it asks for an executable stack) and
//! other OS- or processor-specific types are ignored; `PT_DYNAMIC`,
//! `PT_INTERP`, `PT_TLS`, `PT_SHLIB` and unknown generic types are refused.
//!
//! Each `PT_LOAD` segment: only R/W/X flag bits, not both writable and
//! executable, `filesz <= memsz`, file bytes inside the image, alignment 0,
//! 1 or a power of two, `vaddr` congruent to `offset` modulo the page size,
//! and its page-rounded range inside `[min_vaddr, user_top)`. Segments must
//! not share a page, there must be at least one and at most `max_segments`,
//! and the entry point must lie inside an executable segment.

use core::fmt;

use goblin::elf::header::{
    EI_ABIVERSION, EI_CLASS, EI_DATA, EI_OSABI, EI_VERSION, ELFCLASS64, ELFDATA2LSB, ELFMAG,
    ELFOSABI_NONE, ELFOSABI_STANDALONE, EV_CURRENT, SIZEOF_IDENT,
};
use goblin::elf64::header::Header;
use goblin::elf64::program_header::ProgramHeader;
use scroll::Pread;

pub use goblin::elf::header::{EM_X86_64, ET_DYN, ET_EXEC};
pub use goblin::elf::program_header::{
    PF_R, PF_W, PF_X, PT_DYNAMIC, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_NOTE, PT_NULL, PT_PHDR,
    PT_SHLIB, PT_TLS,
};

/// Page size segments are mapped with.
pub const PAGE_SIZE: u64 = 4096;

const EHDR_SIZE: usize = goblin::elf64::header::SIZEOF_EHDR;
const PHDR_SIZE: usize = goblin::elf64::program_header::SIZEOF_PHDR;
const SHDR_SIZE: usize = goblin::elf64::section_header::SIZEOF_SHDR;
/// `e_phnum` value announcing more program headers than fit in 16 bits.
const PN_XNUM: u16 = 0xffff;
/// `e_shstrndx` value announcing the index lives in section header 0.
const SHN_XINDEX: u16 = 0xffff;

/// Bounds a program's segments must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfLimits {
    /// Exclusive upper bound for the page-rounded end of every segment.
    pub user_top: u64,
    /// Lowest address a segment's first page may start at; nothing is mapped below.
    pub min_vaddr: u64,
    /// Most `PT_LOAD` segments allowed.
    pub max_segments: usize,
}

/// What is wrong with an ELF image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// The image ends before a structure it must contain.
    Truncated {
        /// The structure that did not fit.
        what: &'static str,
        /// Length of the image.
        len: usize,
    },
    /// The first four bytes are not `\x7fELF`.
    BadMagic([u8; 4]),
    /// `EI_CLASS` is not ELFCLASS64 (2).
    BadClass(u8),
    /// `EI_DATA` is not little-endian (1).
    BadDataEncoding(u8),
    /// `EI_VERSION` is not 1.
    BadIdentVersion(u8),
    /// `EI_OSABI` is neither System V (0) nor standalone (255).
    BadOsAbi(u8),
    /// `EI_ABIVERSION` is not 0.
    BadAbiVersion(u8),
    /// `e_type` is `ET_DYN`: a PIE or shared object, not a static executable.
    DynamicExecutable,
    /// `e_type` is not `ET_EXEC`.
    BadType(u16),
    /// `e_machine` is not x86_64 (62).
    BadMachine(u16),
    /// `e_version` is not 1.
    BadVersion(u32),
    /// `e_flags` is not 0 (x86_64 defines no flags).
    BadFlags(u32),
    /// `e_ehsize` is not 64.
    BadHeaderSize(u16),
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// `e_phnum` is `PN_XNUM` (extended numbering is not supported).
    ExtendedPhnum,
    /// The program header table does not lie inside the image.
    ProgramHeadersOutOfBounds {
        /// `e_phoff`.
        phoff: u64,
        /// `e_phnum`.
        phnum: u16,
        /// Length of the image.
        len: usize,
    },
    /// `e_shentsize` is not 64 although a section header table is present.
    BadShentsize(u16),
    /// The section header table does not lie inside the image, or `e_shnum`
    /// is nonzero without a table.
    SectionHeadersOutOfBounds {
        /// `e_shoff`.
        shoff: u64,
        /// `e_shnum`.
        shnum: u16,
        /// Length of the image.
        len: usize,
    },
    /// `e_shstrndx` names no section.
    BadShstrndx {
        /// `e_shstrndx`.
        shstrndx: u16,
        /// `e_shnum`.
        shnum: u16,
    },
    /// A `PT_INTERP` segment: the program asks for a dynamic loader.
    InterpreterRequested,
    /// A `PT_DYNAMIC` segment: the program needs dynamic linking.
    DynamicSegment,
    /// A `PT_TLS` segment: thread-local storage is not supported.
    TlsSegment {
        /// `p_vaddr` of the TLS template.
        vaddr: u64,
    },
    /// `PT_GNU_STACK` asks for an executable stack.
    ExecutableStack,
    /// A program header type capOS neither loads nor may ignore.
    UnsupportedSegmentType(u32),
    /// A `PT_LOAD` segment has flag bits other than R, W and X.
    BadSegmentFlags {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_flags`.
        flags: u32,
    },
    /// A `PT_LOAD` segment is both writable and executable.
    WritableAndExecutable {
        /// `p_vaddr`.
        vaddr: u64,
    },
    /// A `PT_LOAD` segment has more file bytes than memory bytes.
    FileSizeExceedsMemSize {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A `PT_LOAD` segment's file bytes do not lie inside the image.
    SegmentOutsideImage {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// Length of the image.
        len: usize,
    },
    /// A `PT_LOAD` segment's `p_align` is not 0, 1 or a power of two.
    BadAlignment {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_align`.
        align: u64,
    },
    /// A `PT_LOAD` segment's `p_vaddr` and `p_offset` differ modulo the page size.
    NotCongruent {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
    },
    /// A `PT_LOAD` segment's first page starts below `min_vaddr`.
    BelowMinimum {
        /// `p_vaddr`.
        vaddr: u64,
        /// The limit.
        min_vaddr: u64,
    },
    /// `p_vaddr + p_memsz`, rounded up to a page, overflows.
    AddressOverflow {
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A `PT_LOAD` segment's page-rounded end is above `user_top`: it reaches
    /// beyond user space.
    KernelRange {
        /// `p_vaddr`.
        vaddr: u64,
        /// The page-rounded end of the segment.
        end: u64,
    },
    /// Two `PT_LOAD` segments share at least one page.
    SegmentOverlap {
        /// `p_vaddr` of the earlier segment in the table.
        a_vaddr: u64,
        /// `p_vaddr` of the later segment in the table.
        b_vaddr: u64,
    },
    /// No `PT_LOAD` segment.
    NoLoadSegments,
    /// More `PT_LOAD` segments than `max_segments`.
    TooManySegments {
        /// Segments counted so far (one more than the limit).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The entry point is not inside an executable `PT_LOAD` segment.
    EntryOutsideText {
        /// `e_entry`.
        entry: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match *self {
            Truncated { what, len } => write!(f, "elf: {len}-byte image ends inside the {what}"),
            BadMagic(m) => write!(f, "elf: magic {m:02x?} is not 7f 45 4c 46"),
            BadClass(c) => write!(f, "elf: class {c} is not ELF64 (2)"),
            BadDataEncoding(d) => write!(f, "elf: data encoding {d} is not little-endian (1)"),
            BadIdentVersion(v) => write!(f, "elf: ident version {v} is not 1"),
            BadOsAbi(a) => write!(f, "elf: OS ABI {a} is neither System V (0) nor standalone (255)"),
            BadAbiVersion(v) => write!(f, "elf: ABI version {v} is not 0"),
            DynamicExecutable => write!(
                f,
                "elf: type ET_DYN (PIE or shared object); only static non-PIE executables load"
            ),
            BadType(t) => write!(f, "elf: type {t} is not ET_EXEC (2)"),
            BadMachine(m) => write!(f, "elf: machine {m} is not x86_64 (62)"),
            BadVersion(v) => write!(f, "elf: version {v} is not 1"),
            BadFlags(x) => write!(f, "elf: flags {x:#x} are not 0"),
            BadHeaderSize(s) => write!(f, "elf: header size {s} is not 64"),
            BadPhentsize(s) => write!(f, "elf: program header entry size {s} is not 56"),
            ExtendedPhnum => write!(f, "elf: extended program header numbering is not supported"),
            ProgramHeadersOutOfBounds { phoff, phnum, len } => write!(
                f,
                "elf: {phnum} program headers at offset {phoff:#x} do not fit in the {len}-byte image"
            ),
            BadShentsize(s) => write!(f, "elf: section header entry size {s} is not 64"),
            SectionHeadersOutOfBounds { shoff, shnum, len } => write!(
                f,
                "elf: {shnum} section headers at offset {shoff:#x} do not fit in the {len}-byte image"
            ),
            BadShstrndx { shstrndx, shnum } => write!(
                f,
                "elf: section name table index {shstrndx} is not below the section count {shnum}"
            ),
            InterpreterRequested => {
                write!(f, "elf: PT_INTERP requests a dynamic loader; only static executables load")
            }
            DynamicSegment => {
                write!(f, "elf: PT_DYNAMIC needs dynamic linking; only static executables load")
            }
            TlsSegment { vaddr } => {
                write!(f, "elf: PT_TLS segment at {vaddr:#x}: thread-local storage is not supported")
            }
            ExecutableStack => write!(f, "elf: PT_GNU_STACK requests an executable stack"),
            UnsupportedSegmentType(t) => write!(f, "elf: program header type {t:#x} is not supported"),
            BadSegmentFlags { vaddr, flags } => {
                write!(f, "elf: segment at {vaddr:#x} has flags {flags:#x} beyond R, W and X")
            }
            WritableAndExecutable { vaddr } => {
                write!(f, "elf: segment at {vaddr:#x} is both writable and executable")
            }
            FileSizeExceedsMemSize { vaddr, filesz, memsz } => write!(
                f,
                "elf: segment at {vaddr:#x} has file size {filesz:#x} above its memory size {memsz:#x}"
            ),
            SegmentOutsideImage { vaddr, offset, filesz, len } => write!(
                f,
                "elf: segment at {vaddr:#x}: {filesz:#x} file bytes at offset {offset:#x} \
                 do not fit in the {len}-byte image"
            ),
            BadAlignment { vaddr, align } => write!(
                f,
                "elf: segment at {vaddr:#x} has alignment {align:#x}, not 0, 1 or a power of two"
            ),
            NotCongruent { vaddr, offset } => write!(
                f,
                "elf: segment at {vaddr:#x} and its file offset {offset:#x} differ modulo the page size"
            ),
            BelowMinimum { vaddr, min_vaddr } => {
                write!(f, "elf: segment at {vaddr:#x} starts below the lowest user address {min_vaddr:#x}")
            }
            AddressOverflow { vaddr, memsz } => {
                write!(f, "elf: segment at {vaddr:#x} with memory size {memsz:#x} overflows the address space")
            }
            KernelRange { vaddr, end } => {
                write!(f, "elf: segment at {vaddr:#x} ends at {end:#x}, beyond user space")
            }
            SegmentOverlap { a_vaddr, b_vaddr } => {
                write!(f, "elf: segments at {a_vaddr:#x} and {b_vaddr:#x} share a page")
            }
            NoLoadSegments => write!(f, "elf: no PT_LOAD segment"),
            TooManySegments { count, max } => {
                write!(f, "elf: at least {count} PT_LOAD segments, more than the limit of {max}")
            }
            EntryOutsideText { entry } => {
                write!(f, "elf: entry point {entry:#x} is not inside an executable segment")
            }
        }
    }
}

/// One loadable segment of a validated image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// First virtual address (not necessarily page-aligned).
    pub vaddr: u64,
    /// Bytes of memory from `vaddr`; at least `file_bytes.len()`. The rest is zero-filled.
    pub memsz: u64,
    /// Bytes to copy to `vaddr`.
    pub file_bytes: &'a [u8],
    /// `PF_R` is set.
    pub readable: bool,
    /// `PF_W` is set.
    pub writable: bool,
    /// `PF_X` is set.
    pub executable: bool,
}

impl Segment<'_> {
    /// Page-aligned start of the first page the segment touches.
    pub fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }

    /// Page-aligned end of the last page the segment touches (exclusive).
    /// Validation guarantees it does not overflow.
    pub fn page_end(&self) -> u64 {
        (self.vaddr + self.memsz).next_multiple_of(PAGE_SIZE)
    }
}

/// A validated ELF image.
#[derive(Debug, Clone, Copy)]
pub struct ElfImage<'a> {
    image: &'a [u8],
    entry: u64,
    phoff: usize,
    phnum: usize,
}

impl<'a> ElfImage<'a> {
    /// The entry point.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The non-empty `PT_LOAD` segments, in program header order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + 'a {
        let (image, phoff) = (self.image, self.phoff);
        (0..self.phnum)
            .filter_map(move |i| program_header(image, phoff, i))
            .filter(|ph| ph.p_type == PT_LOAD && ph.p_memsz != 0)
            .filter_map(move |ph| {
                // Validated in `parse`: the range is inside the image.
                let start = usize::try_from(ph.p_offset).ok()?;
                let file_bytes = image.get(start..start.checked_add(ph.p_filesz as usize)?)?;
                Some(Segment {
                    vaddr: ph.p_vaddr,
                    memsz: ph.p_memsz,
                    file_bytes,
                    readable: ph.p_flags & PF_R != 0,
                    writable: ph.p_flags & PF_W != 0,
                    executable: ph.p_flags & PF_X != 0,
                })
            })
    }
}

/// Program header `i` of the table at `phoff`, read by goblin; `None` if
/// it does not lie inside the image.
fn program_header(image: &[u8], phoff: usize, i: usize) -> Option<ProgramHeader> {
    let at = phoff.checked_add(i.checked_mul(PHDR_SIZE)?)?;
    image.pread_with::<ProgramHeader>(at, scroll::LE).ok()
}

/// Page-rounded `[start, end)` of a loadable segment; checked in `check_load`.
fn pages(ph: &ProgramHeader) -> Option<(u64, u64)> {
    let end = ph.p_vaddr.checked_add(ph.p_memsz)?.checked_next_multiple_of(PAGE_SIZE)?;
    Some((ph.p_vaddr & !(PAGE_SIZE - 1), end))
}

/// Checks one `PT_LOAD` header against every per-segment rule.
fn check_load(ph: &ProgramHeader, image_len: usize, limits: &ElfLimits) -> Result<(), ElfError> {
    let vaddr = ph.p_vaddr;
    let (flags, offset, filesz, memsz, align) =
        (ph.p_flags, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_align);
    if flags & !(PF_R | PF_W | PF_X) != 0 {
        return Err(ElfError::BadSegmentFlags { vaddr, flags });
    }
    if flags & PF_W != 0 && flags & PF_X != 0 {
        return Err(ElfError::WritableAndExecutable { vaddr });
    }
    if filesz > memsz {
        return Err(ElfError::FileSizeExceedsMemSize { vaddr, filesz, memsz });
    }
    let in_image = offset.checked_add(filesz).is_some_and(|end| end <= image_len as u64);
    if !in_image {
        return Err(ElfError::SegmentOutsideImage { vaddr, offset, filesz, len: image_len });
    }
    if align > 1 && !align.is_power_of_two() {
        return Err(ElfError::BadAlignment { vaddr, align });
    }
    if vaddr % PAGE_SIZE != offset % PAGE_SIZE {
        return Err(ElfError::NotCongruent { vaddr, offset });
    }
    let (start, end) = pages(ph).ok_or(ElfError::AddressOverflow { vaddr, memsz })?;
    if start < limits.min_vaddr {
        return Err(ElfError::BelowMinimum { vaddr, min_vaddr: limits.min_vaddr });
    }
    if end > limits.user_top {
        return Err(ElfError::KernelRange { vaddr, end });
    }
    Ok(())
}

/// Checks the identification bytes, reads the file header with goblin and
/// checks its fields.
fn file_header(image: &[u8]) -> Result<Header, ElfError> {
    let len = image.len();
    let ident =
        image.get(..SIZEOF_IDENT).ok_or(ElfError::Truncated { what: "ELF identification", len })?;
    let magic = [ident[0], ident[1], ident[2], ident[3]];
    if magic != *ELFMAG {
        return Err(ElfError::BadMagic(magic));
    }
    match ident[EI_CLASS] {
        ELFCLASS64 => {}
        c => return Err(ElfError::BadClass(c)),
    }
    match ident[EI_DATA] {
        ELFDATA2LSB => {}
        d => return Err(ElfError::BadDataEncoding(d)),
    }
    match ident[EI_VERSION] {
        EV_CURRENT => {}
        v => return Err(ElfError::BadIdentVersion(v)),
    }
    match ident[EI_OSABI] {
        ELFOSABI_NONE | ELFOSABI_STANDALONE => {}
        a => return Err(ElfError::BadOsAbi(a)),
    }
    match ident[EI_ABIVERSION] {
        0 => {}
        v => return Err(ElfError::BadAbiVersion(v)),
    }
    // The rest of the identification is padding with no meaning.
    if len < EHDR_SIZE {
        return Err(ElfError::Truncated { what: "ELF file header", len });
    }
    let header: Header = image
        .pread_with(0, scroll::LE)
        .map_err(|_| ElfError::Truncated { what: "ELF file header", len })?;
    match header.e_type {
        ET_EXEC => {}
        ET_DYN => return Err(ElfError::DynamicExecutable),
        t => return Err(ElfError::BadType(t)),
    }
    match header.e_machine {
        EM_X86_64 => {}
        m => return Err(ElfError::BadMachine(m)),
    }
    match header.e_version {
        1 => {}
        v => return Err(ElfError::BadVersion(v)),
    }
    match header.e_flags {
        0 => {}
        x => return Err(ElfError::BadFlags(x)),
    }
    match header.e_ehsize as usize {
        EHDR_SIZE => {}
        _ => return Err(ElfError::BadHeaderSize(header.e_ehsize)),
    }
    match header.e_phentsize as usize {
        PHDR_SIZE => {}
        _ => return Err(ElfError::BadPhentsize(header.e_phentsize)),
    }
    Ok(header)
}

/// Checks the section header table fields (the table itself is never read).
fn check_section_headers(header: &Header, len: usize) -> Result<(), ElfError> {
    let (shoff, shnum, shstrndx) = (header.e_shoff, header.e_shnum, header.e_shstrndx);
    if shoff == 0 {
        // No section table (e.g. fully stripped): nothing may refer to one.
        if shnum != 0 {
            return Err(ElfError::SectionHeadersOutOfBounds { shoff, shnum, len });
        }
        if shstrndx != 0 {
            return Err(ElfError::BadShstrndx { shstrndx, shnum });
        }
        return Ok(());
    }
    if header.e_shentsize as usize != SHDR_SIZE {
        return Err(ElfError::BadShentsize(header.e_shentsize));
    }
    // With extended numbering (shnum == 0) the real count is in entry 0.
    let entries = u64::from(shnum.max(1));
    let fits = shoff.checked_add(entries * SHDR_SIZE as u64).is_some_and(|end| end <= len as u64);
    if !fits {
        return Err(ElfError::SectionHeadersOutOfBounds { shoff, shnum, len });
    }
    let names_ok = shstrndx == 0 || shstrndx < shnum || shstrndx == SHN_XINDEX;
    if !names_ok {
        return Err(ElfError::BadShstrndx { shstrndx, shnum });
    }
    Ok(())
}

/// Validates `image` as a capOS user program within `limits`.
pub fn parse<'a>(image: &'a [u8], limits: &ElfLimits) -> Result<ElfImage<'a>, ElfError> {
    let header = file_header(image)?;
    let len = image.len();
    let (entry, phoff, phnum) = (header.e_entry, header.e_phoff, header.e_phnum);
    if phnum == PN_XNUM {
        return Err(ElfError::ExtendedPhnum);
    }
    let table_fits =
        phoff.checked_add(u64::from(phnum) * PHDR_SIZE as u64).is_some_and(|end| end <= len as u64);
    if !table_fits {
        return Err(ElfError::ProgramHeadersOutOfBounds { phoff, phnum, len });
    }
    check_section_headers(&header, len)?;

    // The table fits in the image, so offsets are below `len` and fit in usize.
    let phoff = phoff as usize;
    let phnum = usize::from(phnum);
    let header = |i| {
        program_header(image, phoff, i)
            .ok_or(ElfError::Truncated { what: "program header table", len })
    };

    let mut loads = 0usize;
    for i in 0..phnum {
        let ph = header(i)?;
        match ph.p_type {
            PT_LOAD => {
                loads += 1;
                if loads > limits.max_segments {
                    return Err(ElfError::TooManySegments {
                        count: loads,
                        max: limits.max_segments,
                    });
                }
                check_load(&ph, len, limits)?;
            }
            PT_NULL | PT_NOTE | PT_PHDR => {}
            PT_DYNAMIC => return Err(ElfError::DynamicSegment),
            PT_INTERP => return Err(ElfError::InterpreterRequested),
            PT_TLS => return Err(ElfError::TlsSegment { vaddr: ph.p_vaddr }),
            PT_GNU_STACK if ph.p_flags & PF_X != 0 => return Err(ElfError::ExecutableStack),
            // OS- and processor-specific types (GNU_STACK, GNU_RELRO,
            // GNU_EH_FRAME, GNU_PROPERTY, ...) carry nothing capOS must act on.
            0x6000_0000..=0x7fff_ffff => {}
            other => return Err(ElfError::UnsupportedSegmentType(other)),
        }
    }
    if loads == 0 {
        return Err(ElfError::NoLoadSegments);
    }

    // Pairwise page overlap between non-empty loads: O(loads * phnum).
    let is_load = |ph: &ProgramHeader| ph.p_type == PT_LOAD && ph.p_memsz != 0;
    let overflow =
        |ph: &ProgramHeader| ElfError::AddressOverflow { vaddr: ph.p_vaddr, memsz: ph.p_memsz };
    for i in 0..phnum {
        let a = header(i)?;
        if !is_load(&a) {
            continue;
        }
        let (a_start, a_end) = pages(&a).ok_or(overflow(&a))?;
        for j in i + 1..phnum {
            let b = header(j)?;
            if !is_load(&b) {
                continue;
            }
            let (b_start, b_end) = pages(&b).ok_or(overflow(&b))?;
            if a_start < b_end && b_start < a_end {
                return Err(ElfError::SegmentOverlap { a_vaddr: a.p_vaddr, b_vaddr: b.p_vaddr });
            }
        }
    }

    let elf = ElfImage { image, entry, phoff, phnum };
    let entry_ok =
        elf.segments().any(|s| s.executable && entry >= s.vaddr && entry - s.vaddr < s.memsz);
    if !entry_ok {
        return Err(ElfError::EntryOutsideText { entry });
    }
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: ElfLimits =
        ElfLimits { user_top: 0x0000_7fff_0000_0000, min_vaddr: 0x10000, max_segments: 8 };

    #[derive(Debug, Clone, Copy)]
    struct Ph {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    const TEXT: Ph = Ph {
        p_type: PT_LOAD,
        flags: PF_R | PF_X,
        offset: 0x1000,
        vaddr: 0x40_1000,
        filesz: 0x100,
        memsz: 0x100,
        align: 0x1000,
    };
    const DATA: Ph = Ph {
        p_type: PT_LOAD,
        flags: PF_R | PF_W,
        offset: 0x2000,
        vaddr: 0x40_3000,
        filesz: 0x10,
        memsz: 0x2000,
        align: 0x1000,
    };
    const STACK: Ph = Ph {
        p_type: PT_GNU_STACK,
        flags: PF_R | PF_W,
        offset: 0,
        vaddr: 0,
        filesz: 0,
        memsz: 0,
        align: 16,
    };
    const ENTRY: u64 = 0x40_1010;

    /// Offsets of file header fields, for targeted edits.
    const E_TYPE: usize = 16;
    const E_MACHINE: usize = 18;
    const E_VERSION: usize = 20;
    const E_ENTRY: usize = 24;
    const E_PHOFF: usize = 32;
    const E_SHOFF: usize = 40;
    const E_FLAGS: usize = 48;
    const E_EHSIZE: usize = 52;
    const E_PHENTSIZE: usize = 54;
    const E_PHNUM: usize = 56;
    const E_SHENTSIZE: usize = 58;
    const E_SHNUM: usize = 60;
    const E_SHSTRNDX: usize = 62;

    /// An ELF image with program headers `phs` right after the file header,
    /// entry `entry`, no section table, and file bytes `i as u8` at offset i.
    fn build(phs: &[Ph], entry: u64) -> Vec<u8> {
        // File bytes of every segment that ends at a plausible offset; the
        // rest (tests of absurd offsets) are left outside the image.
        let file_end = phs
            .iter()
            .filter_map(|p| p.offset.checked_add(p.filesz))
            .filter(|&end| end <= 0x10_0000)
            .max()
            .unwrap_or(0) as usize;
        let len = file_end.max(EHDR_SIZE + PHDR_SIZE * phs.len());
        let mut b: Vec<u8> = (0..len).map(|i| i as u8).collect();
        b[..EHDR_SIZE].fill(0);
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        put16(&mut b, E_TYPE, ET_EXEC);
        put16(&mut b, E_MACHINE, EM_X86_64);
        put32(&mut b, E_VERSION, 1);
        put64(&mut b, E_ENTRY, entry);
        put64(&mut b, E_PHOFF, EHDR_SIZE as u64);
        put16(&mut b, E_EHSIZE, 64);
        put16(&mut b, E_PHENTSIZE, 56);
        put16(&mut b, E_PHNUM, phs.len() as u16);
        put16(&mut b, E_SHENTSIZE, 64);
        for (i, p) in phs.iter().enumerate() {
            let at = EHDR_SIZE + i * PHDR_SIZE;
            put32(&mut b, at, p.p_type);
            put32(&mut b, at + 4, p.flags);
            put64(&mut b, at + 8, p.offset);
            put64(&mut b, at + 16, p.vaddr);
            put64(&mut b, at + 24, p.vaddr);
            put64(&mut b, at + 32, p.filesz);
            put64(&mut b, at + 40, p.memsz);
            put64(&mut b, at + 48, p.align);
        }
        b
    }

    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn good() -> Vec<u8> {
        build(&[TEXT, DATA, STACK], ENTRY)
    }

    fn parse_err(image: &[u8]) -> ElfError {
        parse(image, &LIMITS).unwrap_err()
    }

    /// The error for the good image with one segment replaced (index 0 = TEXT, 1 = DATA).
    fn seg_err(i: usize, p: Ph) -> ElfError {
        let mut phs = [TEXT, DATA, STACK];
        phs[i] = p;
        parse_err(&build(&phs, ENTRY))
    }

    #[test]
    fn accepts_a_static_executable() {
        let image = good();
        let elf = parse(&image, &LIMITS).unwrap();
        assert_eq!(elf.entry(), ENTRY);
        let segs: Vec<Segment> = elf.segments().collect();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].vaddr, 0x40_1000);
        assert_eq!(segs[0].memsz, 0x100);
        assert_eq!(segs[0].file_bytes, &image[0x1000..0x1100]);
        assert!(segs[0].readable && segs[0].executable && !segs[0].writable);
        assert_eq!(segs[1].file_bytes, &image[0x2000..0x2010]);
        assert!(segs[1].readable && segs[1].writable && !segs[1].executable);
        assert_eq!((segs[1].page_start(), segs[1].page_end()), (0x40_3000, 0x40_5000));
    }

    #[test]
    fn accepts_standalone_abi_sections_and_ignorable_headers() {
        let mut image = build(
            &[
                Ph { p_type: PT_PHDR, offset: 64, filesz: 56 * 6, memsz: 56 * 6, ..STACK },
                TEXT,
                DATA,
                Ph { p_type: PT_NOTE, ..STACK },
                Ph { p_type: 0x6474_e552, ..STACK }, // PT_GNU_RELRO
                Ph { p_type: PT_NULL, ..STACK },
            ],
            ENTRY,
        );
        image[7] = 255;
        // A section table of two entries inside the image.
        put64(&mut image, E_SHOFF, 0x1800);
        put16(&mut image, E_SHNUM, 2);
        put16(&mut image, E_SHSTRNDX, 1);
        assert!(parse(&image, &LIMITS).is_ok());
        // Unaligned single-page segment, alignment 0 and 1, empty PT_LOAD.
        let odd =
            Ph { vaddr: 0x40_1080, offset: 0x1080, filesz: 0x10, memsz: 0x10, align: 1, ..TEXT };
        let empty = Ph { vaddr: 0x40_1000, offset: 0x1000, filesz: 0, memsz: 0, align: 0, ..DATA };
        let elf_image = build(&[odd, empty], 0x40_1080);
        let elf = parse(&elf_image, &LIMITS).unwrap();
        assert_eq!(elf.segments().count(), 1, "empty PT_LOAD is skipped");
    }

    #[test]
    fn rejects_short_images() {
        assert_eq!(parse_err(&[]), ElfError::Truncated { what: "ELF identification", len: 0 });
        let image = good();
        assert_eq!(
            parse_err(&image[..40]),
            ElfError::Truncated { what: "ELF file header", len: 40 }
        );
    }

    #[test]
    fn rejects_bad_identification() {
        let cases: [(usize, u8, ElfError); 6] = [
            (0, 0x7e, ElfError::BadMagic([0x7e, b'E', b'L', b'F'])),
            (4, 1, ElfError::BadClass(1)),
            (5, 2, ElfError::BadDataEncoding(2)),
            (6, 0, ElfError::BadIdentVersion(0)),
            (7, 3, ElfError::BadOsAbi(3)),
            (8, 1, ElfError::BadAbiVersion(1)),
        ];
        for (at, value, want) in cases {
            let mut image = good();
            image[at] = value;
            assert_eq!(parse_err(&image), want);
        }
    }

    #[test]
    fn rejects_bad_file_header_fields() {
        let edit16 = |at: usize, v: u16| {
            let mut image = good();
            put16(&mut image, at, v);
            parse_err(&image)
        };
        assert_eq!(edit16(E_TYPE, ET_DYN), ElfError::DynamicExecutable);
        assert_eq!(edit16(E_TYPE, 1), ElfError::BadType(1));
        assert_eq!(edit16(E_MACHINE, 3), ElfError::BadMachine(3));
        assert_eq!(edit16(E_EHSIZE, 52), ElfError::BadHeaderSize(52));
        assert_eq!(edit16(E_PHENTSIZE, 32), ElfError::BadPhentsize(32));
        assert_eq!(edit16(E_PHNUM, PN_XNUM), ElfError::ExtendedPhnum);
        let mut image = good();
        put32(&mut image, E_VERSION, 2);
        assert_eq!(parse_err(&image), ElfError::BadVersion(2));
        let mut image = good();
        put32(&mut image, E_FLAGS, 4);
        assert_eq!(parse_err(&image), ElfError::BadFlags(4));
    }

    #[test]
    fn rejects_program_headers_outside_image() {
        let mut image = good();
        let len = image.len();
        put64(&mut image, E_PHOFF, len as u64 - 100);
        assert_eq!(
            parse_err(&image),
            ElfError::ProgramHeadersOutOfBounds { phoff: len as u64 - 100, phnum: 3, len }
        );
        put64(&mut image, E_PHOFF, u64::MAX - 10);
        assert!(matches!(parse_err(&image), ElfError::ProgramHeadersOutOfBounds { .. }));
        let mut image = good();
        put16(&mut image, E_PHNUM, 200);
        assert!(matches!(
            parse_err(&image),
            ElfError::ProgramHeadersOutOfBounds { phnum: 200, .. }
        ));
    }

    #[test]
    fn rejects_bad_section_header_fields() {
        let mut image = good();
        let len = image.len();
        put16(&mut image, E_SHNUM, 3);
        assert_eq!(
            parse_err(&image),
            ElfError::SectionHeadersOutOfBounds { shoff: 0, shnum: 3, len }
        );
        let mut image = good();
        put16(&mut image, E_SHSTRNDX, 1);
        assert_eq!(parse_err(&image), ElfError::BadShstrndx { shstrndx: 1, shnum: 0 });
        let mut image = good();
        put64(&mut image, E_SHOFF, 0x1000);
        put16(&mut image, E_SHNUM, 2);
        put16(&mut image, E_SHENTSIZE, 40);
        assert_eq!(parse_err(&image), ElfError::BadShentsize(40));
        put16(&mut image, E_SHENTSIZE, 64);
        put16(&mut image, E_SHSTRNDX, 2);
        assert_eq!(parse_err(&image), ElfError::BadShstrndx { shstrndx: 2, shnum: 2 });
        put16(&mut image, E_SHSTRNDX, 1);
        put64(&mut image, E_SHOFF, len as u64 - 64);
        assert_eq!(
            parse_err(&image),
            ElfError::SectionHeadersOutOfBounds { shoff: len as u64 - 64, shnum: 2, len }
        );
    }

    #[test]
    fn rejects_forbidden_segment_types() {
        assert_eq!(seg_err(2, Ph { p_type: PT_INTERP, ..STACK }), ElfError::InterpreterRequested);
        assert_eq!(seg_err(2, Ph { p_type: PT_DYNAMIC, ..STACK }), ElfError::DynamicSegment);
        assert_eq!(
            seg_err(2, Ph { p_type: PT_TLS, vaddr: 0x40_4000, ..STACK }),
            ElfError::TlsSegment { vaddr: 0x40_4000 }
        );
        assert_eq!(
            seg_err(2, Ph { p_type: PT_SHLIB, ..STACK }),
            ElfError::UnsupportedSegmentType(5)
        );
        assert_eq!(seg_err(2, Ph { p_type: 8, ..STACK }), ElfError::UnsupportedSegmentType(8));
        assert_eq!(
            seg_err(2, Ph { p_type: 0x8000_0000, ..STACK }),
            ElfError::UnsupportedSegmentType(0x8000_0000)
        );
        assert_eq!(
            seg_err(2, Ph { flags: PF_R | PF_W | PF_X, ..STACK }),
            ElfError::ExecutableStack
        );
    }

    #[test]
    fn rejects_bad_segment_flags() {
        assert_eq!(
            seg_err(1, Ph { flags: PF_R | PF_W | PF_X, ..DATA }),
            ElfError::WritableAndExecutable { vaddr: DATA.vaddr }
        );
        assert_eq!(
            seg_err(1, Ph { flags: PF_R | 0x10, ..DATA }),
            ElfError::BadSegmentFlags { vaddr: DATA.vaddr, flags: PF_R | 0x10 }
        );
    }

    #[test]
    fn rejects_filesz_above_memsz() {
        assert_eq!(
            seg_err(1, Ph { filesz: 0x2001, ..DATA }),
            ElfError::FileSizeExceedsMemSize { vaddr: DATA.vaddr, filesz: 0x2001, memsz: 0x2000 }
        );
    }

    #[test]
    fn rejects_file_bytes_outside_image() {
        let len = good().len();
        let mut phs = [TEXT, DATA, STACK];
        phs[1].filesz = 0x20;
        let mut image = build(&phs, ENTRY);
        image.truncate(len);
        assert_eq!(
            parse_err(&image),
            ElfError::SegmentOutsideImage { vaddr: DATA.vaddr, offset: 0x2000, filesz: 0x20, len }
        );
        // offset + filesz overflows u64 (the image then ends after TEXT).
        let offset = u64::MAX - 0xfff;
        assert_eq!(
            seg_err(1, Ph { offset, filesz: 0x1000, ..DATA }),
            ElfError::SegmentOutsideImage {
                vaddr: DATA.vaddr,
                offset,
                filesz: 0x1000,
                len: 0x1100
            }
        );
    }

    #[test]
    fn rejects_bad_alignment_and_incongruent_offsets() {
        assert_eq!(
            seg_err(1, Ph { align: 0x1800, ..DATA }),
            ElfError::BadAlignment { vaddr: DATA.vaddr, align: 0x1800 }
        );
        assert_eq!(
            seg_err(1, Ph { vaddr: 0x40_3008, ..DATA }),
            ElfError::NotCongruent { vaddr: 0x40_3008, offset: 0x2000 }
        );
    }

    #[test]
    fn rejects_addresses_outside_user_space() {
        assert_eq!(
            seg_err(1, Ph { vaddr: 0xf000, offset: 0x2000, ..DATA }),
            ElfError::BelowMinimum { vaddr: 0xf000, min_vaddr: 0x10000 }
        );
        // A segment starting mid-page below the limit is caught by its page start.
        assert_eq!(
            seg_err(1, Ph { vaddr: 0xf800, offset: 0x2800, filesz: 0, ..DATA }),
            ElfError::BelowMinimum { vaddr: 0xf800, min_vaddr: 0x10000 }
        );
        let top = LIMITS.user_top;
        assert_eq!(
            seg_err(1, Ph { vaddr: top - 0x1000, ..DATA }),
            ElfError::KernelRange { vaddr: top - 0x1000, end: top + 0x1000 }
        );
        // Ending mid-page just below the top still maps the whole page: fine.
        assert!(parse(
            &build(&[TEXT, Ph { vaddr: top - 0x2000, memsz: 0x1ff8, ..DATA }], ENTRY),
            &LIMITS
        )
        .is_ok());
        assert_eq!(
            seg_err(1, Ph { vaddr: 0xffff_ffff_8000_0000, offset: 0, ..DATA }),
            ElfError::KernelRange { vaddr: 0xffff_ffff_8000_0000, end: 0xffff_ffff_8000_2000 }
        );
        assert_eq!(
            seg_err(1, Ph { vaddr: u64::MAX - 0xfff, offset: 0x2000, memsz: 0x2000, ..DATA }),
            ElfError::AddressOverflow { vaddr: u64::MAX - 0xfff, memsz: 0x2000 }
        );
        // vaddr + memsz fits, but rounding it up to a page does not.
        assert_eq!(
            seg_err(1, Ph { vaddr: u64::MAX - 0xfff, offset: 0x2000, memsz: 0x10, ..DATA }),
            ElfError::AddressOverflow { vaddr: u64::MAX - 0xfff, memsz: 0x10 }
        );
    }

    #[test]
    fn rejects_overlapping_segments() {
        // DATA moved into TEXT's page.
        assert_eq!(
            seg_err(1, Ph { vaddr: 0x40_1800, offset: 0x2800, filesz: 0, ..DATA }),
            ElfError::SegmentOverlap { a_vaddr: TEXT.vaddr, b_vaddr: 0x40_1800 }
        );
        // Different pages of the same file page are fine; touching page
        // boundaries are fine.
        assert!(parse(&build(&[TEXT, Ph { vaddr: 0x40_2000, ..DATA }], ENTRY), &LIMITS).is_ok());
        // Overlap found regardless of table order.
        assert_eq!(
            parse_err(&build(&[Ph { vaddr: 0x40_0000, ..DATA }, TEXT], ENTRY)),
            ElfError::SegmentOverlap { a_vaddr: 0x40_0000, b_vaddr: TEXT.vaddr }
        );
    }

    #[test]
    fn rejects_missing_and_excess_segments() {
        assert_eq!(parse_err(&build(&[STACK], ENTRY)), ElfError::NoLoadSegments);
        assert_eq!(parse_err(&build(&[], ENTRY)), ElfError::NoLoadSegments);
        let many: Vec<Ph> =
            (0..9).map(|i| Ph { vaddr: 0x40_1000 + i * 0x1000, offset: 0x1000, ..TEXT }).collect();
        assert_eq!(parse_err(&build(&many, ENTRY)), ElfError::TooManySegments { count: 9, max: 8 });
        assert!(parse(&build(&many[..8], ENTRY), &LIMITS).is_ok());
    }

    #[test]
    fn rejects_entry_outside_text() {
        for entry in [0, TEXT.vaddr - 1, TEXT.vaddr + TEXT.memsz, DATA.vaddr, u64::MAX] {
            assert_eq!(
                parse_err(&build(&[TEXT, DATA], entry)),
                ElfError::EntryOutsideText { entry }
            );
        }
        assert!(parse(&build(&[TEXT, DATA], TEXT.vaddr + TEXT.memsz - 1), &LIMITS).is_ok());
    }

    #[test]
    fn error_messages_name_field_and_value() {
        assert_eq!(ElfError::BadMachine(3).to_string(), "elf: machine 3 is not x86_64 (62)");
        assert_eq!(
            ElfError::SegmentOverlap { a_vaddr: 0x1000, b_vaddr: 0x1800 }.to_string(),
            "elf: segments at 0x1000 and 0x1800 share a page"
        );
        assert_eq!(
            ElfError::KernelRange { vaddr: 0xffff_8000_0000_0000, end: 0xffff_8000_0000_1000 }
                .to_string(),
            "elf: segment at 0xffff800000000000 ends at 0xffff800000001000, beyond user space"
        );
        assert_eq!(
            ElfError::Truncated { what: "ELF file header", len: 40 }.to_string(),
            "elf: 40-byte image ends inside the ELF file header"
        );
        assert_eq!(
            ElfError::BadMagic(*b"\x7fELG").to_string(),
            "elf: magic [7f, 45, 4c, 47] is not 7f 45 4c 46"
        );
    }

    fn exercise(elf: &ElfImage) {
        for s in elf.segments() {
            assert!(s.file_bytes.len() as u64 <= s.memsz);
            assert!(s.page_start() >= LIMITS.min_vaddr && s.page_end() <= LIMITS.user_top);
            assert!(!(s.writable && s.executable));
        }
        assert!(elf
            .segments()
            .any(|s| s.executable && (s.vaddr..s.vaddr + s.memsz).contains(&elf.entry())));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn random_bytes_never_panic(
            mut blob in proptest::collection::vec(any::<u8>(), 0..1024),
            keep_header in any::<bool>(),
        ) {
            if keep_header && blob.len() >= 64 {
                blob[..64].copy_from_slice(&good()[..64]);
            }
            if let Ok(elf) = parse(&blob, &LIMITS) {
                exercise(&elf);
            }
        }

        #[test]
        fn mutated_images_never_panic(
            edits in proptest::collection::vec((0usize..EHDR_SIZE + 3 * PHDR_SIZE, any::<u8>()), 1..6),
            far_edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut image = good();
            for (at, byte) in edits {
                image[at] = byte;
            }
            for (at, byte) in far_edits {
                let i = at.index(image.len());
                image[i] = byte;
            }
            if truncate {
                image.truncate(cut.index(image.len() + 1));
            }
            if let Ok(elf) = parse(&image, &LIMITS) {
                exercise(&elf);
            }
        }

        #[test]
        fn field_values_never_panic(
            values in proptest::collection::vec((0usize..EHDR_SIZE / 8 + 3 * PHDR_SIZE / 8, any::<u64>()), 1..4),
            tricky in proptest::collection::vec(prop_oneof![
                Just(0u64), Just(1), Just(0xfff), Just(0x1000), Just(u64::MAX), Just(u64::MAX - 0xfff),
                Just(LIMITS.user_top), Just(LIMITS.user_top - 0x1000), Just(1 << 63),
            ], 0..3),
        ) {
            // Overwrite whole aligned 8-byte words with arbitrary or boundary values.
            let mut image = good();
            for (word, v) in values {
                put64(&mut image, word * 8, v);
            }
            for (k, v) in tricky.into_iter().enumerate() {
                put64(&mut image, EHDR_SIZE + 8 + k * 8, v);
            }
            if let Ok(elf) = parse(&image, &LIMITS) {
                exercise(&elf);
            }
        }
    }
}
