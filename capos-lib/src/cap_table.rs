//! Generation-tagged capability table.
//!
//! A [`CapTable`] is a fixed array of `N` slots. Each slot holds an optional
//! entry and a generation counter. Inserting an entry hands out a
//! [`CapId`] naming the slot and its current generation; removing it bumps
//! the generation, so every id that named the old entry fails with
//! [`CapError::StaleCap`] from then on, even after the slot is reused. A
//! slot's generation repeats only after 2^32 removals from that slot.
//!
//! The table never allocates: the kernel embeds one per process.

use core::fmt;

use capos_abi::{CapId, TransportError};

/// Why a [`CapTable`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// The id's slot index is out of range, or the slot is empty.
    InvalidCap {
        /// The slot index the id named.
        index: u32,
    },
    /// The id's generation does not match the slot: the entry it named was removed.
    StaleCap {
        /// The slot index the id named.
        index: u32,
        /// The slot's current generation.
        expected: u32,
        /// The generation the id carried.
        got: u32,
    },
    /// Every slot the table may use is occupied (its capacity, or the
    /// smaller limit it was made with).
    TableFull {
        /// Number of slots the table may use.
        capacity: usize,
    },
}

impl CapError {
    /// The transport error a ring operation completes with for this failure
    /// (`TableFull` becomes `QuotaExceeded`: cap slots are a resource of the
    /// holder's profile).
    pub const fn transport_error(self) -> TransportError {
        match self {
            CapError::InvalidCap { .. } => TransportError::InvalidCap,
            CapError::StaleCap { .. } => TransportError::StaleCap,
            CapError::TableFull { .. } => TransportError::QuotaExceeded,
        }
    }
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CapError::InvalidCap { index } => {
                write!(f, "cap slot {index} is out of range or empty")
            }
            CapError::StaleCap { index, expected, got } => {
                write!(f, "cap {index}:{got} is stale: slot {index} is at generation {expected}")
            }
            CapError::TableFull { capacity } => {
                write!(f, "cap table is full (all {capacity} slots in use)")
            }
        }
    }
}

impl From<CapError> for TransportError {
    fn from(e: CapError) -> TransportError {
        e.transport_error()
    }
}

/// One slot of a [`CapTable`].
#[derive(Debug, Clone)]
struct Slot<T> {
    /// Generation an id must carry to name this slot's entry.
    generation: u32,
    entry: Option<T>,
}

/// A fixed-capacity table of `N` capability slots holding `T`s.
///
/// `N` may be at most `u32::MAX`, so [`CapId::NULL`] (slot `u32::MAX`)
/// never resolves.
#[derive(Debug, Clone)]
pub struct CapTable<T, const N: usize> {
    slots: [Slot<T>; N],
    len: usize,
    /// Slots in use at most (at most `N`).
    limit: usize,
}

impl<T, const N: usize> Default for CapTable<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> CapTable<T, N> {
    /// An empty table; every slot starts at generation 0.
    pub fn new() -> Self {
        const { assert!(N <= u32::MAX as usize, "a cap table has at most u32::MAX slots") };
        CapTable {
            slots: core::array::from_fn(|_| Slot { generation: 0, entry: None }),
            len: 0,
            limit: N,
        }
    }

    /// An empty table that holds at most `limit` entries (and never more
    /// than `N`).
    pub fn with_limit(limit: usize) -> Self {
        let mut t = Self::new();
        t.limit = limit.min(N);
        t
    }

    /// Entries it may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Stores `value` in the lowest free slot and returns its id.
    pub fn insert(&mut self, value: T) -> Result<CapId, CapError> {
        if self.len >= self.limit {
            return Err(CapError::TableFull { capacity: self.limit });
        }
        let (index, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.entry.is_none())
            .ok_or(CapError::TableFull { capacity: N })?;
        slot.entry = Some(value);
        self.len += 1;
        // `N <= u32::MAX` (checked in `new`), so every index fits.
        Ok(CapId::new(index as u32, slot.generation))
    }

    /// The slot `id` names, if its generation matches; the entry may be empty.
    fn slot_index(&self, id: CapId) -> Result<usize, CapError> {
        let index = id.index();
        let slot = self.slots.get(index as usize).ok_or(CapError::InvalidCap { index })?;
        if slot.generation != id.generation() {
            return Err(CapError::StaleCap {
                index,
                expected: slot.generation,
                got: id.generation(),
            });
        }
        if slot.entry.is_none() {
            return Err(CapError::InvalidCap { index });
        }
        Ok(index as usize)
    }

    /// The entry `id` names.
    pub fn get(&self, id: CapId) -> Result<&T, CapError> {
        let i = self.slot_index(id)?;
        self.slots[i].entry.as_ref().ok_or(CapError::InvalidCap { index: id.index() })
    }

    /// The entry `id` names, mutably.
    pub fn get_mut(&mut self, id: CapId) -> Result<&mut T, CapError> {
        let i = self.slot_index(id)?;
        self.slots[i].entry.as_mut().ok_or(CapError::InvalidCap { index: id.index() })
    }

    /// Whether `id` names a live entry.
    pub fn contains(&self, id: CapId) -> bool {
        self.slot_index(id).is_ok()
    }

    /// Removes and returns the entry `id` names, bumping the slot's
    /// generation so `id` (and every copy of it) goes stale.
    pub fn remove(&mut self, id: CapId) -> Result<T, CapError> {
        let i = self.slot_index(id)?;
        let slot = &mut self.slots[i];
        let value = slot.entry.take().ok_or(CapError::InvalidCap { index: id.index() })?;
        slot.generation = slot.generation.wrapping_add(1);
        self.len -= 1;
        Ok(value)
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slots (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The live entries with their ids, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (CapId, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.entry.as_ref().map(|value| (CapId::new(index as u32, slot.generation), value))
        })
    }

    /// Removes every entry (as at process exit), yielding them in slot order
    /// and bumping each emptied slot's generation. Entries not consumed when
    /// the iterator is dropped are removed and dropped too.
    pub fn drain_all(&mut self) -> Drain<'_, T> {
        Drain { slots: self.slots.iter_mut(), len: &mut self.len }
    }
}

/// Iterator returned by [`CapTable::drain_all`].
#[derive(Debug)]
pub struct Drain<'a, T> {
    slots: core::slice::IterMut<'a, Slot<T>>,
    len: &'a mut usize,
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        for slot in self.slots.by_ref() {
            if let Some(value) = slot.entry.take() {
                slot.generation = slot.generation.wrapping_add(1);
                *self.len -= 1;
                return Some(value);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (*self.len, Some(*self.len))
    }
}

impl<T> ExactSizeIterator for Drain<'_, T> {}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        for _ in self.by_ref() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn insert_get_remove() {
        let mut t: CapTable<&str, 4> = CapTable::new();
        assert!(t.is_empty());
        assert_eq!(t.capacity(), 4);
        let a = t.insert("a").unwrap();
        let b = t.insert("b").unwrap();
        assert_eq!((a, b), (CapId::new(0, 0), CapId::new(1, 0)));
        assert_eq!(t.get(a), Ok(&"a"));
        *t.get_mut(b).unwrap() = "B";
        assert_eq!(t.get(b), Ok(&"B"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(a), Ok("a"));
        assert_eq!(t.len(), 1);
        assert!(!t.contains(a));
        assert!(t.contains(b));
    }

    #[test]
    fn removed_id_goes_stale_and_reused_slot_gets_new_generation() {
        let mut t: CapTable<u32, 2> = CapTable::new();
        let a = t.insert(1).unwrap();
        t.remove(a).unwrap();
        assert_eq!(t.get(a), Err(CapError::StaleCap { index: 0, expected: 1, got: 0 }));
        assert_eq!(t.remove(a), Err(CapError::StaleCap { index: 0, expected: 1, got: 0 }));
        let c = t.insert(2).unwrap();
        assert_eq!(c, CapId::new(0, 1));
        assert_eq!(t.get(a), Err(CapError::StaleCap { index: 0, expected: 1, got: 0 }));
        assert_eq!(t.get(c), Ok(&2));
    }

    #[test]
    fn error_classes() {
        let mut t: CapTable<u32, 2> = CapTable::new();
        assert_eq!(t.get(CapId::new(2, 0)), Err(CapError::InvalidCap { index: 2 }));
        assert_eq!(t.get(CapId::NULL), Err(CapError::InvalidCap { index: u32::MAX }));
        // Empty slot at the right generation: never handed out, so invalid.
        assert_eq!(t.get(CapId::new(1, 0)), Err(CapError::InvalidCap { index: 1 }));
        assert_eq!(
            t.get(CapId::new(1, 7)),
            Err(CapError::StaleCap { index: 1, expected: 0, got: 7 })
        );
        t.insert(0).unwrap();
        t.insert(0).unwrap();
        assert_eq!(t.insert(9), Err(CapError::TableFull { capacity: 2 }));
        assert_eq!(
            TransportError::from(CapError::TableFull { capacity: 2 }),
            TransportError::QuotaExceeded
        );
        assert_eq!(CapError::InvalidCap { index: 0 }.transport_error(), TransportError::InvalidCap);
        assert_eq!(
            CapError::StaleCap { index: 0, expected: 1, got: 0 }.transport_error(),
            TransportError::StaleCap
        );
    }

    #[test]
    fn a_limit_below_the_capacity_bounds_inserts() {
        let mut t: CapTable<u32, 8> = CapTable::with_limit(3);
        assert_eq!(t.limit(), 3);
        let ids: std::vec::Vec<CapId> = (0..3).map(|v| t.insert(v).unwrap()).collect();
        assert_eq!(t.insert(9), Err(CapError::TableFull { capacity: 3 }));
        t.remove(ids[1]).unwrap();
        assert!(t.insert(9).is_ok());
        let big: CapTable<u32, 4> = CapTable::with_limit(100);
        assert_eq!(big.limit(), 4);
    }

    #[test]
    fn zero_capacity_table_is_always_full() {
        let mut t: CapTable<u8, 0> = CapTable::new();
        assert_eq!(t.insert(1), Err(CapError::TableFull { capacity: 0 }));
        assert_eq!(t.get(CapId::new(0, 0)), Err(CapError::InvalidCap { index: 0 }));
    }

    #[test]
    fn generation_wraps_after_2_pow_32_removals() {
        let mut t: CapTable<u8, 1> = CapTable::new();
        t.slots[0].generation = u32::MAX;
        let id = t.insert(1).unwrap();
        assert_eq!(id, CapId::new(0, u32::MAX));
        t.remove(id).unwrap();
        assert_eq!(t.insert(2).unwrap(), CapId::new(0, 0));
    }

    #[test]
    fn iter_lists_live_entries_in_slot_order() {
        let mut t: CapTable<char, 4> = CapTable::new();
        let ids: Vec<_> = "abcd".chars().map(|c| t.insert(c).unwrap()).collect();
        t.remove(ids[1]).unwrap();
        let live: Vec<_> = t.iter().collect();
        assert_eq!(live, [(ids[0], &'a'), (ids[2], &'c'), (ids[3], &'d')]);
    }

    #[test]
    fn drain_all_empties_and_invalidates() {
        let mut t: CapTable<String, 4> = CapTable::new();
        let ids: Vec<_> =
            ["x", "y", "z"].iter().map(|s| t.insert(s.to_string()).unwrap()).collect();
        t.remove(ids[1]).unwrap();
        let drained: Vec<_> = t.drain_all().collect();
        assert_eq!(drained, ["x", "z"]);
        assert!(t.is_empty());
        for id in &ids {
            assert!(matches!(t.get(*id), Err(CapError::StaleCap { .. })), "{id} must be stale");
        }
        assert_eq!(t.insert("w".into()).unwrap(), CapId::new(0, 1));
    }

    #[test]
    fn dropping_a_partial_drain_still_empties() {
        let mut t: CapTable<u8, 4> = CapTable::new();
        let ids: Vec<_> = (0..4).map(|v| t.insert(v).unwrap()).collect();
        let mut drain = t.drain_all();
        assert_eq!(drain.len(), 4);
        assert_eq!(drain.next(), Some(0));
        assert_eq!(drain.len(), 3);
        drop(drain);
        assert!(t.is_empty());
        assert!(ids.iter().all(|id| !t.contains(*id)));
    }

    #[test]
    fn error_messages_name_the_values() {
        assert_eq!(
            CapError::StaleCap { index: 3, expected: 5, got: 4 }.to_string(),
            "cap 3:4 is stale: slot 3 is at generation 5"
        );
        assert_eq!(
            CapError::InvalidCap { index: 9 }.to_string(),
            "cap slot 9 is out of range or empty"
        );
        assert_eq!(
            CapError::TableFull { capacity: 8 }.to_string(),
            "cap table is full (all 8 slots in use)"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        /// Remove an id handed out earlier (live or dead), chosen by index.
        RemoveIssued(prop::sample::Index),
        GetIssued(prop::sample::Index),
        /// Use an id made up from random parts.
        GetForged(u32, u32),
        RemoveForged(u32, u32),
        DrainAll,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Forged indices mostly land in range so they hit real slots.
        let index = prop_oneof![4 => 0u32..10, 1 => any::<u32>()];
        let generation = prop_oneof![4 => 0u32..6, 1 => any::<u32>()];
        prop_oneof![
            6 => any::<u32>().prop_map(Op::Insert),
            4 => any::<prop::sample::Index>().prop_map(Op::RemoveIssued),
            4 => any::<prop::sample::Index>().prop_map(Op::GetIssued),
            2 => (index.clone(), generation.clone()).prop_map(|(i, g)| Op::GetForged(i, g)),
            1 => (index, generation).prop_map(|(i, g)| Op::RemoveForged(i, g)),
            1 => Just(Op::DrainAll),
        ]
    }

    const CAP: usize = 8;

    /// Every id ever handed out, with its value and whether it is still live.
    struct Model {
        issued: Vec<(CapId, u32, bool)>,
    }

    impl Model {
        fn live(&self) -> impl Iterator<Item = &(CapId, u32, bool)> {
            self.issued.iter().filter(|e| e.2)
        }

        fn lookup(&self, id: CapId) -> Option<u32> {
            self.live().find(|e| e.0 == id).map(|e| e.1)
        }

        fn kill(&mut self, id: CapId) {
            for e in self.issued.iter_mut().filter(|e| e.0 == id) {
                e.2 = false;
            }
        }

        /// Checks the table's answer for an id the model says is not live.
        fn check_miss(id: CapId, got: CapError) {
            let index = id.index();
            if index as usize >= CAP {
                assert_eq!(got, CapError::InvalidCap { index });
            } else {
                match got {
                    CapError::InvalidCap { index: i } => assert_eq!(i, index),
                    CapError::StaleCap { index: i, got: g, expected } => {
                        assert_eq!((i, g), (index, id.generation()));
                        assert_ne!(expected, g);
                    }
                    CapError::TableFull { .. } => panic!("lookup reported TableFull"),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn table_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut t: CapTable<u32, CAP> = CapTable::new();
            let mut m = Model { issued: Vec::new() };
            for op in ops {
                match op {
                    Op::Insert(v) => {
                        let live = m.live().count();
                        match t.insert(v) {
                            Ok(id) => {
                                prop_assert!(live < CAP);
                                // Lowest free slot.
                                let used: HashSet<u32> = m.live().map(|e| e.0.index()).collect();
                                let lowest = (0..CAP as u32).find(|i| !used.contains(i)).unwrap();
                                prop_assert_eq!(id.index(), lowest);
                                // Never equal to any id handed out before, live or dead.
                                prop_assert!(m.issued.iter().all(|e| e.0 != id), "id {} reissued", id);
                                m.issued.push((id, v, true));
                            }
                            Err(e) => {
                                prop_assert_eq!(live, CAP);
                                prop_assert_eq!(e, CapError::TableFull { capacity: CAP });
                            }
                        }
                    }
                    Op::RemoveIssued(_) | Op::GetIssued(_) if m.issued.is_empty() => {}
                    Op::GetIssued(pick) => {
                        let (id, v, live) = m.issued[pick.index(m.issued.len())];
                        match t.get(id) {
                            Ok(got) => {
                                prop_assert!(live);
                                prop_assert_eq!(*got, v);
                            }
                            Err(e) => {
                                prop_assert!(!live);
                                // A handed-out id was valid once: it can only be stale now.
                                prop_assert!(matches!(e, CapError::StaleCap { .. }), "{}", e);
                            }
                        }
                    }
                    Op::RemoveIssued(pick) => {
                        let (id, v, live) = m.issued[pick.index(m.issued.len())];
                        match t.remove(id) {
                            Ok(got) => {
                                prop_assert!(live);
                                prop_assert_eq!(got, v);
                                m.kill(id);
                            }
                            Err(e) => {
                                prop_assert!(!live);
                                prop_assert!(matches!(e, CapError::StaleCap { .. }), "{}", e);
                            }
                        }
                    }
                    Op::GetForged(i, g) => {
                        let id = CapId::new(i, g);
                        match (t.get(id), m.lookup(id)) {
                            (Ok(got), Some(v)) => prop_assert_eq!(*got, v),
                            (Err(e), None) => Model::check_miss(id, e),
                            (got, want) => prop_assert!(false, "{id}: table {got:?}, model {want:?}"),
                        }
                    }
                    Op::RemoveForged(i, g) => {
                        let id = CapId::new(i, g);
                        match (t.remove(id), m.lookup(id)) {
                            (Ok(got), Some(v)) => {
                                prop_assert_eq!(got, v);
                                m.kill(id);
                            }
                            (Err(e), None) => Model::check_miss(id, e),
                            (got, want) => prop_assert!(false, "{id}: table {got:?}, model {want:?}"),
                        }
                    }
                    Op::DrainAll => {
                        let mut drained: Vec<u32> = t.drain_all().collect();
                        let mut want: Vec<u32> = m.live().map(|e| e.1).collect();
                        drained.sort_unstable();
                        want.sort_unstable();
                        prop_assert_eq!(drained, want);
                        for e in m.issued.iter_mut() {
                            e.2 = false;
                        }
                    }
                }
                // Invariants after every step.
                prop_assert_eq!(t.len(), m.live().count());
                let ids: HashSet<CapId> = t.iter().map(|(id, _)| id).collect();
                let want: HashSet<CapId> = m.live().map(|e| e.0).collect();
                prop_assert_eq!(ids, want);
                for (id, v) in t.iter() {
                    prop_assert_eq!(Some(*v), m.lookup(id));
                }
            }
        }
    }
}
