//! Ring index math shared by the kernel and the user runtime.
//!
//! The ring's head and tail fields are free-running `u32` counters: they
//! only ever grow, wrapping at 2^32, and the entry a counter value names
//! lives in slot `counter & mask` of a power-of-two sized array. The number
//! of entries between a head and a tail is `tail - head` in wrapping
//! arithmetic, which stays correct across the wrap as long as it never
//! exceeds the queue size. A value above the queue size means the
//! user-writable side of the header was corrupted; see
//! [`is_valid_occupancy`].
//!
//! The kernel side keeps its own copies of the counters it owns (`sq_head`,
//! `cq_tail`) and of the queue sizes, and only ever reads the user-owned
//! counters (`sq_tail`, `cq_head`) from the shared header.
//!
//! [`check_sqe_header`] and [`check_sqe_limits`] are the parts of SQE
//! validation that depend only on the SQE's bytes (opcode, flags, reserved
//! fields; length limits).

use core::fmt;

use capos_abi::{
    valid_ring_entries, Opcode, Sqe, TransportError, MAX_PARAMS_LEN, MAX_RECV_LEN, MAX_RESULTS_LEN,
    MAX_XFER, SQE_FLAGS_DEFINED,
};

/// Entries between `head` and `tail`: `tail - head`, wrapping.
pub const fn pending(head: u32, tail: u32) -> u32 {
    tail.wrapping_sub(head)
}

/// Whether `head` and `tail` can belong to a queue of `entries` slots: no
/// more than `entries` entries lie between them. A header whose user-written
/// counter moved backwards, or past the other side's counter, fails this.
pub const fn is_valid_occupancy(head: u32, tail: u32, entries: u32) -> bool {
    pending(head, tail) <= entries
}

/// Slot of the entry with counter value `index` (`mask` = entries - 1).
pub const fn slot(index: u32, mask: u32) -> usize {
    (index & mask) as usize
}

/// Free slots in a queue of `entries` slots: `entries - pending`, or 0 when
/// the occupancy is invalid (check [`is_valid_occupancy`] to tell apart).
pub const fn free_slots(head: u32, tail: u32, entries: u32) -> u32 {
    entries.saturating_sub(pending(head, tail))
}

/// Which queue of a ring a [`RingError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// The submission queue.
    Submission,
    /// The completion queue.
    Completion,
}

impl Queue {
    /// `"SQ"` or `"CQ"`.
    pub const fn name(self) -> &'static str {
        match self {
            Queue::Submission => "SQ",
            Queue::Completion => "CQ",
        }
    }
}

/// Why ring index math refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// A queue size is not a power of two in `1..=MAX_RING_ENTRIES`.
    BadEntries {
        /// The queue.
        queue: Queue,
        /// The size given.
        entries: u32,
    },
    /// More than `entries` entries lie between head and tail: user code
    /// corrupted its counter.
    CorruptHeader {
        /// The queue.
        queue: Queue,
        /// The head counter.
        head: u32,
        /// The tail counter.
        tail: u32,
        /// The queue size.
        entries: u32,
    },
    /// The completion queue has no free slot for a new CQE.
    CqFull {
        /// `cq_head` as read from the header.
        head: u32,
        /// The kernel's `cq_tail`.
        tail: u32,
        /// The CQ size.
        entries: u32,
    },
}

impl RingError {
    /// The transport error this maps to: `Malformed` for a bad size or a
    /// corrupt header, `Overflow` for a full CQ.
    pub const fn transport_error(self) -> TransportError {
        match self {
            RingError::BadEntries { .. } | RingError::CorruptHeader { .. } => {
                TransportError::Malformed
            }
            RingError::CqFull { .. } => TransportError::Overflow,
        }
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::BadEntries { queue, entries } => write!(
                f,
                "ring: {} size {entries} is not a power of two in 1..={}",
                queue.name(),
                capos_abi::MAX_RING_ENTRIES
            ),
            RingError::CorruptHeader { queue, head, tail, entries } => write!(
                f,
                "ring: {} header corrupt: head {head} and tail {tail} are {} entries apart, \
                 more than its {entries} slots",
                queue.name(),
                pending(head, tail)
            ),
            RingError::CqFull { head, tail, entries } => {
                write!(f, "ring: CQ full: head {head}, tail {tail}, all {entries} slots in use")
            }
        }
    }
}

impl From<RingError> for TransportError {
    fn from(e: RingError) -> TransportError {
        e.transport_error()
    }
}

/// Checks `entries` is an allowed size for `queue`.
fn check_entries(queue: Queue, entries: u32) -> Result<(), RingError> {
    if valid_ring_entries(entries) {
        Ok(())
    } else {
        Err(RingError::BadEntries { queue, entries })
    }
}

/// Checks `head`/`tail` is a valid occupancy of `queue`.
fn check_occupancy(queue: Queue, head: u32, tail: u32, entries: u32) -> Result<(), RingError> {
    if is_valid_occupancy(head, tail, entries) {
        Ok(())
    } else {
        Err(RingError::CorruptHeader { queue, head, tail, entries })
    }
}

/// CQEs posted and not yet consumed: `tail - head`.
///
/// `head` is `cq_head` read from the header, `tail` the kernel's own
/// `cq_tail`. Fails with [`RingError::CorruptHeader`] when `head` is not
/// within `entries` behind `tail`.
pub fn cq_ready(head: u32, tail: u32, entries: u32) -> Result<u32, RingError> {
    check_entries(Queue::Completion, entries)?;
    check_occupancy(Queue::Completion, head, tail, entries)?;
    Ok(pending(head, tail))
}

/// CQ slots free for new work: `entries - (tail - head) - in_flight`,
/// saturating at 0.
///
/// `head` is `cq_head` read from the header, `tail` the kernel's own
/// `cq_tail`, and `in_flight` the number of consumed SQEs whose CQE has not
/// been posted yet (each holds a reserved CQ slot). Fails with
/// [`RingError::CorruptHeader`] when `head` is not within `entries` behind
/// `tail`.
pub fn cq_free(head: u32, tail: u32, entries: u32, in_flight: u32) -> Result<u32, RingError> {
    check_entries(Queue::Completion, entries)?;
    check_occupancy(Queue::Completion, head, tail, entries)?;
    Ok(free_slots(head, tail, entries).saturating_sub(in_flight))
}

/// Where the kernel writes the next CQE: returns `(slot, new_tail)`.
///
/// `head` is `cq_head` read from the header, `tail` the kernel's own
/// `cq_tail`. After writing the CQE to `slot`, the kernel release-stores
/// `new_tail` into the header.
pub fn cq_push(head: u32, tail: u32, entries: u32) -> Result<(usize, u32), RingError> {
    check_entries(Queue::Completion, entries)?;
    check_occupancy(Queue::Completion, head, tail, entries)?;
    if pending(head, tail) == entries {
        return Err(RingError::CqFull { head, tail, entries });
    }
    Ok((slot(tail, entries - 1), tail.wrapping_add(1)))
}

/// The SQEs the kernel may take in one `cap_enter`, as an iterator of SQ
/// slot indices.
///
/// It takes every pending SQE, but no more than `cq_free` (so each one taken
/// has a CQ slot for its completion). Each call to [`Iterator::next`]
/// advances the head past one SQE and yields its slot; the kernel copies the
/// SQE out of that slot, then publishes [`SqConsumer::head`] as `sq_head`.
#[derive(Debug, Clone)]
pub struct SqConsumer {
    head: u32,
    remaining: u32,
    mask: u32,
}

impl SqConsumer {
    /// A consumer for the SQ with the kernel's `head`, the user-written
    /// `tail` and `entries` slots, limited to `cq_free` SQEs (see
    /// [`cq_free`]). Fails with [`RingError::CorruptHeader`] when `tail` is
    /// more than `entries` ahead of `head` (or behind it), in which case the
    /// kernel takes nothing.
    pub fn new(head: u32, tail: u32, entries: u32, cq_free: u32) -> Result<SqConsumer, RingError> {
        check_entries(Queue::Submission, entries)?;
        check_occupancy(Queue::Submission, head, tail, entries)?;
        Ok(SqConsumer { head, remaining: pending(head, tail).min(cq_free), mask: entries - 1 })
    }

    /// SQEs still to take.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// The SQ head after the SQEs taken so far: the value to publish as `sq_head`.
    pub fn head(&self) -> u32 {
        self.head
    }
}

impl Iterator for SqConsumer {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        let at = slot(self.head, self.mask);
        self.head = self.head.wrapping_add(1);
        self.remaining -= 1;
        Some(at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for SqConsumer {}

/// The first two SQE checks of the ring protocol, which need no kernel
/// state: `opcode` is defined and supported (else `BadOpcode`), then `flags`
/// has only defined bits and `reserved` is zero (else `Malformed`).
///
/// The kernel then resolves `cap` (`InvalidCap`, `StaleCap`, `Revoked`),
/// checks `interface_id` (`WrongInterface`) and `method` (`BadMethod`), then
/// the limits ([`check_sqe_limits`]) and last the address ranges (`BadPointer`).
pub fn check_sqe_header(sqe: &Sqe) -> Result<Opcode, TransportError> {
    let op = match Opcode::from_u8(sqe.opcode) {
        Some(op) if op.is_supported() => op,
        _ => return Err(TransportError::BadOpcode),
    };
    if sqe.flags & !SQE_FLAGS_DEFINED != 0 || sqe.reserved != 0 {
        return Err(TransportError::Malformed);
    }
    Ok(op)
}

/// The limit check of the ring protocol: the lengths and counts opcode `op`
/// uses are within [`MAX_PARAMS_LEN`], [`MAX_RESULTS_LEN`] ([`MAX_RECV_LEN`]
/// for a RECV buffer) and [`MAX_XFER`],
/// else `TooLarge`. Fields `op` does not use are not looked at.
pub fn check_sqe_limits(op: Opcode, sqe: &Sqe) -> Result<(), TransportError> {
    let (params, results, xfer) = match op {
        Opcode::Call => (true, true, true),
        Opcode::Recv => (false, true, true),
        Opcode::Return => (true, false, true),
        Opcode::Nop | Opcode::Release | Opcode::Pipeline => (false, false, false),
    };
    let max_results = if op == Opcode::Recv { MAX_RECV_LEN } else { MAX_RESULTS_LEN };
    if (params && sqe.params_len > MAX_PARAMS_LEN)
        || (results && sqe.results_len > max_results)
        || (xfer && sqe.xfer_count > MAX_XFER)
    {
        return Err(TransportError::TooLarge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::{OP_CALL, OP_NOP, OP_PIPELINE, OP_RECV, OP_RELEASE, OP_RETURN};
    use proptest::prelude::*;

    #[test]
    fn counters_wrap() {
        assert_eq!(pending(u32::MAX, 2), 3);
        assert_eq!(pending(5, 5), 0);
        assert!(is_valid_occupancy(u32::MAX - 1, 2, 4));
        assert!(!is_valid_occupancy(u32::MAX - 1, 3, 4));
        assert!(!is_valid_occupancy(3, 2, 4), "tail behind head");
        assert_eq!(slot(u32::MAX, 7), 7);
        assert_eq!(slot(u32::MAX.wrapping_add(1), 7), 0);
        assert_eq!(free_slots(10, 12, 8), 6);
        assert_eq!(free_slots(10, 19, 8), 0, "corrupt reads as full");
    }

    #[test]
    fn consumer_takes_pending_up_to_cq_space() {
        let c = SqConsumer::new(10, 15, 8, 100).unwrap();
        assert_eq!(c.remaining(), 5);
        let slots: Vec<usize> = c.clone().collect();
        assert_eq!(slots, [2, 3, 4, 5, 6]);
        let mut c = SqConsumer::new(10, 15, 8, 2).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.next(), Some(2));
        assert_eq!(c.head(), 11);
        assert_eq!(c.next(), Some(3));
        assert_eq!(c.next(), None);
        assert_eq!(c.head(), 12);
        assert_eq!(SqConsumer::new(3, 3, 8, 8).unwrap().remaining(), 0);
        assert_eq!(SqConsumer::new(3, 11, 8, 0).unwrap().remaining(), 0);
    }

    #[test]
    fn consumer_rejects_corrupt_tail_and_bad_sizes() {
        assert_eq!(
            SqConsumer::new(10, 19, 8, 8).unwrap_err(),
            RingError::CorruptHeader { queue: Queue::Submission, head: 10, tail: 19, entries: 8 }
        );
        assert_eq!(
            SqConsumer::new(10, 9, 8, 8).unwrap_err(),
            RingError::CorruptHeader { queue: Queue::Submission, head: 10, tail: 9, entries: 8 }
        );
        assert_eq!(
            SqConsumer::new(0, 0, 6, 8).unwrap_err(),
            RingError::BadEntries { queue: Queue::Submission, entries: 6 }
        );
        assert_eq!(
            SqConsumer::new(0, 0, 0, 8).unwrap_err(),
            RingError::BadEntries { queue: Queue::Submission, entries: 0 }
        );
        assert_eq!(
            RingError::CorruptHeader { queue: Queue::Submission, head: 0, tail: 0, entries: 1 }
                .transport_error(),
            TransportError::Malformed
        );
    }

    #[test]
    fn cq_space_and_push() {
        assert_eq!(cq_ready(0, 3, 8), Ok(3));
        assert_eq!(cq_ready(u32::MAX, 1, 8), Ok(2));
        assert_eq!(
            cq_ready(4, 3, 8),
            Err(RingError::CorruptHeader {
                queue: Queue::Completion,
                head: 4,
                tail: 3,
                entries: 8
            })
        );
        assert_eq!(
            cq_ready(0, 0, 3),
            Err(RingError::BadEntries { queue: Queue::Completion, entries: 3 })
        );
        assert_eq!(cq_free(0, 3, 8, 0), Ok(5));
        assert_eq!(cq_free(0, 3, 8, 2), Ok(3));
        assert_eq!(cq_free(0, 3, 8, 9), Ok(0));
        assert_eq!(
            cq_free(4, 3, 8, 0),
            Err(RingError::CorruptHeader {
                queue: Queue::Completion,
                head: 4,
                tail: 3,
                entries: 8
            })
        );
        assert_eq!(cq_push(u32::MAX, u32::MAX, 4), Ok((3, 0)));
        assert_eq!(cq_push(0, 4, 4), Err(RingError::CqFull { head: 0, tail: 4, entries: 4 }));
        assert_eq!(
            cq_push(0, 5, 4),
            Err(RingError::CorruptHeader {
                queue: Queue::Completion,
                head: 0,
                tail: 5,
                entries: 4
            })
        );
        assert_eq!(
            TransportError::from(RingError::CqFull { head: 0, tail: 4, entries: 4 }),
            TransportError::Overflow
        );
    }

    #[test]
    fn error_messages_name_the_values() {
        assert_eq!(
            RingError::CorruptHeader { queue: Queue::Submission, head: 10, tail: 30, entries: 8 }
                .to_string(),
            "ring: SQ header corrupt: head 10 and tail 30 are 20 entries apart, more than its 8 slots"
        );
        assert_eq!(
            RingError::BadEntries { queue: Queue::Completion, entries: 3 }.to_string(),
            "ring: CQ size 3 is not a power of two in 1..=4096"
        );
        assert_eq!(
            RingError::CqFull { head: 1, tail: 5, entries: 4 }.to_string(),
            "ring: CQ full: head 1, tail 5, all 4 slots in use"
        );
    }

    /// Both static checks back to back (the kernel runs the cap, interface
    /// and method checks in between).
    fn check_sqe(sqe: &Sqe) -> Result<Opcode, TransportError> {
        let op = check_sqe_header(sqe)?;
        check_sqe_limits(op, sqe)?;
        Ok(op)
    }

    fn call() -> Sqe {
        Sqe {
            opcode: OP_CALL,
            params_len: MAX_PARAMS_LEN,
            results_len: MAX_RESULTS_LEN,
            xfer_count: MAX_XFER,
            ..Sqe::default()
        }
    }

    #[test]
    fn check_sqe_order_and_rules() {
        assert_eq!(check_sqe(&call()), Ok(Opcode::Call));
        assert_eq!(check_sqe(&Sqe { opcode: 6, ..call() }), Err(TransportError::BadOpcode));
        assert_eq!(
            check_sqe(&Sqe { opcode: OP_PIPELINE, ..call() }),
            Err(TransportError::BadOpcode)
        );
        // Opcode is checked before flags, flags before lengths.
        assert_eq!(
            check_sqe(&Sqe { opcode: 200, flags: 1, ..call() }),
            Err(TransportError::BadOpcode)
        );
        assert_eq!(
            check_sqe(&Sqe { flags: 0x80, params_len: u32::MAX, ..call() }),
            Err(TransportError::Malformed)
        );
        assert_eq!(check_sqe(&Sqe { reserved: 1, ..call() }), Err(TransportError::Malformed));
        assert_eq!(
            check_sqe(&Sqe { params_len: MAX_PARAMS_LEN + 1, ..call() }),
            Err(TransportError::TooLarge)
        );
        assert_eq!(
            check_sqe(&Sqe { results_len: MAX_RESULTS_LEN + 1, ..call() }),
            Err(TransportError::TooLarge)
        );
        assert_eq!(
            check_sqe(&Sqe { xfer_count: MAX_XFER + 1, ..call() }),
            Err(TransportError::TooLarge)
        );
        // Opcodes ignore the fields they do not use.
        let huge =
            Sqe { params_len: u32::MAX, results_len: u32::MAX, xfer_count: u16::MAX, ..call() };
        assert_eq!(check_sqe(&Sqe { opcode: OP_NOP, ..huge }), Ok(Opcode::Nop));
        assert_eq!(check_sqe(&Sqe { opcode: OP_RELEASE, ..huge }), Ok(Opcode::Release));
        assert_eq!(
            check_sqe(&Sqe { opcode: OP_RECV, params_len: u32::MAX, ..call() }),
            Ok(Opcode::Recv)
        );
        assert_eq!(check_sqe(&Sqe { opcode: OP_RECV, ..huge }), Err(TransportError::TooLarge));
        assert_eq!(
            check_sqe(&Sqe { opcode: OP_RETURN, results_len: u32::MAX, ..call() }),
            Ok(Opcode::Return)
        );
        assert_eq!(check_sqe(&Sqe { opcode: OP_RETURN, ..huge }), Err(TransportError::TooLarge));
        // The split checks: the header check ignores lengths.
        let long = Sqe { params_len: u32::MAX, ..call() };
        assert_eq!(check_sqe_header(&long), Ok(Opcode::Call));
        assert_eq!(check_sqe_limits(Opcode::Call, &long), Err(TransportError::TooLarge));
        assert_eq!(check_sqe_limits(Opcode::Release, &long), Ok(()));
        // Flags and reserved matter even for NOP.
        assert_eq!(
            check_sqe(&Sqe { opcode: OP_NOP, flags: 1, ..Sqe::default() }),
            Err(TransportError::Malformed)
        );
    }

    fn entries() -> impl Strategy<Value = u32> {
        (0u32..=12).prop_map(|e| 1 << e)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Pushing and popping through the wrap keeps the counters consistent
        /// with a plain count, wherever the counters start.
        #[test]
        fn occupancy_tracks_a_model_across_wraparound(
            start in prop_oneof![Just(u32::MAX - 3), Just(u32::MAX), Just(0u32), any::<u32>()],
            entries in entries(),
            moves in proptest::collection::vec((any::<bool>(), 1u32..9), 1..64),
        ) {
            let (mut head, mut tail, mut count) = (start, start, 0u32);
            for (push, n) in moves {
                if push {
                    let n = n.min(free_slots(head, tail, entries));
                    tail = tail.wrapping_add(n);
                    count += n;
                } else {
                    let n = n.min(pending(head, tail));
                    head = head.wrapping_add(n);
                    count -= n;
                }
                prop_assert!(is_valid_occupancy(head, tail, entries));
                prop_assert_eq!(pending(head, tail), count);
                prop_assert_eq!(free_slots(head, tail, entries), entries - count);
            }
        }

        /// Any (head, tail) pair is either valid, or refused by every consumer.
        #[test]
        fn consumer_never_takes_more_than_allowed(
            head in any::<u32>(),
            delta in prop_oneof![0u32..=4097, any::<u32>()],
            entries in entries(),
            cq in any::<u32>(),
        ) {
            let tail = head.wrapping_add(delta);
            match SqConsumer::new(head, tail, entries, cq) {
                Ok(c) => {
                    prop_assert!(delta <= entries);
                    let n = c.remaining();
                    prop_assert_eq!(n, delta.min(cq));
                    let mut c2 = c.clone();
                    let slots: Vec<usize> = c2.by_ref().collect();
                    prop_assert_eq!(slots.len() as u32, n);
                    // Distinct slots, each the masked counter value.
                    for (i, s) in slots.iter().enumerate() {
                        prop_assert_eq!(*s, slot(head.wrapping_add(i as u32), entries - 1));
                        prop_assert!(*s < entries as usize);
                    }
                    let distinct: std::collections::HashSet<_> = slots.iter().collect();
                    prop_assert_eq!(distinct.len(), slots.len());
                    prop_assert_eq!(c2.head(), head.wrapping_add(n));
                    prop_assert!(is_valid_occupancy(c2.head(), tail, entries));
                }
                Err(e) => {
                    prop_assert!(delta > entries);
                    prop_assert_eq!(e, RingError::CorruptHeader {
                        queue: Queue::Submission, head, tail, entries
                    });
                }
            }
        }

        /// A CQ filled by `cq_push` from any start never overwrites an
        /// unconsumed slot and reports full exactly at `entries`.
        #[test]
        fn cq_push_fills_exactly_entries(start in any::<u32>(), entries in (0u32..=8).prop_map(|e| 1 << e)) {
            let head = start;
            let mut tail = start;
            let mut used = std::collections::HashSet::new();
            for _ in 0..entries {
                let (s, next) = cq_push(head, tail, entries).unwrap();
                prop_assert!(used.insert(s));
                tail = next;
            }
            prop_assert_eq!(cq_push(head, tail, entries), Err(RingError::CqFull { head, tail, entries }));
            prop_assert_eq!(cq_free(head, tail, entries, 0), Ok(0));
            prop_assert_eq!(cq_ready(head, tail, entries), Ok(entries));
        }

        /// check_sqe never panics, and accepts exactly the SQEs the rules allow.
        #[test]
        fn check_sqe_matches_rules(
            opcode in prop_oneof![0u8..=6, any::<u8>()],
            flags in prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
            reserved in prop_oneof![4 => Just(0u16), 1 => any::<u16>()],
            params_len in prop_oneof![0..=MAX_PARAMS_LEN + 1, any::<u32>()],
            results_len in prop_oneof![0..=MAX_RESULTS_LEN + 1, any::<u32>()],
            xfer_count in prop_oneof![0..=MAX_XFER + 1, any::<u16>()],
            rest in proptest::collection::vec(any::<u8>(), 64),
        ) {
            let mut sqe = Sqe::from_bytes(&rest).unwrap();
            sqe.opcode = opcode;
            sqe.flags = flags;
            sqe.reserved = reserved;
            sqe.params_len = params_len;
            sqe.results_len = results_len;
            sqe.xfer_count = xfer_count;
            let (p, r, x) = (params_len > MAX_PARAMS_LEN, results_len > MAX_RESULTS_LEN, xfer_count > MAX_XFER);
            let want = match opcode {
                _ if opcode > OP_RELEASE => Err(TransportError::BadOpcode),
                _ if flags != 0 || reserved != 0 => Err(TransportError::Malformed),
                OP_CALL if p || r || x => Err(TransportError::TooLarge),
                OP_RECV if r || x => Err(TransportError::TooLarge),
                OP_RETURN if p || x => Err(TransportError::TooLarge),
                _ => Ok(Opcode::from_u8(opcode).unwrap()),
            };
            prop_assert_eq!(check_sqe(&sqe), want);
        }
    }
}
