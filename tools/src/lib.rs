//! Host tools for building and testing capOS.
//!
//! - [`proof`]: the `qemu-proof` harness that boots a capOS image in QEMU and checks its
//!   serial output.
//! - [`codegen`]: `schema-codegen`, which generates `capos-schema/src/generated/` from
//!   `schema/capos.capnp`.

pub mod codegen;
pub mod proof;
