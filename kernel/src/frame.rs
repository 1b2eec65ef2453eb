//! Call frames: where a CALL on a kernel object is served.
//!
//! Each CPU has a scratch area of word-aligned memory: a params buffer, into
//! which the ring copies a call's params once, and a results segment, in
//! which the object builds its results. Params are read in place (no
//! decoding copy, no allocation) and results are written from the segment
//! straight into the caller's results buffer, so a call allocates nothing.
//!
//! Results are built by `capnp`'s own layout code over an arena of this
//! module ([`FrameArena`]): `capnp::message::Builder` keeps its segment list
//! in a `Vec`, which would be one heap allocation per call; the arena keeps
//! it in a fixed array. The arena implements `capnp::private::arena`'s
//! traits, the interface capnp's generated code is built on (pinned by the
//! lockfile like the rest of capnp).
//!
//! The results segment is kept zeroed between calls (the arena's allocator
//! zeroes only the words a message used when it lets go of it). A
//! call that finds its CPU's scratch taken (a thread preempted inside a call
//! on the same CPU) or whose params are larger than the buffer gets a frame
//! on the heap instead: a fallible allocation of the params, and results in
//! heap segments.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use capnp::message::{Allocator, HeapAllocator};
use capnp::private::arena::{BuilderArena, ReaderArena};
use capnp::private::layout::PointerBuilder;
use capnp::traits::Owned;
use capos_abi::TransportError;
use capos_schema::rpc::{CallFrame, DispatchError, ServerError};
use capos_schema::wire;

use crate::arch::x86_64::percpu::{cpu_index, MAX_CPUS};

/// Bytes of params a per-CPU frame holds.
pub const PARAMS_BYTES: usize = 4096;

/// Words in the per-CPU results segment (8 KiB: larger results continue in
/// heap segments).
pub const RESULTS_WORDS: usize = 1024;

/// Words of the first heap segment when a frame has no scratch segment.
const HEAP_FIRST_WORDS: u32 = 64;

/// Most segments a results message written from a frame may have (its
/// segment table is built on the stack). Each segment after the first is at
/// least as large as all before it together, so 32 segments are more than
/// any bounded kernel result reaches.
pub const MAX_RESULT_SEGMENTS: usize = 32;

/// One CPU's scratch memory.
struct Scratch {
    busy: AtomicBool,
    params: UnsafeCell<[u64; PARAMS_BYTES / 8]>,
    results: UnsafeCell<[u64; RESULTS_WORDS]>,
}

// SAFETY: the cells are reached only by the holder of `busy` (see `with`).
unsafe impl Sync for Scratch {}

static SCRATCH: [Scratch; MAX_CPUS] = [const {
    Scratch {
        busy: AtomicBool::new(false),
        params: UnsafeCell::new([0; PARAMS_BYTES / 8]),
        results: UnsafeCell::new([0; RESULTS_WORDS]),
    }
}; MAX_CPUS];

/// The results allocator of a frame: the scratch segment first (if the
/// frame has one), then heap segments.
struct FrameAlloc<'s> {
    first: Option<&'s mut [u64]>,
    first_out: bool,
    heap: HeapAllocator,
}

// SAFETY: the scratch segment is zeroed whenever it is handed out (zeroed
// at boot, and `deallocate_segment` zeroes every word a message may have
// written before it can be handed out again); heap segments come from
// capnp's own allocator.
unsafe impl Allocator for FrameAlloc<'_> {
    fn allocate_segment(&mut self, minimum_size: u32) -> (NonNull<u8>, u32) {
        if !self.first_out {
            if let Some(first) = self.first.as_deref_mut() {
                if minimum_size as usize <= first.len() {
                    self.first_out = true;
                    return (NonNull::from(&mut first[0]).cast(), first.len() as u32);
                }
            }
        }
        self.heap.allocate_segment(minimum_size)
    }

    unsafe fn deallocate_segment(&mut self, ptr: NonNull<u8>, word_size: u32, words_used: u32) {
        if let Some(first) = self.first.as_deref_mut() {
            if ptr == NonNull::from(&mut first[0]).cast() {
                let used = (words_used as usize).min(first.len());
                first[..used].fill(0);
                self.first_out = false;
                return;
            }
        }
        // SAFETY: not the scratch segment, so one `heap` handed out, with
        // the sizes capnp reports for it.
        unsafe { self.heap.deallocate_segment(ptr, word_size, words_used) }
    }
}

/// One segment of a results message being built.
struct Segment {
    ptr: NonNull<u8>,
    /// Words the segment holds.
    capacity: u32,
    /// Words used so far.
    allocated: u32,
}

/// The arena a frame's results are built in: segments from a
/// [`FrameAlloc`], listed in a fixed array.
struct FrameArena<'s> {
    alloc: FrameAlloc<'s>,
    segments: arrayvec::ArrayVec<Segment, MAX_RESULT_SEGMENTS>,
}

impl<'s> FrameArena<'s> {
    fn new(alloc: FrameAlloc<'s>) -> Self {
        Self { alloc, segments: arrayvec::ArrayVec::new() }
    }

    /// Adds a segment of at least `minimum` words.
    fn add_segment(&mut self, minimum: u32) -> u32 {
        let (ptr, capacity) = self.alloc.allocate_segment(minimum);
        let id = self.segments.len() as u32;
        self.segments.push(Segment { ptr, capacity, allocated: 0 });
        id
    }

    /// The encoded segments, in order.
    fn output(&self) -> impl Iterator<Item = &[u8]> {
        self.segments.iter().map(|s| {
            // SAFETY: the first `allocated` words of the segment were
            // handed out by this arena and written by capnp's builders;
            // the shared borrow of the arena keeps them from changing.
            unsafe { core::slice::from_raw_parts(s.ptr.as_ptr(), s.allocated as usize * 8) }
        })
    }
}

impl Drop for FrameArena<'_> {
    fn drop(&mut self) {
        for s in self.segments.drain(..) {
            // SAFETY: each segment came from `alloc` with this capacity, and
            // is given back once.
            unsafe { self.alloc.deallocate_segment(s.ptr, s.capacity, s.allocated) };
        }
    }
}

// SAFETY: as capnp's own builder arena: segments are returned with the
// words used so far, and offsets within a segment are not checked (the
// builder writes only where it allocated).
unsafe impl ReaderArena for FrameArena<'_> {
    fn get_segment(&self, id: u32) -> capnp::Result<(*const u8, u32)> {
        let s = self.segments.get(id as usize).ok_or_else(|| {
            capnp::Error::failed(alloc::format!("no segment {id} in a results message"))
        })?;
        Ok((s.ptr.as_ptr(), s.allocated))
    }

    unsafe fn check_offset(
        &self,
        _segment_id: u32,
        start: *const u8,
        offset_in_words: i32,
    ) -> capnp::Result<*const u8> {
        // SAFETY: the builder asks only for offsets inside what it
        // allocated in this segment (as with capnp's own builder arena).
        Ok(unsafe { start.offset(offset_in_words as isize * 8) })
    }

    fn contains_interval(&self, _id: u32, _start: *const u8, _size: usize) -> capnp::Result<()> {
        Ok(())
    }

    fn amplified_read(&self, _virtual_amount: u64) -> capnp::Result<()> {
        Ok(())
    }

    fn nesting_limit(&self) -> i32 {
        i32::MAX
    }

    fn size_in_words(&self) -> usize {
        self.segments.iter().map(|s| s.allocated as usize).sum()
    }
}

// SAFETY: allocations are handed out inside a segment's capacity and never
// twice; segment memory is zeroed when handed out (FrameAlloc's contract).
unsafe impl BuilderArena for FrameArena<'_> {
    fn allocate(&mut self, segment_id: u32, amount: u32) -> Option<u32> {
        let s = self.segments.get_mut(segment_id as usize)?;
        if amount > s.capacity - s.allocated {
            return None;
        }
        let at = s.allocated;
        s.allocated += amount;
        Some(at)
    }

    fn allocate_anywhere(&mut self, amount: u32) -> (u32, u32) {
        for id in 0..self.segments.len() as u32 {
            if let Some(at) = self.allocate(id, amount) {
                return (id, at);
            }
        }
        assert!(
            !self.segments.is_full(),
            "a results message needs more than {MAX_RESULT_SEGMENTS} segments"
        );
        let id = self.add_segment(amount);
        let at = self.allocate(id, amount).expect("a fresh segment holds what it was made for");
        (id, at)
    }

    fn get_segment_mut(&mut self, id: u32) -> (*mut u8, u32) {
        let s = &self.segments[id as usize];
        (s.ptr.as_ptr(), s.capacity)
    }

    fn as_reader(&self) -> &dyn ReaderArena {
        self
    }
}

/// The frame a kernel object serves one call in.
pub struct KernelFrame<'s> {
    params: &'s mut [u8],
    scratch: Option<&'s mut [u64]>,
    arena: Option<FrameArena<'s>>,
}

impl<'s> KernelFrame<'s> {
    fn new(params: &'s mut [u8], scratch: Option<&'s mut [u64]>) -> Self {
        Self { params, scratch, arena: None }
    }

    /// The params buffer, for the ring to fill from user memory.
    pub fn params_mut(&mut self) -> &mut [u8] {
        self.params
    }

    /// The params message as the caller sent it (an endpoint queues it for
    /// its server).
    pub fn params(&self) -> &[u8] {
        self.params
    }

    /// The built results as a segment table and segments, or `None` when no
    /// results were built.
    pub fn results(&self) -> Option<Results<'_>> {
        let arena = self.arena.as_ref()?;
        let n = arena.segments.len();
        if n == 0 {
            return None;
        }
        let mut table = [0u8; (MAX_RESULT_SEGMENTS / 2 + 1) * 8];
        table[..4].copy_from_slice(&((n - 1) as u32).to_le_bytes());
        let mut words = 0;
        for (i, s) in arena.segments.iter().enumerate() {
            table[4 + 4 * i..8 + 4 * i].copy_from_slice(&s.allocated.to_le_bytes());
            words += s.allocated as usize;
        }
        let table_len = (n / 2 + 1) * 8;
        Some(Results { table, table_len, arena, len: table_len + words * 8 })
    }
}

/// A results message built in a frame, ready to be written out.
pub struct Results<'a> {
    table: [u8; (MAX_RESULT_SEGMENTS / 2 + 1) * 8],
    table_len: usize,
    arena: &'a FrameArena<'a>,
    len: usize,
}

impl Results<'_> {
    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// The message's pieces in order: segment table, then segments.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        core::iter::once(&self.table[..self.table_len]).chain(self.arena.output())
    }
}

impl CallFrame for KernelFrame<'_> {
    fn serve<P: Owned, R: Owned, C>(
        &mut self,
        handle: impl for<'a, 'b> FnOnce(P::Reader<'a>, R::Builder<'b>) -> Result<C, ServerError>,
    ) -> Result<C, DispatchError> {
        let mut rest: &[u8] = self.params;
        let reader = capnp::serialize::read_message_from_flat_slice_no_alloc(
            &mut rest,
            wire::reader_options(),
        )
        .map_err(DispatchError::Malformed)?;
        if !rest.is_empty() {
            return Err(DispatchError::Malformed(capnp::Error::failed(alloc::format!(
                "{} bytes follow the params message",
                rest.len()
            ))));
        }
        let params = reader.get_root::<P::Reader<'_>>().map_err(DispatchError::Malformed)?;
        let alloc = FrameAlloc {
            first: self.scratch.take(),
            first_out: false,
            heap: HeapAllocator::new().first_segment_words(HEAP_FIRST_WORDS),
        };
        let arena = self.arena.insert(FrameArena::new(alloc));
        // The root pointer: the first word of the first segment.
        let first = arena.add_segment(1);
        arena.allocate(first, 1).expect("a segment holds at least one word");
        let (root, _) = arena.get_segment_mut(first);
        let root = capnp::any_pointer::Builder::new(PointerBuilder::get_root(arena, first, root));
        Ok(handle(params, root.init_as::<R::Builder<'_>>())?)
    }
}

/// Runs `f` with a frame whose params buffer is `len` bytes long: this
/// CPU's scratch frame if it is free and large enough, else one on the heap
/// (`NoMemory` if that cannot be had).
pub fn with<R>(len: usize, f: impl FnOnce(&mut KernelFrame<'_>) -> R) -> Result<R, TransportError> {
    let scratch = &SCRATCH[cpu_index() as usize % MAX_CPUS];
    if len <= PARAMS_BYTES && !scratch.busy.swap(true, Ordering::Acquire) {
        // SAFETY: `busy` was false and is now ours: nothing else reaches
        // these cells until it is cleared below, after the frame (and every
        // borrow of them) is gone.
        let (params, results) =
            unsafe { (&mut *scratch.params.get(), &mut *scratch.results.get()) };
        let params = &mut bytes_of(params)[..len];
        let out = {
            let mut frame = KernelFrame::new(params, Some(&mut results[..]));
            f(&mut frame)
        };
        scratch.busy.store(false, Ordering::Release);
        return Ok(out);
    }
    // alloc: the call's params, at most the SQE limit on params_len
    let mut words: Vec<u64> = Vec::new();
    words.try_reserve_exact(len.div_ceil(8)).map_err(|_| TransportError::NoMemory)?;
    words.resize(len.div_ceil(8), 0);
    let mut frame = KernelFrame::new(&mut bytes_of(&mut words)[..len], None);
    Ok(f(&mut frame))
}

/// Words as bytes.
fn bytes_of(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64 has no padding and any byte pattern is a valid u64; the
    // byte slice covers exactly the words' memory and borrows it mutably.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}
