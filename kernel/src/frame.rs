//! Call frames: where a CALL on a kernel object is served.
//!
//! Each CPU has a scratch area of word-aligned memory: a params buffer, into
//! which the ring copies a call's params once, and a results segment, in
//! which the object builds its results. Params are read in place (no
//! decoding copy, no allocation) and results are written from the segment
//! straight into the caller's results buffer, so a call allocates nothing.
//!
//! The results segment is kept zeroed between calls (the builder's
//! allocator zeroes only the words a message used when it lets go of it). A
//! call that finds its CPU's scratch taken (a thread preempted inside a call
//! on the same CPU) or whose params are larger than the buffer gets a frame
//! on the heap instead: a fallible allocation of the params, and results in
//! heap segments.

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use capnp::message::{self, Allocator, HeapAllocator};
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
/// segment table is built on the stack).
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

/// The frame a kernel object serves one call in.
pub struct KernelFrame<'s> {
    params: &'s mut [u8],
    scratch: Option<&'s mut [u64]>,
    builder: Option<message::Builder<FrameAlloc<'s>>>,
}

impl<'s> KernelFrame<'s> {
    fn new(params: &'s mut [u8], scratch: Option<&'s mut [u64]>) -> Self {
        Self { params, scratch, builder: None }
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
    /// results were built or they have too many segments to write.
    pub fn results(&self) -> Option<Results<'_>> {
        let builder = self.builder.as_ref()?;
        let segments = builder.get_segments_for_output();
        let n = segments.len();
        if n == 0 || n > MAX_RESULT_SEGMENTS {
            return None;
        }
        let mut table = [0u8; (MAX_RESULT_SEGMENTS / 2 + 1) * 8];
        table[..4].copy_from_slice(&((n - 1) as u32).to_le_bytes());
        for (i, s) in segments.iter().enumerate() {
            let words = (s.len() / 8) as u32;
            table[4 + 4 * i..8 + 4 * i].copy_from_slice(&words.to_le_bytes());
        }
        let table_len = (n / 2 + 1) * 8;
        let mut parts: [&[u8]; MAX_RESULT_SEGMENTS] = [&[]; MAX_RESULT_SEGMENTS];
        for (p, s) in parts.iter_mut().zip(segments.iter()) {
            *p = s;
        }
        let len = table_len + segments.iter().map(|s| s.len()).sum::<usize>();
        Some(Results { table, table_len, parts, count: n, len })
    }
}

/// A results message built in a frame, ready to be written out.
pub struct Results<'a> {
    table: [u8; (MAX_RESULT_SEGMENTS / 2 + 1) * 8],
    table_len: usize,
    parts: [&'a [u8]; MAX_RESULT_SEGMENTS],
    count: usize,
    len: usize,
}

impl Results<'_> {
    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// The message's pieces in order: segment table, then segments.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        core::iter::once(&self.table[..self.table_len])
            .chain(self.parts[..self.count].iter().copied())
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
        let builder = self.builder.insert(message::Builder::new(alloc));
        Ok(handle(params, builder.init_root::<R::Builder<'_>>())?)
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
