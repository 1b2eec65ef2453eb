//! The capability ring: opcodes, submission and completion entries, the
//! shared header, and how they are laid out in the ring mapping.
//!
//! A process's ring is one contiguous, page-aligned mapping (at
//! [`RING_ADDR`](crate::RING_ADDR)) holding a [`RingHeader`] at offset 0, an
//! array of `sq_entries` [`Sqe`]s at `sqe_offset` and an array of
//! `cq_entries` [`Cqe`]s at `cqe_offset`; [`ring_layout`] computes the
//! offsets. Both entry counts are powers of two fixed at spawn.

use core::mem::{align_of, offset_of, size_of};

use crate::{put, read_u16, read_u32, read_u64, CapId, TransportError, PAGE_SIZE, STATUS_OK};

// ---------------------------------------------------------------------------
// Opcodes

/// Does nothing; completes with [`STATUS_OK`](crate::STATUS_OK). Only
/// `opcode`, `flags`, `reserved` and `user_data` are looked at.
pub const OP_NOP: u8 = 0;
/// Invokes method `method` of interface `interface_id` on cap `cap`.
pub const OP_CALL: u8 = 1;
/// Waits on an endpoint's serving cap for an incoming call; the buffer
/// receives a [`RecvHeader`] and the params message.
pub const OP_RECV: u8 = 2;
/// Answers a call received with [`OP_RECV`]: `results_addr` carries the call
/// id the `RECV` completion gave in `Cqe::aux`, `method` the status for the
/// caller (one of [`RETURN_STATUSES`]), `params_*` the results message.
pub const OP_RETURN: u8 = 3;
/// Drops the cap `cap` from the caller's cap table.
pub const OP_RELEASE: u8 = 4;
/// Reserved for promise pipelining; the kernel currently completes it with
/// [`BadOpcode`](crate::TransportError::BadOpcode).
pub const OP_PIPELINE: u8 = 5;

/// An SQE opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// [`OP_NOP`].
    Nop = OP_NOP,
    /// [`OP_CALL`].
    Call = OP_CALL,
    /// [`OP_RECV`].
    Recv = OP_RECV,
    /// [`OP_RETURN`].
    Return = OP_RETURN,
    /// [`OP_RELEASE`].
    Release = OP_RELEASE,
    /// [`OP_PIPELINE`]: reserved, not supported yet.
    Pipeline = OP_PIPELINE,
}

impl Opcode {
    /// Every defined opcode, in value order.
    pub const ALL: [Opcode; 6] = [
        Opcode::Nop,
        Opcode::Call,
        Opcode::Recv,
        Opcode::Return,
        Opcode::Release,
        Opcode::Pipeline,
    ];

    /// The opcode with value `value`; `None` for undefined values.
    pub const fn from_u8(value: u8) -> Option<Opcode> {
        Some(match value {
            OP_NOP => Opcode::Nop,
            OP_CALL => Opcode::Call,
            OP_RECV => Opcode::Recv,
            OP_RETURN => Opcode::Return,
            OP_RELEASE => Opcode::Release,
            OP_PIPELINE => Opcode::Pipeline,
            _ => return None,
        })
    }

    /// Whether the kernel carries out this opcode today ([`Opcode::Pipeline`]
    /// is defined but completes with `BadOpcode`).
    pub const fn is_supported(self) -> bool {
        !matches!(self, Opcode::Pipeline)
    }

    /// The opcode name in upper case, e.g. `"CALL"`.
    pub const fn name(self) -> &'static str {
        match self {
            Opcode::Nop => "NOP",
            Opcode::Call => "CALL",
            Opcode::Recv => "RECV",
            Opcode::Return => "RETURN",
            Opcode::Release => "RELEASE",
            Opcode::Pipeline => "PIPELINE",
        }
    }
}

// ---------------------------------------------------------------------------
// Limits and flags

/// Largest `params_len` the kernel accepts (64 KiB); more is `TooLarge`.
pub const MAX_PARAMS_LEN: u32 = 64 * 1024;
/// Largest `results_len` the kernel accepts (64 KiB); more is `TooLarge`.
pub const MAX_RESULTS_LEN: u32 = 64 * 1024;
/// Largest `xfer_count` (caps transferred by one SQE); more is `TooLarge`.
pub const MAX_XFER: u16 = 16;
/// Largest `sq_entries` or `cq_entries` of a ring.
pub const MAX_RING_ENTRIES: u32 = 4096;

/// The SQE flag bits this ABI version defines: none yet. Every bit of
/// `Sqe::flags` is reserved; an SQE with a bit set outside this mask
/// completes with [`Malformed`](crate::TransportError::Malformed).
pub const SQE_FLAGS_DEFINED: u8 = 0;

/// The ring header flag bits this ABI version defines: none yet. The kernel
/// writes `RingHeader::flags` as 0; user code must ignore bits it does not know.
pub const RING_FLAGS_DEFINED: u32 = 0;

// ---------------------------------------------------------------------------
// SQE

/// Size of one [`Sqe`] in bytes.
pub const SQE_SIZE: usize = 64;

/// A submission queue entry: one request from user code to the kernel.
///
/// Field use by opcode (fields an opcode does not use are ignored, except
/// `flags` and `reserved`, which must always hold only defined bits / zero):
///
/// | field | CALL | RECV | RETURN | RELEASE | NOP |
/// |---|---|---|---|---|---|
/// | `cap` | target cap | endpoint cap | endpoint cap | cap to drop | - |
/// | `interface_id` | expected interface | `Endpoint` | `Endpoint` | - | - |
/// | `method` | method ordinal | - | status for the caller | - | - |
/// | `params_addr/len` | params message | - | results message | - | - |
/// | `results_addr/len` | results buffer | incoming message buffer | call id / - | - | - |
/// | `xfer_addr/count` | caps sent ([`XferDesc`]) | - (must be 0) | result caps sent | - | - |
/// | `user_data` | echoed | echoed | echoed | echoed | echoed |
///
/// Caps received by RECV, and result caps, arrive as CapIds after the
/// message in the buffer (8-aligned), counted in `Cqe::cap_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(C, align(8))]
pub struct Sqe {
    /// An `OP_*` value.
    pub opcode: u8,
    /// Flag bits; none are defined yet ([`SQE_FLAGS_DEFINED`]).
    pub flags: u8,
    /// Method ordinal within `interface_id` (CALL).
    pub method: u16,
    /// Number of cap transfer descriptors at `xfer_addr`, at most [`MAX_XFER`].
    pub xfer_count: u16,
    /// Must be zero.
    pub reserved: u16,
    /// The target cap, a [`CapId`] value.
    pub cap: u64,
    /// The interface the caller expects `cap` to speak; checked against the cap
    /// table before anything else about the call.
    pub interface_id: u64,
    /// User address of the params message.
    pub params_addr: u64,
    /// Length of the params message, at most [`MAX_PARAMS_LEN`].
    pub params_len: u32,
    /// Capacity of the results buffer, at most [`MAX_RESULTS_LEN`].
    pub results_len: u32,
    /// User address of the results buffer.
    pub results_addr: u64,
    /// User address of the cap transfer descriptors.
    pub xfer_addr: u64,
    /// Opaque value copied into the matching [`Cqe`].
    pub user_data: u64,
}

const _: () = assert!(size_of::<Sqe>() == SQE_SIZE);
const _: () = assert!(align_of::<Sqe>() == 8);
const _: () = assert!(offset_of!(Sqe, opcode) == 0);
const _: () = assert!(offset_of!(Sqe, flags) == 1);
const _: () = assert!(offset_of!(Sqe, method) == 2);
const _: () = assert!(offset_of!(Sqe, xfer_count) == 4);
const _: () = assert!(offset_of!(Sqe, reserved) == 6);
const _: () = assert!(offset_of!(Sqe, cap) == 8);
const _: () = assert!(offset_of!(Sqe, interface_id) == 16);
const _: () = assert!(offset_of!(Sqe, params_addr) == 24);
const _: () = assert!(offset_of!(Sqe, params_len) == 32);
const _: () = assert!(offset_of!(Sqe, results_len) == 36);
const _: () = assert!(offset_of!(Sqe, results_addr) == 40);
const _: () = assert!(offset_of!(Sqe, xfer_addr) == 48);
const _: () = assert!(offset_of!(Sqe, user_data) == 56);

impl Sqe {
    /// The target cap as a [`CapId`].
    pub const fn cap_id(&self) -> CapId {
        CapId(self.cap)
    }

    /// Decodes an SQE from its little-endian wire form; `None` when `bytes`
    /// is shorter than [`SQE_SIZE`]. Extra bytes are ignored.
    pub fn from_bytes(bytes: &[u8]) -> Option<Sqe> {
        let b = bytes.get(..SQE_SIZE)?;
        Some(Sqe {
            opcode: b[0],
            flags: b[1],
            method: read_u16(b, 2)?,
            xfer_count: read_u16(b, 4)?,
            reserved: read_u16(b, 6)?,
            cap: read_u64(b, 8)?,
            interface_id: read_u64(b, 16)?,
            params_addr: read_u64(b, 24)?,
            params_len: read_u32(b, 32)?,
            results_len: read_u32(b, 36)?,
            results_addr: read_u64(b, 40)?,
            xfer_addr: read_u64(b, 48)?,
            user_data: read_u64(b, 56)?,
        })
    }

    /// The little-endian wire form (identical to the in-memory layout on x86_64).
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut b = [0u8; SQE_SIZE];
        b[0] = self.opcode;
        b[1] = self.flags;
        put(&mut b, 2, self.method.to_le_bytes());
        put(&mut b, 4, self.xfer_count.to_le_bytes());
        put(&mut b, 6, self.reserved.to_le_bytes());
        put(&mut b, 8, self.cap.to_le_bytes());
        put(&mut b, 16, self.interface_id.to_le_bytes());
        put(&mut b, 24, self.params_addr.to_le_bytes());
        put(&mut b, 32, self.params_len.to_le_bytes());
        put(&mut b, 36, self.results_len.to_le_bytes());
        put(&mut b, 40, self.results_addr.to_le_bytes());
        put(&mut b, 48, self.xfer_addr.to_le_bytes());
        put(&mut b, 56, self.user_data.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------
// CQE

/// Size of one [`Cqe`] in bytes.
pub const CQE_SIZE: usize = 32;

/// A completion queue entry: the kernel's answer to one [`Sqe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(C, align(8))]
pub struct Cqe {
    /// `user_data` of the SQE this completes.
    pub user_data: u64,
    /// [`STATUS_OK`](crate::STATUS_OK) or a [`TransportError`](crate::TransportError) code.
    pub status: u32,
    /// Bytes written to the results buffer (CALL) or message buffer (RECV).
    pub result_len: u32,
    /// Number of caps delivered with the results (CALL) or message (RECV).
    pub cap_count: u32,
    /// Zero.
    pub reserved: u32,
    /// Opcode-specific; the call id for RECV, otherwise zero.
    pub aux: u64,
}

const _: () = assert!(size_of::<Cqe>() == CQE_SIZE);
const _: () = assert!(align_of::<Cqe>() == 8);
const _: () = assert!(offset_of!(Cqe, user_data) == 0);
const _: () = assert!(offset_of!(Cqe, status) == 8);
const _: () = assert!(offset_of!(Cqe, result_len) == 12);
const _: () = assert!(offset_of!(Cqe, cap_count) == 16);
const _: () = assert!(offset_of!(Cqe, reserved) == 20);
const _: () = assert!(offset_of!(Cqe, aux) == 24);

impl Cqe {
    /// Decodes a CQE from its little-endian wire form; `None` when `bytes`
    /// is shorter than [`CQE_SIZE`]. Extra bytes are ignored.
    pub fn from_bytes(bytes: &[u8]) -> Option<Cqe> {
        let b = bytes.get(..CQE_SIZE)?;
        Some(Cqe {
            user_data: read_u64(b, 0)?,
            status: read_u32(b, 8)?,
            result_len: read_u32(b, 12)?,
            cap_count: read_u32(b, 16)?,
            reserved: read_u32(b, 20)?,
            aux: read_u64(b, 24)?,
        })
    }

    /// The little-endian wire form (identical to the in-memory layout on x86_64).
    pub fn to_bytes(&self) -> [u8; CQE_SIZE] {
        let mut b = [0u8; CQE_SIZE];
        put(&mut b, 0, self.user_data.to_le_bytes());
        put(&mut b, 8, self.status.to_le_bytes());
        put(&mut b, 12, self.result_len.to_le_bytes());
        put(&mut b, 16, self.cap_count.to_le_bytes());
        put(&mut b, 20, self.reserved.to_le_bytes());
        put(&mut b, 24, self.aux.to_le_bytes());
        b
    }
}

// ---------------------------------------------------------------------------
// Ring header and layout

/// Size of the [`RingHeader`] in bytes; the SQE array starts right after it.
pub const RING_HEADER_SIZE: usize = 64;

/// The header at offset 0 of the ring mapping.
///
/// The fields are plain `u32`s; both sides access the counters through
/// atomic loads and stores on pointers into the shared mapping.
///
/// Ownership: user code writes `sq_tail` and `cq_head`; the kernel writes
/// `sq_head`, `cq_tail` and `cq_overflow`. Everything else is written once
/// by the kernel at spawn and must not be changed. The kernel keeps its own
/// copies of every field it owns and of the sizes, and never reads them back
/// from the shared mapping.
///
/// `sq_head`, `sq_tail`, `cq_head` and `cq_tail` are free-running counters:
/// they only grow (wrapping at 2^32), and an entry's slot is `counter & mask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(C)]
pub struct RingHeader {
    /// Count of SQEs the kernel has consumed (kernel-written).
    pub sq_head: u32,
    /// Count of SQEs user code has submitted (user-written).
    pub sq_tail: u32,
    /// Count of CQEs user code has consumed (user-written).
    pub cq_head: u32,
    /// Count of CQEs the kernel has posted (kernel-written).
    pub cq_tail: u32,
    /// Number of SQE slots, a power of two.
    pub sq_entries: u32,
    /// Number of CQE slots, a power of two.
    pub cq_entries: u32,
    /// `sq_entries - 1`.
    pub sq_mask: u32,
    /// `cq_entries - 1`.
    pub cq_mask: u32,
    /// Ring flag bits ([`RING_FLAGS_DEFINED`]); currently always 0.
    pub flags: u32,
    /// Completions the kernel had to drop because the completion queue
    /// appeared full (kernel-written; stays 0 for a well-behaved process).
    pub cq_overflow: u32,
    /// Byte offset of the SQE array from the start of the ring.
    pub sqe_offset: u32,
    /// Byte offset of the CQE array from the start of the ring.
    pub cqe_offset: u32,
    /// Zero.
    pub reserved: [u32; 4],
}

const _: () = assert!(size_of::<RingHeader>() == RING_HEADER_SIZE);
const _: () = assert!(align_of::<RingHeader>() == 4);
const _: () = assert!(offset_of!(RingHeader, sq_head) == 0);
const _: () = assert!(offset_of!(RingHeader, sq_tail) == 4);
const _: () = assert!(offset_of!(RingHeader, cq_head) == 8);
const _: () = assert!(offset_of!(RingHeader, cq_tail) == 12);
const _: () = assert!(offset_of!(RingHeader, sq_entries) == 16);
const _: () = assert!(offset_of!(RingHeader, cq_entries) == 20);
const _: () = assert!(offset_of!(RingHeader, sq_mask) == 24);
const _: () = assert!(offset_of!(RingHeader, cq_mask) == 28);
const _: () = assert!(offset_of!(RingHeader, flags) == 32);
const _: () = assert!(offset_of!(RingHeader, cq_overflow) == 36);
const _: () = assert!(offset_of!(RingHeader, sqe_offset) == 40);
const _: () = assert!(offset_of!(RingHeader, cqe_offset) == 44);
const _: () = assert!(offset_of!(RingHeader, reserved) == 48);

impl RingHeader {
    /// The header the kernel writes at spawn for a ring of the given sizes:
    /// all counters 0, masks and offsets from [`ring_layout`]. `None` when
    /// the sizes are not allowed.
    pub const fn new(sq_entries: u32, cq_entries: u32) -> Option<RingHeader> {
        match ring_layout(sq_entries, cq_entries) {
            Some(layout) => Some(RingHeader {
                sq_head: 0,
                sq_tail: 0,
                cq_head: 0,
                cq_tail: 0,
                sq_entries,
                cq_entries,
                sq_mask: sq_entries - 1,
                cq_mask: cq_entries - 1,
                flags: 0,
                cq_overflow: 0,
                sqe_offset: layout.sqe_offset,
                cqe_offset: layout.cqe_offset,
                reserved: [0; 4],
            }),
            None => None,
        }
    }
}

/// Where the parts of a ring lie within its mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingLayout {
    /// Byte offset of the SQE array (right after the header).
    pub sqe_offset: u32,
    /// Byte offset of the CQE array (right after the SQE array).
    pub cqe_offset: u32,
    /// Size of the whole mapping, rounded up to a multiple of 4096 bytes.
    pub total_bytes: u32,
}

/// Whether `entries` is an allowed SQ or CQ size: a power of two in
/// `1..=MAX_RING_ENTRIES`.
pub const fn valid_ring_entries(entries: u32) -> bool {
    entries.is_power_of_two() && entries <= MAX_RING_ENTRIES
}

/// The layout of a ring with `sq_entries` SQEs and `cq_entries` CQEs:
/// header at 0, SQE array at 64, CQE array after it, total rounded up to a
/// page. `None` unless both counts are powers of two in `1..=4096`.
pub const fn ring_layout(sq_entries: u32, cq_entries: u32) -> Option<RingLayout> {
    if !valid_ring_entries(sq_entries) || !valid_ring_entries(cq_entries) {
        return None;
    }
    // With at most 4096 entries each, every value fits comfortably in u32.
    let sqe_offset = RING_HEADER_SIZE as u32;
    let cqe_offset = sqe_offset + sq_entries * SQE_SIZE as u32;
    let end = cqe_offset + cq_entries * CQE_SIZE as u32;
    let page = PAGE_SIZE as u32;
    let total_bytes = end.div_ceil(page) * page;
    Some(RingLayout { sqe_offset, cqe_offset, total_bytes })
}

/// Where the CapIds delivered with a message of `len` bytes start: the next
/// multiple of 8 (result caps of a CALL, caps transferred to a RECV).
pub const fn caps_offset(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The CapIds a completion delivered after its `result_len`-byte message in
/// `buf`: `cap_count` little-endian u64 at [`caps_offset`]. `None` when they
/// do not lie inside `buf`.
pub fn delivered_caps(
    buf: &[u8],
    result_len: u32,
    cap_count: u32,
) -> Option<impl Iterator<Item = u64> + '_> {
    let at = caps_offset(result_len as usize);
    let bytes = buf.get(at..at.checked_add(cap_count as usize * 8)?)?;
    Some(bytes.chunks_exact(8).map(|b| read_u64(b, 0).unwrap_or(0)))
}

/// Bytes of one [`XferDesc`].
pub const XFER_DESC_SIZE: usize = 16;
/// [`XferDesc::mode`]: the sender keeps the cap; the receiver gets a copy.
pub const XFER_COPY: u32 = 0;
/// [`XferDesc::mode`]: the cap leaves the sender's table.
pub const XFER_MOVE: u32 = 1;

/// One cap sent with a CALL (to an endpoint, or to a kernel object that takes
/// caps) or a RETURN: `xfer_count` of these at `xfer_addr`. All descriptors
/// are checked before any cap moves: a cap the sender does not hold, an
/// unknown mode, a nonzero `reserved` or the same cap twice fails the whole
/// SQE and leaves every table as it was.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct XferDesc {
    /// The cap, a [`CapId`] value in the sender's table.
    pub cap: u64,
    /// [`XFER_COPY`] or [`XFER_MOVE`].
    pub mode: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = assert!(size_of::<XferDesc>() == XFER_DESC_SIZE);
const _: () = assert!(offset_of!(XferDesc, mode) == 8);

impl XferDesc {
    /// Decodes a descriptor from its 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<XferDesc> {
        Some(XferDesc {
            cap: read_u64(bytes, 0)?,
            mode: read_u32(bytes, 8)?,
            reserved: read_u32(bytes, 12)?,
        })
    }

    /// Encodes the descriptor.
    pub fn to_bytes(&self) -> [u8; XFER_DESC_SIZE] {
        let mut b = [0u8; XFER_DESC_SIZE];
        b[0..8].copy_from_slice(&self.cap.to_le_bytes());
        b[8..12].copy_from_slice(&self.mode.to_le_bytes());
        b[12..16].copy_from_slice(&self.reserved.to_le_bytes());
        b
    }
}

/// Bytes of [`RecvHeader`] at the start of a RECV buffer.
pub const RECV_HEADER_SIZE: usize = 40;

/// Largest RECV buffer: room for the header, the largest params message and
/// the CapIds of the most caps a call may transfer. (RECV's `results_len`
/// is checked against this, not [`MAX_RESULTS_LEN`].)
pub const MAX_RECV_LEN: u32 = RECV_HEADER_SIZE as u32 + MAX_PARAMS_LEN + 8 * MAX_XFER as u32;

/// What a server learns about a call it receives: written by the kernel at
/// the start of the RECV buffer, followed by the call's params message (and
/// then, 8-aligned, the CapIds of caps transferred with it). The cookie and
/// the caller reference come from the kernel, never from the caller's bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RecvHeader {
    /// The call id a RETURN must name (also in `Cqe::aux`).
    pub call_id: u64,
    /// The interface the caller's cap speaks.
    pub interface_id: u64,
    /// The cookie the server chose when it minted the caller's cap.
    pub cookie: u64,
    /// An opaque, per-endpoint reference to the calling process: stable for
    /// one caller, unrelated across endpoints.
    pub caller: u64,
    /// The method ordinal.
    pub method: u16,
    /// Zero.
    pub reserved: [u16; 3],
}

const _: () = assert!(size_of::<RecvHeader>() == RECV_HEADER_SIZE);
const _: () = assert!(offset_of!(RecvHeader, call_id) == 0);
const _: () = assert!(offset_of!(RecvHeader, interface_id) == 8);
const _: () = assert!(offset_of!(RecvHeader, cookie) == 16);
const _: () = assert!(offset_of!(RecvHeader, caller) == 24);
const _: () = assert!(offset_of!(RecvHeader, method) == 32);

impl RecvHeader {
    /// Decodes a header from the first [`RECV_HEADER_SIZE`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<RecvHeader> {
        let b = bytes.get(..RECV_HEADER_SIZE)?;
        Some(RecvHeader {
            call_id: read_u64(b, 0)?,
            interface_id: read_u64(b, 8)?,
            cookie: read_u64(b, 16)?,
            caller: read_u64(b, 24)?,
            method: read_u16(b, 32)?,
            reserved: [0; 3],
        })
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; RECV_HEADER_SIZE] {
        let mut b = [0u8; RECV_HEADER_SIZE];
        b[0..8].copy_from_slice(&self.call_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.interface_id.to_le_bytes());
        b[16..24].copy_from_slice(&self.cookie.to_le_bytes());
        b[24..32].copy_from_slice(&self.caller.to_le_bytes());
        b[32..34].copy_from_slice(&self.method.to_le_bytes());
        b
    }
}

/// Statuses a RETURN may give the caller (in the SQE's `method` field): OK,
/// or the server's verdict on the request.
pub const RETURN_STATUSES: [u32; 4] = [
    STATUS_OK,
    TransportError::BadMethod as u32,
    TransportError::Malformed as u32,
    TransportError::AppError as u32,
];

/// Size of the largest ring mapping (4096 SQEs and 4096 CQEs).
pub const MAX_RING_BYTES: u32 = match ring_layout(MAX_RING_ENTRIES, MAX_RING_ENTRIES) {
    Some(layout) => layout.total_bytes,
    None => panic!("the largest ring size must be valid"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_caps_follow_the_message_8_aligned() {
        let mut buf = [0u8; 40];
        buf[16..24].copy_from_slice(&7u64.to_le_bytes());
        buf[24..32].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(caps_offset(13), 16);
        assert_eq!(caps_offset(16), 16);
        let mut caps = delivered_caps(&buf, 13, 2).unwrap();
        assert_eq!((caps.next(), caps.next(), caps.next()), (Some(7), Some(9), None));
        assert!(delivered_caps(&buf, 13, 4).is_none(), "caps past the buffer");
        assert!(delivered_caps(&buf, u32::MAX, 1).is_none());
    }

    #[test]
    fn opcodes_round_trip() {
        for (i, op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(*op as u8, i as u8);
            assert_eq!(Opcode::from_u8(i as u8), Some(*op));
        }
        for v in 6..=u8::MAX {
            assert_eq!(Opcode::from_u8(v), None, "opcode {v} must be undefined");
        }
        assert!(!Opcode::Pipeline.is_supported());
        assert!(Opcode::ALL[..5].iter().all(|op| op.is_supported()));
        assert_eq!(Opcode::Release.name(), "RELEASE");
    }

    #[test]
    fn sqe_wire_form_matches_layout() {
        let sqe = Sqe {
            opcode: OP_CALL,
            flags: 0xa5,
            method: 0x0102,
            xfer_count: 0x0304,
            reserved: 0x0506,
            cap: CapId::new(3, 9).0,
            interface_id: 0x1112_1314_1516_1718,
            params_addr: 0x2122_2324_2526_2728,
            params_len: 0x3132_3334,
            results_len: 0x4142_4344,
            results_addr: 0x5152_5354_5556_5758,
            xfer_addr: 0x6162_6364_6566_6768,
            user_data: 0x7172_7374_7576_7778,
        };
        let b = sqe.to_bytes();
        assert_eq!(b[0], OP_CALL);
        assert_eq!(b[1], 0xa5);
        assert_eq!(&b[2..4], &[0x02, 0x01]);
        assert_eq!(&b[8..16], &CapId::new(3, 9).0.to_le_bytes());
        assert_eq!(b[32], 0x34);
        assert_eq!(b[63], 0x71);
        assert_eq!(Sqe::from_bytes(&b), Some(sqe));
        assert_eq!(Sqe::from_bytes(&b[..63]), None);
        assert_eq!(sqe.cap_id(), CapId::new(3, 9));
    }

    #[test]
    fn cqe_wire_form_matches_layout() {
        let cqe = Cqe {
            user_data: 0xdead_beef,
            status: 6,
            result_len: 40,
            cap_count: 2,
            reserved: 0,
            aux: 77,
        };
        let b = cqe.to_bytes();
        assert_eq!(&b[0..8], &0xdead_beefu64.to_le_bytes());
        assert_eq!(&b[8..12], &6u32.to_le_bytes());
        assert_eq!(&b[24..32], &77u64.to_le_bytes());
        assert_eq!(Cqe::from_bytes(&b), Some(cqe));
        assert_eq!(Cqe::from_bytes(&b[..31]), None);
    }

    #[test]
    fn ring_layout_of_smallest_and_largest_rings() {
        let one = ring_layout(1, 1).unwrap();
        assert_eq!(one, RingLayout { sqe_offset: 64, cqe_offset: 128, total_bytes: 4096 });
        let typical = ring_layout(64, 128).unwrap();
        assert_eq!(typical.cqe_offset, 64 + 64 * 64);
        assert_eq!(typical.total_bytes, 12288); // 64 + 4096 + 4096 = 8256 -> 3 pages
        let largest = ring_layout(4096, 4096).unwrap();
        assert_eq!(largest.cqe_offset, 64 + 4096 * 64);
        assert_eq!(largest.total_bytes, 397_312); // 64 + 262144 + 131072 = 393280 -> 97 pages
        assert_eq!(MAX_RING_BYTES, largest.total_bytes);
        // Just under and just over one page.
        assert_eq!(ring_layout(16, 64).unwrap().total_bytes, 4096); // 64 + 1024 + 2048
        assert_eq!(ring_layout(32, 64).unwrap().total_bytes, 8192); // 64 + 2048 + 2048
    }

    #[test]
    fn ring_layout_rejects_bad_sizes() {
        for bad in [0, 3, 5, 4095, 8192, 1 << 31, u32::MAX] {
            assert_eq!(ring_layout(bad, 8), None, "sq_entries {bad}");
            assert_eq!(ring_layout(8, bad), None, "cq_entries {bad}");
            assert!(RingHeader::new(bad, 8).is_none());
        }
        for e in 0..=12 {
            assert!(ring_layout(1 << e, 1 << (12 - e)).is_some());
        }
    }

    #[test]
    fn ring_header_new_fills_sizes() {
        let h = RingHeader::new(32, 64).unwrap();
        assert_eq!((h.sq_entries, h.sq_mask, h.cq_entries, h.cq_mask), (32, 31, 64, 63));
        assert_eq!((h.sqe_offset, h.cqe_offset), (64, 64 + 32 * 64));
        assert_eq!(
            (h.sq_head, h.sq_tail, h.cq_head, h.cq_tail, h.flags, h.cq_overflow),
            (0, 0, 0, 0, 0, 0)
        );
    }
}
