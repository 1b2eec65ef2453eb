//! Boot-protocol adapters. Each turns what its loader hands over into one
//! [`BootInfo`]; nothing outside this module knows which loader ran.

pub mod multiboot2;

use spin::Once;

use capos_lib::memmap::MemoryMap;
use capos_lib::multiboot2::{Framebuffer, Rsdp};

/// Most boot modules kept.
pub const MAX_MODULES: usize = 64;

/// One boot module (a file the loader put in memory).
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// The name the loader gave it (its command line).
    pub name: &'static str,
    /// First byte, physical.
    pub start: u64,
    /// One past the last byte, physical.
    pub end: u64,
}

/// Everything the kernel needs from the boot loader.
pub struct BootInfo {
    /// Normalized physical memory map with the kernel image, the boot
    /// information and the modules carved out of usable memory.
    pub memory_map: MemoryMap,
    /// Boot modules, in loader order.
    pub modules: [Option<Module>; MAX_MODULES],
    /// Modules beyond [`MAX_MODULES`] that were ignored.
    pub modules_dropped: usize,
    /// Kernel command line ("" when absent).
    pub cmdline: &'static str,
    /// The command line was present but not UTF-8 (and was ignored).
    pub cmdline_invalid: bool,
    /// Copy of the ACPI RSDP, if the loader found one.
    pub rsdp: Option<Rsdp>,
    /// Linear framebuffer, if the loader set one up.
    pub framebuffer: Option<Framebuffer>,
    /// The loader's name.
    pub bootloader: &'static str,
    /// Boot-information tags of types the kernel does not use.
    pub unknown_tags: usize,
}

impl BootInfo {
    /// The modules present.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter().flatten()
    }
}

/// The kernel's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the boot loader handed over, recorded once at entry.
pub static INFO: Once<BootInfo> = Once::new();
