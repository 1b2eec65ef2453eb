//! The capOS kernel/user ABI: the layouts and numbers both sides of the
//! system-call boundary agree on. No dependencies; `#[repr(C)]` types only,
//! each with size and offset assertions.
#![no_std]
#![forbid(unsafe_code)]
