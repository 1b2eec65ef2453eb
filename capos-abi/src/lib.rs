//! The capOS kernel/user ABI: the layouts and numbers both sides of the
//! system-call boundary agree on. No dependencies; `#[repr(C)]` types only,
//! each with size and offset assertions.
//!
//! The normative description of the protocol built on these types is the
//! ring chapter of the capOS manual (`docs/src/ring.md`); every value there
//! comes from this crate.
//!
//! | module | contents |
//! |--------|----------|
//! | [`cap`] | [`CapId`], the user-visible name of a capability |
//! | [`ring`] | opcodes, [`Sqe`], [`Cqe`], [`RingHeader`], [`ring_layout`], size limits |
//! | [`errors`] | [`TransportError`] and [`STATUS_OK`] |
//! | [`syscall`] | the two system calls and their register convention |
//! | [`startup`] | the read-only startup page handed to every process |
//! | [`layout`] | fixed addresses of the user address space |
//! | [`resources`] | resource-profile bounds and defaults |
//!
//! Everything is re-exported at the crate root.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cap;
pub mod errors;
pub mod layout;
pub mod resources;
pub mod ring;
pub mod startup;
pub mod syscall;

pub use cap::*;
pub use errors::*;
pub use layout::*;
pub use ring::*;
pub use startup::*;
pub use syscall::*;

/// Reads a little-endian `u16` at `at`; `None` when `bytes` is too short.
pub(crate) fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian `u32` at `at`; `None` when `bytes` is too short.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian `u64` at `at`; `None` when `bytes` is too short.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// Writes `value` little-endian into `out[at..at + N]` (`out` must be long enough).
pub(crate) fn put<const N: usize>(out: &mut [u8], at: usize, value: [u8; N]) {
    out[at..at + N].copy_from_slice(&value);
}
