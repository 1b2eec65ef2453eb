//! Pure logic shared by the capOS kernel and host tools.
//!
//! Everything here is `no_std`, allocation-free unless stated, and tested on the
//! host with `cargo test -p capos-lib`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cap_table;
pub mod cmdline;
pub mod elf;
pub mod escape;
pub mod frame_bitmap;
pub mod line_edit;
pub mod memmap;
pub mod multiboot2;
pub mod pci;
pub mod ring;
pub mod sched;
pub mod shared_ring;
pub mod shell;
pub mod time;
