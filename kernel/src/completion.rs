//! Deferred completions: the kernel-private state of a thread's ring (its
//! CQ and the CQ space reserved for accepted calls), where a deferred
//! completion goes ([`PendingCall`]), and the functions cap objects end a
//! pending call with ([`complete`], [`complete_reply`], [`complete_error`],
//! [`complete_recv`]): each writes the results into the caller's buffer,
//! posts the CQE into its reserved slot and wakes the caller if it waits in
//! `cap_enter`.
//!
//! SQ intake and dispatch (the layer above the cap objects) is in `ring`.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering};

use capos_abi::{CapId, Cqe, RingHeader, Sqe, TransportError, CQE_SIZE, MAX_XFER, SQE_SIZE};
use capos_lib::ring as ring_index;

use crate::cap::CapEntry;
use crate::mem::address_space::Access;
use crate::mem::user::UserRange;
use crate::mem::{phys_to_virt, PAGE_SIZE};
use crate::proc::Process;
use crate::sched::{self, Thread};

/// The ring of a user thread.
pub fn ring_of(thread: &Thread) -> &crate::sync::IrqLock<RingState> {
    &crate::proc::thread::user_of(thread).expect("only user threads use rings").ring
}

/// Most pages one ring has.
pub const MAX_RING_PAGES: usize = 8;

/// Kernel-private ring state of one thread.
pub struct RingState {
    pages: [u64; MAX_RING_PAGES],
    npages: usize,
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
    sqe_offset: u32,
    cqe_offset: u32,
    /// Next SQE the kernel consumes (its own copy; the header's is output).
    pub(crate) sq_head: u32,
    /// Next CQE slot the kernel fills (its own copy).
    pub(crate) cq_tail: u32,
    /// Accepted calls whose completion is still to come; CQ space is
    /// reserved for each.
    pub(crate) inflight: u32,
    open: bool,
}

/// Where a deferred completion goes.
#[derive(Clone)]
pub struct PendingCall {
    /// The caller.
    pub process: Weak<Process>,
    /// The calling thread, whose ring takes the completion.
    pub thread: Weak<Thread>,
    /// The SQE's user data.
    pub user_data: u64,
    /// Results buffer.
    pub results_addr: u64,
    /// Results buffer length.
    pub results_len: u32,
}

impl PendingCall {
    /// Whether the caller can still take the completion (its process has
    /// not begun to end).
    pub fn is_live(&self) -> bool {
        self.process.upgrade().is_some_and(|p| !p.exit_started())
            && self.thread.upgrade().is_some_and(|t| ring_of(&t).lock().is_open())
    }
}

impl RingState {
    /// A ring over `pages` (physical, in order) with the given geometry,
    /// whose header the caller already initialised.
    pub fn new(
        pages: &[u64],
        sq_entries: u32,
        cq_entries: u32,
        sqe_offset: u32,
        cqe_offset: u32,
    ) -> Self {
        let mut p = [0; MAX_RING_PAGES];
        p[..pages.len()].copy_from_slice(pages);
        Self {
            pages: p,
            npages: pages.len(),
            sq_entries,
            cq_entries,
            sqe_offset,
            cqe_offset,
            sq_head: 0,
            cq_tail: 0,
            inflight: 0,
            open: true,
        }
    }

    /// Marks the ring gone (its frames are freed with the address space);
    /// returns how many calls were still open on it (their completions
    /// will find it closed).
    pub fn close(&mut self) -> u32 {
        self.open = false;
        core::mem::take(&mut self.inflight)
    }

    /// Whether the ring still takes completions.
    pub fn is_open(&self) -> bool {
        self.open
    }

    fn ptr(&self, offset: u32) -> *mut u8 {
        let page = (offset as u64 / PAGE_SIZE) as usize;
        assert!(page < self.npages, "ring offset {offset} inside the ring");
        (phys_to_virt(self.pages[page]) + offset as u64 % PAGE_SIZE) as *mut u8
    }

    pub(crate) fn header_field(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the header lies in the ring's first page (owned by the
        // process, alive while the ring is open); fields are 4-byte aligned.
        unsafe { &*(self.ptr(offset as u32) as *const AtomicU32) }
    }

    /// Copies the SQE in SQ slot `slot` (below `sq_entries`, from
    /// [`SqConsumer`]).
    pub(crate) fn read_sqe(&self, slot: usize) -> Sqe {
        let slot = slot as u32 & (self.sq_entries - 1);
        let mut bytes = [0u8; SQE_SIZE];
        let off = self.sqe_offset + slot * SQE_SIZE as u32;
        // SAFETY: SQEs are 64-byte aligned records inside the ring mapping
        // (never straddling a page); the user may change them concurrently,
        // which only changes the (fully validated) copy we take.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr(off), bytes.as_mut_ptr(), SQE_SIZE) };
        Sqe::from_bytes(&bytes).expect("64 bytes form an SQE")
    }

    /// Writes `cqe` to CQ slot `slot` and advances the kernel's `cq_tail`
    /// to `new_tail` (both from [`ring_index::cq_push`]); [`Self::publish`]
    /// makes it visible.
    fn write_cqe(&mut self, cqe: &Cqe, slot: usize, new_tail: u32) {
        let slot = slot as u32 & (self.cq_entries - 1);
        let off = self.cqe_offset + slot * CQE_SIZE as u32;
        let bytes = cqe.to_bytes();
        // SAFETY: CQEs are 32-byte aligned records inside the ring mapping.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr(off), CQE_SIZE) };
        self.cq_tail = new_tail;
    }

    /// Publishes the CQEs written so far: one release store of `cq_tail`.
    pub(crate) fn publish(&self) {
        self.header_field(offset_of!(RingHeader, cq_tail)).store(self.cq_tail, Ordering::Release);
    }

    /// The user's `cq_head` as the header holds it now.
    pub(crate) fn cq_head(&self) -> u32 {
        self.header_field(offset_of!(RingHeader, cq_head)).load(Ordering::Acquire)
    }

    /// CQEs posted and not yet consumed, or `None` if the user's `cq_head`
    /// is inconsistent.
    pub(crate) fn cq_ready(&self) -> Option<u32> {
        ring_index::cq_ready(self.cq_head(), self.cq_tail, self.cq_entries).ok()
    }

    /// Posts a completion if the ring is open (space is always reserved);
    /// a full CQ or a corrupt `cq_head` counts in `cq_overflow` instead.
    pub(crate) fn post(&mut self, cqe: &Cqe) {
        self.post_unpublished(cqe);
        self.publish();
    }

    /// [`Self::post`] without publishing: a batch publishes once at its end.
    pub(crate) fn post_unpublished(&mut self, cqe: &Cqe) {
        if !self.open {
            return;
        }
        match ring_index::cq_push(self.cq_head(), self.cq_tail, self.cq_entries) {
            Ok((slot, new_tail)) => self.write_cqe(cqe, slot, new_tail),
            Err(_) => {
                let f = self.header_field(offset_of!(RingHeader, cq_overflow));
                f.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A completion's status: OK with (result length, result caps), an error,
/// or an application error whose encoded exception has this length.
pub(crate) type Status = Result<(u32, u32), (TransportError, u32)>;

pub(crate) fn err(e: TransportError) -> Status {
    Err((e, 0))
}

pub(crate) fn cqe(user_data: u64, status: Status) -> Cqe {
    let (status, result_len, cap_count) = match status {
        Ok((len, caps)) => (capos_abi::STATUS_OK, len, caps),
        Err((e, len)) => (e.code(), len, 0),
    };
    Cqe { user_data, status, result_len, cap_count, reserved: 0, aux: 0 }
}

/// Where a completion's results go: the caller's results buffer.
#[derive(Clone, Copy)]
pub(crate) struct Dest {
    pub(crate) addr: u64,
    pub(crate) len: u32,
}

impl From<&PendingCall> for Dest {
    fn from(to: &PendingCall) -> Self {
        Self { addr: to.results_addr, len: to.results_len }
    }
}

/// A results message to deliver: encoded bytes, or one built in a call
/// frame (segment table and segments, written without joining them).
pub(crate) enum Message<'a> {
    Bytes(&'a [u8]),
    /// A RECV's header, then the call's params: written one after the
    /// other, never joined.
    Parts(&'a [u8], &'a [u8]),
    Frame(&'a crate::frame::Results<'a>),
}

impl Message<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::Parts(a, b) => a.len() + b.len(),
            Self::Frame(r) => r.encoded_len(),
        }
    }

    /// Writes the message at the writer's position.
    pub(crate) fn write_to(
        &self,
        w: &mut crate::mem::user::UserWriter<'_>,
    ) -> Result<(), TransportError> {
        let bad = |_| TransportError::BadPointer;
        match self {
            Self::Bytes(b) => w.write(b).map_err(bad),
            Self::Parts(a, b) => w.write(a).and_then(|()| w.write(b)).map_err(bad),
            Self::Frame(r) => r.pieces().try_for_each(|p| w.write(p).map_err(bad)),
        }
    }
}

/// Writes a results message (and result caps, as 8-byte CapIds after the
/// message, 8-aligned) into the caller's results buffer. On failure the
/// caps come back (none stays in the table); they are dropped by the caller,
/// never under a lock of this process.
pub(crate) fn deliver(
    process: &Arc<Process>,
    to: Dest,
    results: Message<'_>,
    mut caps: Vec<crate::cap::CapEntry>,
) -> Result<(u32, u32), (TransportError, Vec<CapEntry>)> {
    let len = results.len();
    let caps_at = capos_abi::caps_offset(len);
    let needed = caps_at + caps.len() * 8;
    if needed > to.len as usize {
        return Err((TransportError::Overflow, caps));
    }
    let Ok(range) = UserRange::new(to.addr, needed as u64) else {
        return Err((TransportError::BadPointer, caps));
    };
    if caps.is_empty() {
        let mut space = process.space.lock();
        let Some(space) = space.as_mut() else { return Err((TransportError::Disconnected, caps)) };
        return match results.write_to(&mut range.writer(space)) {
            Ok(()) => Ok((len as u32, 0)),
            Err(e) => Err((e, caps)),
        };
    }
    // What is written must be writable before any cap enters the table.
    {
        let mut space = process.space.lock();
        let Some(space) = space.as_mut() else { return Err((TransportError::Disconnected, caps)) };
        if range.check(space, Access::Write).is_err() {
            return Err((TransportError::BadPointer, caps));
        }
    }
    // Result caps come from kernel objects (one or two) or a server's
    // RETURN (at most MAX_XFER): a fixed array holds their ids.
    let n = caps.len();
    if n > MAX_XFER as usize {
        return Err((TransportError::TooLarge, caps));
    }
    let mut ids = [CapId(0); MAX_XFER as usize];
    {
        let mut table = process.caps.lock();
        if table.limit().saturating_sub(table.len()) < n {
            // No room for them all: none goes in.
            drop(table);
            return Err((TransportError::QuotaExceeded, caps));
        }
        // Draining keeps the vector's buffer for a failure's way back.
        for (id, c) in ids.iter_mut().zip(caps.drain(..)) {
            *id = table.insert(c).expect("room for every result cap was checked under this lock");
        }
    }
    let ids = &ids[..n];
    // The message, then padding to 8 bytes and the CapIds.
    let mut tail = [0u8; 8 + 8 * MAX_XFER as usize];
    let pad = caps_at - len;
    for (i, id) in ids.iter().enumerate() {
        tail[pad + i * 8..pad + i * 8 + 8].copy_from_slice(&id.0.to_le_bytes());
    }
    let tail = &tail[..pad + n * 8];
    let mut space = process.space.lock();
    let written = space.as_mut().map(|s| {
        let mut w = range.writer(s);
        results
            .write_to(&mut w)
            .and_then(|()| w.write(tail).map_err(|_| TransportError::BadPointer))
    });
    drop(space);
    match written {
        Some(Ok(())) => Ok((len as u32, n as u32)),
        _ => {
            // Take the caps back out (into the buffer they came in: no
            // allocation); the caller drops them outside every lock.
            {
                let mut table = process.caps.lock();
                for id in ids {
                    if let Ok(c) = table.remove(*id) {
                        caps.push(c);
                    }
                }
            }
            Err((TransportError::BadPointer, caps))
        }
    }
}

/// Writes an encoded exception into the results buffer (truncated if it
/// does not fit: the status alone still tells the caller what happened).
pub(crate) fn deliver_exception(process: &Arc<Process>, to: Dest, bytes: &[u8]) -> Status {
    let n = bytes.len().min(to.len as usize);
    let mut space = process.space.lock();
    let ok = space.as_mut().is_some_and(|s| {
        UserRange::new(to.addr, n as u64).and_then(|r| r.write(s, &bytes[..n])).is_ok()
    });
    Err((TransportError::AppError, if ok && n == bytes.len() { n as u32 } else { 0 }))
}

/// Completes a call that returned [`CallOutcome::Pending`] with results (or
/// an error).
pub fn complete(to: PendingCall, outcome: Result<Vec<u8>, TransportError>) {
    match outcome {
        Ok(results) => complete_reply(to, Ok(&results), Vec::new()),
        Err(e) => complete_reply(to, Err((e, &[])), Vec::new()),
    }
}

/// Completes a deferred call with a server's answer: results (and result
/// caps), an application error (with its encoded exception) or a transport
/// error.
pub fn complete_reply(
    to: PendingCall,
    outcome: Result<&[u8], (TransportError, &[u8])>,
    caps: Vec<CapEntry>,
) {
    let Some(process) = to.process.upgrade() else { return };
    let status = match outcome {
        // Caps that could not be delivered are dropped here, no lock held.
        Ok(results) => deliver(&process, Dest::from(&to), Message::Bytes(results), caps)
            .map_err(|(e, _)| (e, 0)),
        Err((TransportError::AppError, bytes)) => {
            deliver_exception(&process, Dest::from(&to), bytes)
        }
        Err((e, _)) => err(e),
    };
    post_and_wake(&to, &cqe(to.user_data, status));
}

/// Completes a deferred operation with an error.
pub fn complete_error(to: PendingCall, e: TransportError) {
    post_and_wake(&to, &cqe(to.user_data, err(e)));
}

/// Completes a RECV: the header and params (`message`), then the CapIds of the
/// transferred `caps` (installed in the receiver's table), with the call id
/// in `aux`. On failure the RECV completes with the error, which is returned
/// with the caps (none of them stays in the receiver's table), so the
/// endpoint can offer the call again.
pub fn complete_recv(
    to: PendingCall,
    message: Message<'_>,
    call_id: u64,
    caps: Vec<CapEntry>,
) -> Result<(), (TransportError, Vec<CapEntry>)> {
    let Some(process) = to.process.upgrade() else {
        return Err((TransportError::Disconnected, caps));
    };
    let delivered = deliver(&process, Dest::from(&to), message, caps);
    let status = match &delivered {
        Ok(s) => Ok(*s),
        Err((e, _)) => err(*e),
    };
    let mut c = cqe(to.user_data, status);
    if delivered.is_ok() {
        c.aux = call_id;
    }
    post_and_wake(&to, &c);
    delivered.map(|_| ())
}

/// Posts a deferred completion (its CQ slot was reserved) to the calling
/// thread's ring and wakes the thread if it waits in `cap_enter`, ahead of
/// the rest of its run queue.
fn post_and_wake(to: &PendingCall, c: &Cqe) {
    let Some(thread) = to.thread.upgrade() else { return };
    let Some(user) = crate::proc::thread::user_of(&thread) else { return };
    let counted = {
        let mut ring = user.ring.lock();
        // A closed ring gave its open calls back when it closed.
        let counted = ring.open && ring.inflight > 0;
        ring.inflight = ring.inflight.saturating_sub(1);
        ring.post(c);
        counted
    };
    if counted {
        let owner = thread.process.as_deref().map(|o| o as &dyn core::any::Any);
        if let Some(p) = owner.and_then(|o| o.downcast_ref::<Process>()) {
            p.account.close_calls(1);
        }
    }
    if user.waiting.load(Ordering::SeqCst) {
        sched::wake_first(&thread);
    }
}
