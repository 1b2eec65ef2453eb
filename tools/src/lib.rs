//! Host tools for building and testing capOS.
//!
//! - [`proof`]: the `qemu-proof` harness that boots a capOS image in QEMU and checks its
//!   serial output.

pub mod proof;
