//! Physical frame allocator bitmap.
//!
//! One bit per 4 KiB physical frame, stored in caller-provided `u64` words so
//! the kernel can place the bitmap in memory it has carved out itself before
//! any heap exists. A set bit means the frame is free; every frame starts
//! used, and usable RAM is handed over with [`FrameBitmap::add_free_range`].
//!
//! Bits past `frame_count` in the last word are kept clear at all times, so
//! they can never be allocated.

use core::fmt;

/// Size of one physical frame in bytes.
pub const FRAME_SIZE: u64 = 4096;

const BITS: usize = u64::BITS as usize;

/// Errors reported by [`FrameBitmap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A frame number at or past the end of the bitmap.
    OutOfRange {
        /// The offending frame number.
        frame: usize,
        /// Number of frames the bitmap tracks.
        frame_count: usize,
    },
    /// A frame was freed while it was already free.
    DoubleFree {
        /// The offending frame number.
        frame: usize,
    },
    /// The storage slice cannot hold one bit per frame.
    StorageTooSmall {
        /// Words needed for the requested frame count.
        needed_words: usize,
        /// Words actually provided.
        got_words: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::OutOfRange { frame, frame_count } => {
                write!(f, "frame {frame} is out of range (the bitmap tracks {frame_count} frames)")
            }
            FrameError::DoubleFree { frame } => {
                write!(f, "frame {frame} freed while already free")
            }
            FrameError::StorageTooSmall { needed_words, got_words } => write!(
                f,
                "frame bitmap storage has {got_words} words but {needed_words} are needed"
            ),
        }
    }
}

/// Mask with the low `n` bits set, for `n` in `0..=64`.
const fn low_bits(n: usize) -> u64 {
    if n >= BITS {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Rounds `value` up to a multiple of `align` (`align >= 1`), `None` on overflow.
fn round_up(value: usize, align: usize) -> Option<usize> {
    match value % align {
        0 => Some(value),
        rem => value.checked_add(align - rem),
    }
}

/// Bitmap of physical frames: which are free and which are in use.
pub struct FrameBitmap<'a> {
    /// Exactly `words_needed(frame_count)` words; a set bit marks a free frame.
    words: &'a mut [u64],
    frame_count: usize,
    free: usize,
    /// Every word with an index below `hint` has no free bit.
    hint: usize,
}

impl fmt::Debug for FrameBitmap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBitmap")
            .field("frame_count", &self.frame_count)
            .field("free", &self.free)
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

impl<'a> FrameBitmap<'a> {
    /// Number of `u64` storage words needed to track `frame_count` frames.
    pub const fn words_needed(frame_count: usize) -> usize {
        frame_count.div_ceil(BITS)
    }

    /// Creates a bitmap over `storage` tracking `frame_count` frames.
    ///
    /// Every frame starts used (unavailable). Storage longer than
    /// [`words_needed`](Self::words_needed) is allowed; the excess is left
    /// untouched.
    pub fn new(storage: &'a mut [u64], frame_count: usize) -> Result<Self, FrameError> {
        let needed_words = Self::words_needed(frame_count);
        if storage.len() < needed_words {
            return Err(FrameError::StorageTooSmall { needed_words, got_words: storage.len() });
        }
        let (words, _) = storage.split_at_mut(needed_words);
        words.fill(0);
        Ok(FrameBitmap { words, frame_count, free: 0, hint: needed_words })
    }

    /// Number of frames the bitmap tracks.
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// Number of frames currently free.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// Whether `frame` is free. Frames out of range are never free.
    pub fn is_free(&self, frame: usize) -> bool {
        frame < self.frame_count && self.words[frame / BITS] & (1u64 << (frame % BITS)) != 0
    }

    /// Makes `[start, start + count)` available, clamped to the frame count.
    ///
    /// Used when handing usable RAM to the allocator. Frames already free
    /// stay free.
    pub fn add_free_range(&mut self, start: usize, count: usize) {
        let (start, end) = self.clamp(start, count);
        if start < end {
            self.set_range(start, end, true);
            self.hint = self.hint.min(start / BITS);
        }
    }

    /// Makes `[start, start + count)` unavailable, clamped to the frame count.
    ///
    /// Used for the kernel image, boot modules, the boot information block
    /// and similar. Frames already used stay used.
    pub fn reserve_range(&mut self, start: usize, count: usize) {
        let (start, end) = self.clamp(start, count);
        if start < end {
            self.set_range(start, end, false);
        }
    }

    /// Allocates the lowest free frame.
    pub fn alloc(&mut self) -> Option<usize> {
        self.alloc_below(self.frame_count)
    }

    /// Allocates the lowest free frame whose number is below `limit_frame`
    /// (for example to get memory reachable by a 32-bit device).
    pub fn alloc_below(&mut self, limit_frame: usize) -> Option<usize> {
        let limit = limit_frame.min(self.frame_count);
        match self.first_free_in(self.hint * BITS, limit) {
            Some(frame) => {
                self.words[frame / BITS] &= !(1u64 << (frame % BITS));
                self.free -= 1;
                // Nothing below `frame` is free, so every earlier word is empty.
                self.hint = frame / BITS;
                Some(frame)
            }
            None => {
                // Every word from the hint up to the limit was scanned empty.
                self.hint = if limit == self.frame_count {
                    self.words.len()
                } else {
                    self.hint.max(limit / BITS)
                };
                None
            }
        }
    }

    /// Allocates `count` consecutive free frames whose first frame number is
    /// a multiple of `align_frames` and which lie entirely below
    /// `limit_frame`. Returns the first frame of the lowest such run.
    ///
    /// `align_frames` of 0 is treated as 1. A `count` of 0 allocates nothing
    /// and returns `None`.
    pub fn alloc_contiguous(
        &mut self,
        count: usize,
        align_frames: usize,
        limit_frame: usize,
    ) -> Option<usize> {
        if count == 0 {
            return None;
        }
        let align = align_frames.max(1);
        let limit = limit_frame.min(self.frame_count);
        let mut pos = self.hint * BITS;
        loop {
            let first_free = self.first_free_in(pos, limit)?;
            let start = round_up(first_free, align)?;
            let end = start.checked_add(count)?;
            if end > limit {
                return None;
            }
            match self.first_used_in(start, end) {
                None => {
                    self.set_range(start, end, false);
                    return Some(start);
                }
                Some(used) => pos = used + 1,
            }
        }
    }

    /// Returns `frame` to the free pool.
    ///
    /// The bitmap is unchanged on error.
    pub fn free(&mut self, frame: usize) -> Result<(), FrameError> {
        if frame >= self.frame_count {
            return Err(FrameError::OutOfRange { frame, frame_count: self.frame_count });
        }
        let word = &mut self.words[frame / BITS];
        let bit = 1u64 << (frame % BITS);
        if *word & bit != 0 {
            return Err(FrameError::DoubleFree { frame });
        }
        *word |= bit;
        self.free += 1;
        self.hint = self.hint.min(frame / BITS);
        Ok(())
    }

    /// Clamps `[start, start + count)` to the tracked frames, as `(start, end)`.
    fn clamp(&self, start: usize, count: usize) -> (usize, usize) {
        let end = start.saturating_add(count).min(self.frame_count);
        (start.min(end), end)
    }

    /// Marks `[start, end)` free or used; `end <= frame_count`.
    fn set_range(&mut self, start: usize, end: usize, free: bool) {
        let mut frame = start;
        while frame < end {
            let index = frame / BITS;
            let lo = frame % BITS;
            let hi = (end - index * BITS).min(BITS);
            let mask = low_bits(hi) & !low_bits(lo);
            let word = &mut self.words[index];
            if free {
                self.free += (mask & !*word).count_ones() as usize;
                *word |= mask;
            } else {
                self.free -= (mask & *word).count_ones() as usize;
                *word &= !mask;
            }
            frame = (index + 1) * BITS;
        }
    }

    /// Lowest free frame in `[from, limit)`; `limit <= frame_count`.
    fn first_free_in(&self, from: usize, limit: usize) -> Option<usize> {
        self.first_matching(from, limit, false)
    }

    /// Lowest used frame in `[from, limit)`; `limit <= frame_count`.
    fn first_used_in(&self, from: usize, limit: usize) -> Option<usize> {
        self.first_matching(from, limit, true)
    }

    /// Lowest frame in `[from, limit)` whose bit is set after optionally
    /// inverting each word.
    fn first_matching(&self, from: usize, limit: usize, invert: bool) -> Option<usize> {
        if from >= limit {
            return None;
        }
        let first = from / BITS;
        let last = (limit - 1) / BITS;
        for index in first..=last {
            let mut bits = self.words[index];
            if invert {
                bits = !bits;
            }
            if index == first {
                bits &= !low_bits(from % BITS);
            }
            if index == last {
                bits &= low_bits(limit - index * BITS);
            }
            if bits != 0 {
                return Some(index * BITS + bits.trailing_zeros() as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn words_needed_rounds_up() {
        assert_eq!(FrameBitmap::words_needed(0), 0);
        assert_eq!(FrameBitmap::words_needed(1), 1);
        assert_eq!(FrameBitmap::words_needed(64), 1);
        assert_eq!(FrameBitmap::words_needed(65), 2);
        assert_eq!(FrameBitmap::words_needed(128), 2);
    }

    #[test]
    fn storage_too_small_is_reported() {
        let mut storage = [0u64; 1];
        let err = FrameBitmap::new(&mut storage, 65).unwrap_err();
        assert_eq!(err, FrameError::StorageTooSmall { needed_words: 2, got_words: 1 });
        assert_eq!(err.to_string(), "frame bitmap storage has 1 words but 2 are needed");
    }

    #[test]
    fn new_starts_all_used_and_ignores_excess_storage() {
        let mut storage = [u64::MAX; 4];
        let mut bm = FrameBitmap::new(&mut storage, 100).unwrap();
        assert_eq!(bm.frame_count(), 100);
        assert_eq!(bm.free_count(), 0);
        assert!((0..100).all(|f| !bm.is_free(f)));
        assert_eq!(bm.alloc(), None);
        assert_eq!(storage, [0, 0, u64::MAX, u64::MAX]);
    }

    #[test]
    fn zero_frames() {
        let mut storage: [u64; 0] = [];
        let mut bm = FrameBitmap::new(&mut storage, 0).unwrap();
        bm.add_free_range(0, 10);
        bm.reserve_range(0, 10);
        assert_eq!(bm.free_count(), 0);
        assert_eq!(bm.alloc(), None);
        assert_eq!(bm.alloc_below(5), None);
        assert_eq!(bm.alloc_contiguous(1, 1, usize::MAX), None);
        assert!(!bm.is_free(0));
        assert_eq!(bm.free(0), Err(FrameError::OutOfRange { frame: 0, frame_count: 0 }));
    }

    #[test]
    fn partial_last_word_bits_never_allocatable() {
        let mut storage = [0u64; 2];
        let mut bm = FrameBitmap::new(&mut storage, 70).unwrap();
        bm.add_free_range(0, usize::MAX);
        assert_eq!(bm.free_count(), 70);
        let mut got = Vec::new();
        while let Some(f) = bm.alloc() {
            got.push(f);
        }
        assert_eq!(got, (0..70).collect::<Vec<_>>());
        assert_eq!(bm.alloc_contiguous(1, 1, 1000), None);
        assert_eq!(bm.free(70), Err(FrameError::OutOfRange { frame: 70, frame_count: 70 }));
        assert_eq!(storage[1] >> 6, 0, "bits past frame_count stay clear");
    }

    #[test]
    fn add_and_reserve_clamp() {
        let mut storage = [0u64; 3];
        let mut bm = FrameBitmap::new(&mut storage, 130).unwrap();
        bm.add_free_range(120, 100);
        assert_eq!(bm.free_count(), 10);
        bm.add_free_range(usize::MAX, usize::MAX);
        bm.reserve_range(125, usize::MAX);
        assert_eq!(bm.free_count(), 5);
        assert!(bm.is_free(124) && !bm.is_free(125));
        bm.add_free_range(200, 5);
        assert_eq!(bm.free_count(), 5);
    }

    #[test]
    fn reserve_keeps_used_frames_used() {
        let mut storage = [0u64; 1];
        let mut bm = FrameBitmap::new(&mut storage, 64).unwrap();
        bm.add_free_range(0, 8);
        assert_eq!(bm.alloc(), Some(0));
        bm.reserve_range(0, 4);
        assert_eq!(bm.free_count(), 4);
        assert_eq!(bm.alloc(), Some(4));
    }

    #[test]
    fn free_errors_leave_bitmap_unchanged() {
        let mut storage = [0u64; 1];
        let mut bm = FrameBitmap::new(&mut storage, 10).unwrap();
        bm.add_free_range(3, 1);
        let err = bm.free(3).unwrap_err();
        assert_eq!(err, FrameError::DoubleFree { frame: 3 });
        assert_eq!(err.to_string(), "frame 3 freed while already free");
        let err = bm.free(10).unwrap_err();
        assert_eq!(err.to_string(), "frame 10 is out of range (the bitmap tracks 10 frames)");
        assert_eq!(bm.free_count(), 1);
        assert_eq!(bm.alloc(), Some(3));
        assert_eq!(bm.free(3), Ok(()));
        assert_eq!(bm.alloc(), Some(3));
    }

    #[test]
    fn alloc_below_respects_limit() {
        let mut storage = [0u64; 4];
        let mut bm = FrameBitmap::new(&mut storage, 256).unwrap();
        bm.add_free_range(100, 50);
        assert_eq!(bm.alloc_below(100), None);
        assert_eq!(bm.alloc_below(101), Some(100));
        assert_eq!(bm.alloc_below(101), None);
        assert_eq!(bm.alloc_below(0), None);
        assert_eq!(bm.alloc(), Some(101));
        assert_eq!(bm.free(100), Ok(()));
        assert_eq!(bm.alloc(), Some(100));
    }

    #[test]
    fn alloc_contiguous_alignment_and_limit() {
        let mut storage = [0u64; 4];
        let mut bm = FrameBitmap::new(&mut storage, 256).unwrap();
        bm.add_free_range(3, 200);
        assert_eq!(bm.alloc_contiguous(0, 1, 256), None);
        assert_eq!(bm.alloc_contiguous(4, 0, 256), Some(3));
        assert_eq!(bm.alloc_contiguous(4, 16, 256), Some(16));
        assert_eq!(bm.alloc_contiguous(64, 64, 256), Some(64));
        assert_eq!(bm.alloc_contiguous(64, 64, 256), Some(128));
        assert_eq!(bm.alloc_contiguous(64, 64, 256), None);
        assert_eq!(bm.alloc_contiguous(10, 1, 30), Some(20));
        assert_eq!(bm.alloc_contiguous(10, 1, 30), None);
        // A used frame in the middle of a run forces the next candidate.
        assert_eq!(bm.alloc(), Some(7));
        assert_eq!(bm.alloc_contiguous(5, 1, 256), Some(8));
        assert_eq!(bm.alloc_contiguous(usize::MAX, 1, usize::MAX), None);
        assert_eq!(bm.alloc_contiguous(1, usize::MAX, usize::MAX), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        Reserve(usize, usize),
        Alloc,
        AllocBelow(usize),
        AllocContiguous(usize, usize, usize),
        /// Free the held frame at this index (modulo the held count).
        FreeHeld(usize),
        /// Free an arbitrary frame number; must fail unless it is held.
        FreeAny(usize),
    }

    fn op(frames: usize) -> impl Strategy<Value = Op> {
        let f = frames + 70;
        prop_oneof![
            2 => (0..f, 0..f).prop_map(|(s, c)| Op::Add(s, c)),
            1 => (0..f, 0..40usize).prop_map(|(s, c)| Op::Reserve(s, c)),
            4 => Just(Op::Alloc),
            2 => (0..f).prop_map(Op::AllocBelow),
            2 => (0..20usize, 0..9usize, 0..f).prop_map(|(c, a, l)| Op::AllocContiguous(c, a, l)),
            4 => any::<usize>().prop_map(Op::FreeHeld),
            1 => (0..f).prop_map(Op::FreeAny),
        ]
    }

    /// Reference model: the set of free frames, held frames and reserved frames.
    struct Model {
        frames: usize,
        free: BTreeSet<usize>,
        held: BTreeSet<usize>,
        reserved: BTreeSet<usize>,
    }

    impl Model {
        fn range(&self, start: usize, count: usize) -> std::ops::Range<usize> {
            let end = start.saturating_add(count).min(self.frames);
            start.min(end)..end
        }

        fn first_contiguous(&self, count: usize, align: usize, limit: usize) -> Option<usize> {
            if count == 0 {
                return None;
            }
            let align = align.max(1);
            let limit = limit.min(self.frames);
            (0..limit)
                .step_by(align)
                .find(|&s| s + count <= limit && (s..s + count).all(|f| self.free.contains(&f)))
        }

        fn take(&mut self, got: Option<usize>, expected: Option<usize>) {
            assert_eq!(got, expected);
            if let Some(f) = got {
                assert!(!self.reserved.contains(&f), "reserved frame {f} handed out");
                assert!(self.free.remove(&f));
                assert!(self.held.insert(f), "frame {f} handed out twice");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_model(frames in 0usize..300, ops in proptest::collection::vec(op(300), 0..120)) {
            let mut storage = vec![0u64; FrameBitmap::words_needed(frames)];
            let mut bm = FrameBitmap::new(&mut storage, frames).unwrap();
            let mut m = Model {
                frames,
                free: BTreeSet::new(),
                held: BTreeSet::new(),
                reserved: BTreeSet::new(),
            };
            for op in ops {
                match op {
                    Op::Add(s, c) => {
                        bm.add_free_range(s, c);
                        // Adding a held frame makes it free again, as the
                        // bitmap does not track owners.
                        for f in m.range(s, c) {
                            m.reserved.remove(&f);
                            m.held.remove(&f);
                            m.free.insert(f);
                        }
                    }
                    Op::Reserve(s, c) => {
                        bm.reserve_range(s, c);
                        for f in m.range(s, c) {
                            m.free.remove(&f);
                            if !m.held.contains(&f) {
                                m.reserved.insert(f);
                            }
                        }
                    }
                    Op::Alloc => {
                        let expected = m.free.first().copied();
                        let got = bm.alloc();
                        m.take(got, expected);
                    }
                    Op::AllocBelow(limit) => {
                        let expected = m.free.range(..limit).next().copied();
                        let got = bm.alloc_below(limit);
                        m.take(got, expected);
                    }
                    Op::AllocContiguous(count, align, limit) => {
                        let expected = m.first_contiguous(count, align, limit);
                        let got = bm.alloc_contiguous(count, align, limit);
                        assert_eq!(got, expected);
                        if let Some(s) = got {
                            prop_assert_eq!(s % align.max(1), 0);
                            prop_assert!(s + count <= limit);
                            for f in s..s + count {
                                m.take(Some(f), Some(f));
                            }
                        }
                    }
                    Op::FreeHeld(i) => {
                        if !m.held.is_empty() {
                            let f = *m.held.iter().nth(i % m.held.len()).unwrap();
                            prop_assert_eq!(bm.free(f), Ok(()));
                            m.held.remove(&f);
                            m.free.insert(f);
                        }
                    }
                    Op::FreeAny(f) => {
                        let res = bm.free(f);
                        if f >= frames {
                            prop_assert_eq!(res, Err(FrameError::OutOfRange { frame: f, frame_count: frames }));
                        } else if m.free.contains(&f) {
                            prop_assert_eq!(res, Err(FrameError::DoubleFree { frame: f }));
                        } else {
                            prop_assert_eq!(res, Ok(()));
                            m.held.remove(&f);
                            m.reserved.remove(&f);
                            m.free.insert(f);
                        }
                    }
                }
                prop_assert_eq!(bm.free_count(), m.free.len());
                for f in 0..frames + 70 {
                    prop_assert_eq!(bm.is_free(f), m.free.contains(&f), "frame {}", f);
                }
            }
            // Every free frame is allocatable, in ascending order, and then
            // nothing more is.
            let expected: Vec<usize> = m.free.iter().copied().collect();
            let mut got = Vec::new();
            while let Some(f) = bm.alloc() {
                got.push(f);
            }
            prop_assert_eq!(got, expected);
            prop_assert_eq!(bm.free_count(), 0);
        }
    }
}
