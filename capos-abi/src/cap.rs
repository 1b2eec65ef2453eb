//! [`CapId`]: how user code names a capability in its cap table.

use core::fmt;

/// The name of one capability in a process's cap table.
///
/// The low 32 bits are the slot index, the high 32 bits the slot's generation
/// at the time the capability was installed. The kernel bumps a slot's
/// generation whenever the slot is emptied, so an id kept after its
/// capability was released (or forged with a guessed generation) fails with
/// [`StaleCap`](crate::TransportError::StaleCap) instead of reaching whatever
/// occupies the slot next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct CapId(pub u64);

const _: () = assert!(core::mem::size_of::<CapId>() == 8);
const _: () = assert!(core::mem::align_of::<CapId>() == 8);

impl CapId {
    /// An id that names no capability: slot `u32::MAX`, generation `u32::MAX`.
    ///
    /// No cap table has `u32::MAX + 1` slots, so this never resolves; the
    /// kernel answers it with [`InvalidCap`](crate::TransportError::InvalidCap).
    pub const NULL: CapId = CapId(u64::MAX);

    /// The id of slot `index` at generation `generation`.
    pub const fn new(index: u32, generation: u32) -> CapId {
        CapId(((generation as u64) << 32) | index as u64)
    }

    /// The slot index (low 32 bits).
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation (high 32 bits).
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Whether this is [`CapId::NULL`].
    pub const fn is_null(self) -> bool {
        self.0 == CapId::NULL.0
    }
}

/// Shows `index:generation`, or `null` for [`CapId::NULL`].
impl fmt::Display for CapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            f.write_str("null")
        } else {
            write!(f, "{}:{}", self.index(), self.generation())
        }
    }
}

impl From<u64> for CapId {
    fn from(raw: u64) -> CapId {
        CapId(raw)
    }
}

impl From<CapId> for u64 {
    fn from(id: CapId) -> u64 {
        id.0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn packs_index_low_and_generation_high() {
        let id = CapId::new(7, 3);
        assert_eq!(id.0, 0x0000_0003_0000_0007);
        assert_eq!(id.index(), 7);
        assert_eq!(id.generation(), 3);
        let top = CapId::new(u32::MAX, u32::MAX);
        assert_eq!(top, CapId::NULL);
        assert!(top.is_null());
        assert!(!CapId::new(0, 0).is_null());
        for (i, g) in [(0, 0), (1, u32::MAX), (u32::MAX, 0), (0x1234_5678, 0x9abc_def0)] {
            let id = CapId::new(i, g);
            assert_eq!((id.index(), id.generation()), (i, g));
            assert_eq!(CapId::from(u64::from(id)), id);
        }
    }

    #[test]
    fn displays_index_and_generation() {
        assert_eq!(format!("{}", CapId::new(4, 9)), "4:9");
        assert_eq!(format!("{}", CapId::NULL), "null");
    }
}
