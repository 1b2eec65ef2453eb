//! The shared-buffer ring convention: layout, index math and checksums for
//! streaming data from a producer to a consumer through `SharedBuffer`
//! memory (the memory access itself is in `capos-rt::shared`).
//!
//! Two buffers, each written by one side only:
//!
//! - the **data buffer**, made by the producer (the consumer maps it through
//!   a read-only cap): a header page, then `slots` fixed data slots of
//!   `slot_bytes` each;
//! - the **tail buffer**, one page made by the consumer (the producer maps
//!   it through a read-only cap): the consumer's `tail` counter at offset 0.
//!
//! Header page of the data buffer (little-endian):
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0      | 4    | [`MAGIC`] |
//! | 4      | 4    | `slots` (a power of two, at most [`MAX_SLOTS`]) |
//! | 8      | 4    | `slot_bytes` (a multiple of 8) |
//! | 64     | 4    | `head`, the producer's counter (atomic) |
//! | 128    | 16 × `slots` | descriptors |
//!
//! A descriptor is `len: u32, flags: u32, checksum: u64`: the bytes of its
//! slot in use, [`FLAG_END`] on the last one of a stream, and the
//! [`checksum`] of those bytes (for [`FLAG_END`], of the whole stream: the
//! [`combine`] of every chunk's checksum).
//!
//! `head` and `tail` are free-running `u32` counters, as in the capability
//! ring ([`crate::ring`]): entry `n` lives in slot `n & (slots - 1)`; the
//! producer owns slots from `tail` up to `tail + slots`, the consumer those
//! from `tail` to `head`. The producer fills a slot and its descriptor,
//! then stores `head + 1` (release); the consumer loads `head` (acquire),
//! copies the slot out, then stores `tail + 1` (release). A peer's counter
//! is untrusted: [`occupancy`] refuses a pair more than `slots` apart and
//! [`check_len`] a length over the slot.
//!
//! Wake-ups go through one `Notification` both sides hold: the producer
//! signals [`BIT_DATA`] after publishing, the consumer [`BIT_SPACE`] after
//! consuming; each waits for its bit only after finding the ring empty
//! (consumer) or full (producer). Notification bits stay set until taken,
//! so a signal sent before the wait is not lost.
//!
//! Revocation unmaps the data buffer from the consumer at once, and a
//! touch of it afterwards faults the consumer's process. A producer that
//! means to revoke while the consumer runs signals [`BIT_STOP`] and waits
//! for [`BIT_STOPPED`] first; a consumer checks for [`BIT_STOP`] in every
//! wake-up before it reads the ring.

/// `"SBRG"`: the first word of a data buffer laid out by this convention.
pub const MAGIC: u32 = 0x4752_4253;
/// Offset of `slots` in the header.
pub const SLOTS_OFFSET: usize = 4;
/// Offset of `slot_bytes` in the header.
pub const SLOT_BYTES_OFFSET: usize = 8;
/// Offset of the producer's `head` counter.
pub const HEAD_OFFSET: usize = 64;
/// Offset of the consumer's `tail` counter in the tail buffer.
pub const TAIL_OFFSET: usize = 0;
/// Offset of the first descriptor.
pub const DESC_OFFSET: usize = 128;
/// Bytes per descriptor.
pub const DESC_BYTES: usize = 16;
/// Offset of the first data slot (the header is one page).
pub const DATA_OFFSET: usize = 4096;
/// Most slots a ring has (their descriptors fit the header page).
pub const MAX_SLOTS: u32 = 128;
/// Descriptor flag: the stream ends here.
pub const FLAG_END: u32 = 1;
/// Notification bit the producer signals when it published entries.
pub const BIT_DATA: u64 = 1 << 0;
/// Notification bit the consumer signals when it freed slots.
pub const BIT_SPACE: u64 = 1 << 1;
/// Notification bit the producer signals before it revokes the data
/// buffer: the consumer is to keep off its mapping from now on.
pub const BIT_STOP: u64 = 1 << 2;
/// Notification bit the consumer answers [`BIT_STOP`] with: it will not
/// touch the mapping again, and learns of the revocation from its next
/// call on the buffer's cap (`Revoked`).
pub const BIT_STOPPED: u64 = 1 << 3;

// The descriptors of the largest ring fit the header page, after `head`.
const _: () = assert!(DESC_OFFSET + MAX_SLOTS as usize * DESC_BYTES <= DATA_OFFSET);
const _: () = assert!(HEAD_OFFSET + 4 <= DESC_OFFSET);

/// Why a layout or a peer's counters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// `slots` is 0, not a power of two or over [`MAX_SLOTS`].
    BadSlots(u32),
    /// `slot_bytes` is 0 or not a multiple of 8.
    BadSlotBytes(u32),
    /// The slots do not fit in a buffer of this many bytes.
    TooSmall(u64),
    /// The header does not start with [`MAGIC`].
    BadMagic(u32),
    /// `head` and `tail` are more than `slots` apart.
    Corrupt {
        /// The producer's counter.
        head: u32,
        /// The consumer's counter.
        tail: u32,
    },
    /// A descriptor's length is over the slot size.
    BadLength(u32),
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadSlots(n) => write!(f, "{n} slots is not a power of two in 1..={MAX_SLOTS}"),
            Self::BadSlotBytes(n) => write!(f, "slot size {n} is not a nonzero multiple of 8"),
            Self::TooSmall(b) => write!(f, "a buffer of {b} bytes cannot hold the slots"),
            Self::BadMagic(m) => write!(f, "header magic {m:#x} is not {MAGIC:#x}"),
            Self::Corrupt { head, tail } => {
                write!(f, "head {head} and tail {tail} are more than the ring apart")
            }
            Self::BadLength(n) => write!(f, "descriptor length {n} is over the slot size"),
        }
    }
}

/// A ring's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Slots (a power of two).
    pub slots: u32,
    /// Bytes per slot.
    pub slot_bytes: u32,
}

impl Layout {
    /// A layout of `slots` slots of `slot_bytes` in a buffer of
    /// `buffer_bytes`, checked.
    pub fn new(slots: u32, slot_bytes: u32, buffer_bytes: u64) -> Result<Layout, RingError> {
        if slots == 0 || slots > MAX_SLOTS || !slots.is_power_of_two() {
            return Err(RingError::BadSlots(slots));
        }
        if slot_bytes == 0 || !slot_bytes.is_multiple_of(8) {
            return Err(RingError::BadSlotBytes(slot_bytes));
        }
        let layout = Layout { slots, slot_bytes };
        if layout.bytes() > buffer_bytes {
            return Err(RingError::TooSmall(buffer_bytes));
        }
        Ok(layout)
    }

    /// Bytes the ring needs: the header page and the slots.
    pub fn bytes(&self) -> u64 {
        DATA_OFFSET as u64 + self.slots as u64 * self.slot_bytes as u64
    }

    /// Slot of entry `index`.
    pub fn slot(&self, index: u32) -> u32 {
        index & (self.slots - 1)
    }

    /// Offset of entry `index`'s descriptor.
    pub fn desc_offset(&self, index: u32) -> usize {
        DESC_OFFSET + self.slot(index) as usize * DESC_BYTES
    }

    /// Offset of entry `index`'s data slot.
    pub fn data_offset(&self, index: u32) -> usize {
        DATA_OFFSET + self.slot(index) as usize * self.slot_bytes as usize
    }

    /// Entries published and not consumed, checked against the ring size.
    pub fn occupancy(&self, head: u32, tail: u32) -> Result<u32, RingError> {
        occupancy(head, tail, self.slots)
    }

    /// Slots the producer may fill now.
    pub fn free(&self, head: u32, tail: u32) -> Result<u32, RingError> {
        Ok(self.slots - self.occupancy(head, tail)?)
    }

    /// A descriptor length, checked against the slot size.
    pub fn check_len(&self, len: u32) -> Result<usize, RingError> {
        check_len(len, self.slot_bytes)
    }
}

/// Entries between `tail` and `head` (`head - tail`, wrapping), refused
/// when more than `slots`.
pub fn occupancy(head: u32, tail: u32, slots: u32) -> Result<u32, RingError> {
    let n = head.wrapping_sub(tail);
    if n > slots {
        return Err(RingError::Corrupt { head, tail });
    }
    Ok(n)
}

/// `len` as a slice length, refused when over `slot_bytes`.
pub fn check_len(len: u32, slot_bytes: u32) -> Result<usize, RingError> {
    if len > slot_bytes {
        return Err(RingError::BadLength(len));
    }
    Ok(len as usize)
}

/// A descriptor in its wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// Bytes of the slot in use.
    pub len: u32,
    /// [`FLAG_END`] or 0.
    pub flags: u32,
    /// Checksum of the bytes (of the stream, with [`FLAG_END`]).
    pub checksum: u64,
}

impl Desc {
    /// The 16 bytes of the descriptor.
    pub fn to_bytes(self) -> [u8; DESC_BYTES] {
        let mut b = [0u8; DESC_BYTES];
        b[0..4].copy_from_slice(&self.len.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    /// The descriptor in `b`.
    pub fn from_bytes(b: [u8; DESC_BYTES]) -> Desc {
        let word = |r: core::ops::Range<usize>| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[r]);
            u32::from_le_bytes(w)
        };
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[8..16]);
        Desc { len: word(0..4), flags: word(4..8), checksum: u64::from_le_bytes(c) }
    }
}

/// FNV-1a's 64-bit offset basis: the checksum of nothing.
pub const CHECKSUM_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// A checksum of `data`: FNV-1a over little-endian 64-bit words (the tail
/// shorter than a word byte by byte), so one multiply per 8 bytes.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h = CHECKSUM_SEED;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(PRIME);
    }
    h
}

/// The running stream checksum `total` with one more chunk's checksum.
pub fn combine(total: u64, chunk: u64) -> u64 {
    (total ^ chunk).wrapping_mul(PRIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layouts_are_checked() {
        assert_eq!(Layout::new(0, 8, 1 << 20), Err(RingError::BadSlots(0)));
        assert_eq!(Layout::new(3, 8, 1 << 20), Err(RingError::BadSlots(3)));
        assert_eq!(Layout::new(256, 8, 1 << 20), Err(RingError::BadSlots(256)));
        assert_eq!(Layout::new(4, 0, 1 << 20), Err(RingError::BadSlotBytes(0)));
        assert_eq!(Layout::new(4, 12, 1 << 20), Err(RingError::BadSlotBytes(12)));
        assert_eq!(Layout::new(16, 65536, 1 << 20), Err(RingError::TooSmall(1 << 20)));
        let l = Layout::new(16, 65536, 4096 + (1 << 20)).unwrap();
        assert_eq!(l.bytes(), 4096 + (1 << 20));
        assert_eq!(l.data_offset(17), DATA_OFFSET + 65536);
        assert_eq!(l.desc_offset(16), DESC_OFFSET);
    }

    #[test]
    fn counters_wrap() {
        let l = Layout::new(8, 8, 1 << 16).unwrap();
        assert_eq!(l.occupancy(3, u32::MAX - 2), Ok(6));
        assert_eq!(l.free(3, u32::MAX - 2), Ok(2));
        assert_eq!(l.occupancy(5, 5), Ok(0));
        assert_eq!(l.occupancy(4, 5), Err(RingError::Corrupt { head: 4, tail: 5 }));
        assert_eq!(l.occupancy(14, 5), Err(RingError::Corrupt { head: 14, tail: 5 }));
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(check_len(4096, 4096), Ok(4096));
        assert_eq!(check_len(4097, 4096), Err(RingError::BadLength(4097)));
    }

    #[test]
    fn checksums_see_every_byte_and_the_order() {
        let a = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut b = a;
        b[8] = 10;
        assert_ne!(checksum(&a), checksum(&b));
        b = a;
        b.swap(0, 1);
        assert_ne!(checksum(&a), checksum(&b));
        assert_eq!(checksum(&[]), CHECKSUM_SEED);
        assert_ne!(combine(combine(0, 1), 2), combine(combine(0, 2), 1));
    }

    proptest! {
        #[test]
        fn occupancy_within_the_ring_is_accepted(tail in any::<u32>(), n in 0u32..=128, shift in 0u32..8) {
            let slots = 1u32 << shift;
            let n = n % (slots + 1);
            let head = tail.wrapping_add(n);
            prop_assert_eq!(occupancy(head, tail, slots), Ok(n));
            // Each pending entry has its own slot.
            let l = Layout { slots, slot_bytes: 8 };
            let mut seen = std::collections::HashSet::new();
            for i in 0..n {
                prop_assert!(seen.insert(l.slot(tail.wrapping_add(i))));
            }
        }

        #[test]
        fn occupancy_past_the_ring_is_refused(tail in any::<u32>(), over in 1u32..=u32::MAX / 2, shift in 0u32..8) {
            let slots = 1u32 << shift;
            let head = tail.wrapping_add(slots).wrapping_add(over);
            prop_assert!(occupancy(head, tail, slots).is_err());
        }

        #[test]
        fn descriptors_round_trip(len in any::<u32>(), flags in any::<u32>(), checksum in any::<u64>()) {
            let d = Desc { len, flags, checksum };
            prop_assert_eq!(Desc::from_bytes(d.to_bytes()), d);
        }
    }
}
