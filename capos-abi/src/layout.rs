//! Fixed addresses of every capOS user address space.
//!
//! ```text
//! USER_TOP            0x0000_8000_0000_0000  end of user space (exclusive)
//!                     (2 MiB - 4 KiB unmapped)
//! STARTUP_PAGE_ADDR   0x0000_7fff_ffe0_0000  startup page, 4 KiB, read-only
//!                     (unmapped)
//! RING_ADDR           0x0000_7fff_ffc0_0000  ring mapping, at most MAX_RING_BYTES
//!                     (unmapped)
//!                     (unmapped)
//! THREAD_RING_BASE    0x0000_7fff_ff10_0000  rings of threads 1.., THREAD_RING_STRIDE apart
//!                     (unmapped)
//! USER_STACK_TOP      0x0000_7fff_ff00_0000  initial stack pointer (exclusive top)
//! USER_STACK_BOTTOM   0x0000_7fff_feff_0000  lowest stack page (USER_STACK_PAGES pages)
//!                     one unmapped guard page below
//!   ...               program image, heap, other mappings
//! USER_MIN_VADDR      0x0000_0000_0001_0000  nothing is mapped below (null guard)
//! ```
//!
//! Program segments must lie in `USER_MIN_VADDR..USER_STACK_BOTTOM - PAGE_SIZE`.

use crate::{MAX_RING_BYTES, STARTUP_PAGE_SIZE};

/// Page size of every user mapping.
pub const PAGE_SIZE: u64 = 4096;

/// End of the user half of the address space (exclusive): the first
/// non-canonical address. Every user address is below it.
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Lowest address that may be mapped in a user address space; the range
/// below stays unmapped so null-pointer dereferences fault.
pub const USER_MIN_VADDR: u64 = 0x0000_0000_0001_0000;

/// Where the kernel maps the process's ring (header, SQ, CQ), read-write.
pub const RING_ADDR: u64 = 0x0000_7fff_ffc0_0000;

/// Most threads a process may have at once (its first thread included).
pub const MAX_THREADS: u32 = 32;

/// Where the ring of a process's thread slot `n` (1 ..= `MAX_THREADS - 1`)
/// is mapped: `THREAD_RING_BASE + (n - 1) * THREAD_RING_STRIDE`. Slot 0, the
/// first thread, uses [`RING_ADDR`]. A slot's ring stays mapped after its
/// thread ends and is reset for the next thread given that slot.
pub const THREAD_RING_BASE: u64 = 0x0000_7fff_ff10_0000;

/// Distance between two thread rings. A thread ring is at most
/// `THREAD_RING_STRIDE - PAGE_SIZE` bytes, so an unmapped page follows it.
pub const THREAD_RING_STRIDE: u64 = 0x1_0000;

/// Top of the initial user stack (exclusive); the initial `rsp`. 16-byte aligned.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ff00_0000;

/// Number of 4 KiB pages mapped for the initial user stack.
pub const USER_STACK_PAGES: u64 = 16;

/// Lowest address of the initial user stack. The page below it is left
/// unmapped as a guard.
pub const USER_STACK_BOTTOM: u64 = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;

const _: () = assert!(RING_ADDR.is_multiple_of(PAGE_SIZE));
const _: () =
    assert!(USER_STACK_TOP.is_multiple_of(16) && USER_STACK_TOP.is_multiple_of(PAGE_SIZE));
const _: () = assert!(USER_STACK_TOP <= RING_ADDR);
const _: () = assert!(RING_ADDR + MAX_RING_BYTES as u64 <= crate::STARTUP_PAGE_ADDR);
const _: () = assert!(crate::STARTUP_PAGE_ADDR.is_multiple_of(PAGE_SIZE));
const _: () = assert!(crate::STARTUP_PAGE_ADDR + STARTUP_PAGE_SIZE as u64 <= USER_TOP);
const _: () = assert!(USER_MIN_VADDR < USER_STACK_BOTTOM - PAGE_SIZE);
const _: () = assert!(USER_STACK_TOP < THREAD_RING_BASE);
const _: () =
    assert!(THREAD_RING_BASE + (MAX_THREADS as u64 - 1) * THREAD_RING_STRIDE <= RING_ADDR);
