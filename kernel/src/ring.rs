//! The kernel side of the capability ring: SQ processing, CQ posting,
//! `cap_enter`.
//!
//! Every thread has its own ring (see `proc::thread`): `cap_enter` works on
//! the calling thread's ring, and a deferred completion goes to the ring of
//! the thread whose SQE made the call.
//!
//! The ring lives in user memory; the kernel reaches it through the direct
//! map of the ring's frames. Only `sq_tail` and `cq_head` are read from the
//! shared header, and both are checked against the kernel's own copies of
//! `sq_head` and `cq_tail` (which the user cannot change): a header whose
//! counts do not add up (say, more SQEs than the ring holds) makes
//! `cap_enter` fail with `Malformed`, and the ring is left untouched. See
//! `docs/src/ring.md` for the protocol.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering};

use capos_abi::{
    CapId, Cqe, Opcode, RingHeader, Sqe, TransportError, XferDesc, CQE_SIZE, MAX_XFER,
    RETURN_STATUSES, SQE_SIZE, XFER_COPY, XFER_DESC_SIZE, XFER_MOVE,
};
use capos_lib::ring::{self as ring_index, check_sqe_header, check_sqe_limits, SqConsumer};

use crate::cap::endpoint::Endpoint;
use crate::cap::{CallContext, CallOutcome, CapEntry};
use crate::mem::address_space::Access;
use crate::mem::user::UserRange;
use crate::mem::{phys_to_virt, PAGE_SIZE};
use crate::proc::Process;
use crate::sched::{self, Thread};

/// The ring of a user thread.
pub fn ring_of(thread: &Thread) -> &crate::sync::IrqLock<RingState> {
    &thread.user.as_ref().expect("only user threads use rings").ring
}

/// Most pages one ring has.
pub const MAX_RING_PAGES: usize = 8;

/// Kernel-private ring state of one thread.
pub struct RingState {
    pages: [u64; MAX_RING_PAGES],
    npages: usize,
    sq_entries: u32,
    cq_entries: u32,
    sqe_offset: u32,
    cqe_offset: u32,
    /// Next SQE the kernel consumes (its own copy; the header's is output).
    sq_head: u32,
    /// Next CQE slot the kernel fills (its own copy).
    cq_tail: u32,
    /// Accepted calls whose completion is still to come; CQ space is
    /// reserved for each.
    inflight: u32,
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

    fn header_field(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: the header lies in the ring's first page (owned by the
        // process, alive while the ring is open); fields are 4-byte aligned.
        unsafe { &*(self.ptr(offset as u32) as *const AtomicU32) }
    }

    /// Copies the SQE in SQ slot `slot` (below `sq_entries`, from
    /// [`SqConsumer`]).
    fn read_sqe(&self, slot: usize) -> Sqe {
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
    fn publish(&self) {
        self.header_field(offset_of!(RingHeader, cq_tail)).store(self.cq_tail, Ordering::Release);
    }

    /// The user's `cq_head` as the header holds it now.
    fn cq_head(&self) -> u32 {
        self.header_field(offset_of!(RingHeader, cq_head)).load(Ordering::Acquire)
    }

    /// CQEs posted and not yet consumed, or `None` if the user's `cq_head`
    /// is inconsistent.
    fn cq_ready(&self) -> Option<u32> {
        ring_index::cq_ready(self.cq_head(), self.cq_tail, self.cq_entries).ok()
    }

    /// Posts a completion if the ring is open (space is always reserved);
    /// a full CQ or a corrupt `cq_head` counts in `cq_overflow` instead.
    fn post(&mut self, cqe: &Cqe) {
        self.post_unpublished(cqe);
        self.publish();
    }

    /// [`Self::post`] without publishing: a batch publishes once at its end.
    fn post_unpublished(&mut self, cqe: &Cqe) {
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
type Status = Result<(u32, u32), (TransportError, u32)>;

fn err(e: TransportError) -> Status {
    Err((e, 0))
}

fn cqe(user_data: u64, status: Status) -> Cqe {
    let (status, result_len, cap_count) = match status {
        Ok((len, caps)) => (capos_abi::STATUS_OK, len, caps),
        Err((e, len)) => (e.code(), len, 0),
    };
    Cqe { user_data, status, result_len, cap_count, reserved: 0, aux: 0 }
}

/// `cap_enter(min_complete, timeout_ns)`: processes the submitted SQEs, then
/// waits until `min_complete` completions are ready or the timeout passes.
/// Returns the number of ready completions, or a negative transport error.
pub fn cap_enter(
    process: &Arc<Process>,
    me: &Arc<Thread>,
    min_complete: u64,
    timeout_ns: u64,
) -> u64 {
    let deadline = crate::time::deadline_after_ns(timeout_ns);
    let user = me.user.as_ref().expect("cap_enter runs on a user thread");
    let ring = &user.ring;
    loop {
        if let Err(e) = submit(process, me) {
            return e.to_syscall_return();
        }
        let (ready, entries) = {
            let r = ring.lock();
            (r.cq_ready(), r.cq_entries)
        };
        let Some(ready) = ready else {
            return TransportError::Malformed.to_syscall_return();
        };
        let want = min_complete.min(entries as u64);
        if ready as u64 >= want {
            return ready as u64;
        }
        if process.kill_requested.load(Ordering::Acquire) {
            return ready as u64;
        }
        if deadline.is_some_and(|d| crate::time::now_tsc() >= d) {
            return if ready == 0 {
                TransportError::Timeout.to_syscall_return()
            } else {
                ready as u64
            };
        }
        user.waiting.store(true, Ordering::SeqCst);
        // Re-check after publishing ourselves as waiting: a completion
        // posted before this point was missed by `post_and_wake`'s wake-up;
        // one posted after it calls `wake`, which makes the block return at
        // once.
        if ring.lock().cq_ready().is_some_and(|r| r as u64 >= want) {
            user.waiting.store(false, Ordering::SeqCst);
            continue;
        }
        let timer = deadline.map(|d| crate::time::wake_at(d, process.pid, me));
        sched::block_current();
        if let Some(id) = timer {
            crate::time::cancel(id);
        }
        user.waiting.store(false, Ordering::SeqCst);
    }
}

/// SQEs taken from the ring per lock acquisition (their completions are
/// posted under one lock and published with one store).
const INTAKE_BATCH: usize = 32;

/// Processes every submitted SQE the CQ has room for. SQEs are copied out
/// of the ring in batches under one lock, executed without it, and their
/// completions posted under one lock again.
fn submit(process: &Arc<Process>, thread: &Arc<Thread>) -> Result<(), TransportError> {
    let shared = ring_of(thread);
    loop {
        let mut ring = shared.lock();
        let tail = ring.header_field(offset_of!(RingHeader, sq_tail)).load(Ordering::Acquire);
        if tail == ring.sq_head {
            return Ok(());
        }
        // Not initialised up front: only what is taken is written.
        let mut batch: arrayvec::ArrayVec<Sqe, INTAKE_BATCH> = arrayvec::ArrayVec::new();
        let n = {
            // Each accepted SQE reserves its completion slot now. A corrupt
            // CQ head or SQ tail is Malformed (RingError's mapping).
            let room =
                ring_index::cq_free(ring.cq_head(), ring.cq_tail, ring.cq_entries, ring.inflight)?;
            let mut sq = SqConsumer::new(ring.sq_head, tail, ring.sq_entries, room)?;
            // A full batch stops before the consumer takes one more slot.
            while !batch.is_full() {
                let Some(slot) = sq.next() else { break };
                batch.push(ring.read_sqe(slot));
            }
            let n = batch.len();
            ring.sq_head = sq.head();
            let head = ring.sq_head;
            ring.header_field(offset_of!(RingHeader, sq_head)).store(head, Ordering::Release);
            ring.inflight += n as u32;
            drop(ring);
            n
        };
        if n == 0 {
            return Ok(());
        }
        let mut done: arrayvec::ArrayVec<Cqe, INTAKE_BATCH> = arrayvec::ArrayVec::new();
        for sqe in &batch {
            if let Some(c) = execute_counted(process, thread, sqe) {
                done.push(c);
            }
        }
        let mut ring = shared.lock();
        for c in &done {
            ring.inflight -= 1;
            ring.post_unpublished(c);
        }
        ring.publish();
    }
}

/// Performs one SQE as an open call of the process's account: refused with
/// `QuotaExceeded` past its `openCalls` limit; one that completes later
/// stays counted until [`post_and_wake`] posts it (or its ring closes).
/// RELEASE, NOP and RETURN always complete at once and are not counted: a
/// process at its limit can still let go of what it holds.
fn execute_counted(process: &Arc<Process>, thread: &Arc<Thread>, sqe: &Sqe) -> Option<Cqe> {
    if sqe.opcode != capos_abi::OP_CALL && sqe.opcode != capos_abi::OP_RECV {
        return execute(process, thread, sqe).map(|status| cqe(sqe.user_data, status));
    }
    if process.account.open_call().is_err() {
        return Some(cqe(sqe.user_data, err(TransportError::QuotaExceeded)));
    }
    let done = execute(process, thread, sqe).map(|status| cqe(sqe.user_data, status));
    if done.is_some() {
        process.account.close_calls(1);
    }
    done
}

/// Performs one SQE. `None`: the call completes later (its CQ slot stays
/// reserved).
fn execute(process: &Arc<Process>, thread: &Arc<Thread>, sqe: &Sqe) -> Option<Status> {
    // Checks run in the order docs/src/ring.md fixes: opcode, flags and
    // reserved, cap, interface, method, limits, pointers, message.
    let op = match check_sqe_header(sqe) {
        Ok(op) => op,
        Err(e) => return Some(err(e)),
    };
    match op {
        Opcode::Nop => Some(Ok((0, 0))),
        Opcode::Release => {
            let removed = process.caps.lock().remove(CapId(sqe.cap));
            // Dropped after the table lock is released: the last copy of a
            // cap may run a destructor (an endpoint closes, completing calls).
            Some(removed.map(drop).map(|()| (0, 0)).map_err(|e| (cap_error(e), 0)))
        }
        Opcode::Call => call(process, thread, op, sqe),
        Opcode::Recv => recv(process, thread, op, sqe),
        Opcode::Return => answer(process, op, sqe),
        Opcode::Pipeline => Some(err(TransportError::BadOpcode)),
    }
}

/// Checks and reads an SQE's transfer descriptors (all of them, before any
/// cap moves), then takes the caps from the sender's table: copies are
/// cloned, moves removed, under one lock. Any bad descriptor fails the whole
/// SQE and leaves the table as it was.
fn take_caps(process: &Arc<Process>, sqe: &Sqe) -> Result<Vec<CapEntry>, TransportError> {
    let n = sqe.xfer_count as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut raw = [0u8; XFER_DESC_SIZE * MAX_XFER as usize];
    let raw = &mut raw[..n * XFER_DESC_SIZE];
    {
        let space = process.space.lock();
        let space = space.as_ref().ok_or(TransportError::Disconnected)?;
        UserRange::new(sqe.xfer_addr, raw.len() as u64)
            .and_then(|r| r.read(space, raw))
            .map_err(|_| TransportError::BadPointer)?;
    }
    let mut descs = [XferDesc::default(); MAX_XFER as usize];
    for (i, d) in descs.iter_mut().take(n).enumerate() {
        *d = XferDesc::from_bytes(&raw[i * XFER_DESC_SIZE..]).ok_or(TransportError::Malformed)?;
        if (d.mode != XFER_COPY && d.mode != XFER_MOVE) || d.reserved != 0 {
            return Err(TransportError::Malformed);
        }
    }
    let descs = &descs[..n];
    if descs.iter().enumerate().any(|(i, d)| descs[..i].iter().any(|o| o.cap == d.cap)) {
        return Err(TransportError::Malformed);
    }
    let mut table = process.caps.lock();
    for d in descs {
        table.get(CapId(d.cap)).map_err(cap_error)?;
    }
    // alloc: at most MAX_XFER (16) caps
    let mut caps = Vec::with_capacity(n);
    for d in descs {
        let entry = if d.mode == XFER_MOVE {
            table.remove(CapId(d.cap))
        } else {
            table.get(CapId(d.cap)).cloned()
        };
        caps.push(entry.expect("every descriptor was checked under this lock"));
    }
    Ok(caps)
}

/// The endpoint behind a RECV/RETURN SQE's cap, after the cap, interface
/// and limit checks.
fn serving_endpoint(
    process: &Arc<Process>,
    op: Opcode,
    sqe: &Sqe,
) -> Result<Arc<Endpoint>, TransportError> {
    let entry = process.caps.lock().get(CapId(sqe.cap)).map_err(cap_error)?.clone();
    if entry.object.revoked() {
        return Err(TransportError::Revoked);
    }
    let endpoint = entry.object.endpoint().cloned().ok_or(TransportError::WrongInterface)?;
    if sqe.interface_id != entry.interface_id {
        return Err(TransportError::WrongInterface);
    }
    check_sqe_limits(op, sqe)?;
    if op == Opcode::Recv && sqe.xfer_count != 0 {
        return Err(TransportError::Malformed);
    }
    Ok(endpoint)
}

/// RECV: take the next call queued on the endpoint, or wait for one.
fn recv(process: &Arc<Process>, thread: &Arc<Thread>, op: Opcode, sqe: &Sqe) -> Option<Status> {
    let endpoint = match serving_endpoint(process, op, sqe) {
        Ok(e) => e,
        Err(e) => return Some(err(e)),
    };
    let buffer = match UserRange::new(sqe.results_addr, sqe.results_len as u64) {
        Ok(r) => r,
        Err(_) => return Some(err(TransportError::BadPointer)),
    };
    {
        let space = process.space.lock();
        let Some(space) = space.as_ref() else { return Some(err(TransportError::Disconnected)) };
        if buffer.check(space, Access::Write).is_err() {
            return Some(err(TransportError::BadPointer));
        }
    }
    let me = PendingCall {
        process: Arc::downgrade(process),
        thread: Arc::downgrade(thread),
        user_data: sqe.user_data,
        results_addr: sqe.results_addr,
        results_len: sqe.results_len,
    };
    // A call taken at once is posted through the deferred path, so the CQE
    // carries the call id.
    match endpoint.recv(me) {
        Ok(()) => None,
        Err(e) => Some(err(e)),
    }
}

/// RETURN: answer call `results_addr` with the message at `params` and the
/// status in `method`.
fn answer(process: &Arc<Process>, op: Opcode, sqe: &Sqe) -> Option<Status> {
    let endpoint = match serving_endpoint(process, op, sqe) {
        Ok(e) => e,
        Err(e) => return Some(err(e)),
    };
    let status = sqe.method as u32;
    if !RETURN_STATUSES.contains(&status) {
        return Some(err(TransportError::Malformed));
    }
    let mut bytes = Vec::new();
    if bytes.try_reserve_exact(sqe.params_len as usize).is_err() {
        return Some(err(TransportError::NoMemory));
    }
    bytes.resize(sqe.params_len as usize, 0);
    {
        let space = process.space.lock();
        let Some(space) = space.as_ref() else { return Some(err(TransportError::Disconnected)) };
        let read = UserRange::new(sqe.params_addr, sqe.params_len as u64)
            .and_then(|r| r.read(space, &mut bytes));
        if read.is_err() {
            return Some(err(TransportError::BadPointer));
        }
    }
    let outcome = match TransportError::from_u32(status) {
        None => Ok(bytes),
        Some(e) => Err((e, bytes)),
    };
    if !endpoint.serving(sqe.results_addr) {
        return Some(err(TransportError::UnknownCall));
    }
    let caps = match take_caps(process, sqe) {
        Ok(c) => c,
        Err(e) => return Some(err(e)),
    };
    Some(endpoint.answer(sqe.results_addr, outcome, caps).map(|()| (0, 0)).map_err(|e| (e, 0)))
}

fn cap_error(e: capos_lib::cap_table::CapError) -> TransportError {
    match e {
        capos_lib::cap_table::CapError::StaleCap { .. } => TransportError::StaleCap,
        _ => TransportError::InvalidCap,
    }
}

/// Decodes and validates a CALL completely, then performs it.
fn call(process: &Arc<Process>, thread: &Arc<Thread>, op: Opcode, sqe: &Sqe) -> Option<Status> {
    let entry = match process.caps.lock().get(CapId(sqe.cap)) {
        Ok(e) => e.clone(),
        Err(e) => return Some(err(cap_error(e))),
    };
    if entry.object.revoked() {
        return Some(err(TransportError::Revoked));
    }
    if entry.interface_id != sqe.interface_id {
        return Some(err(TransportError::WrongInterface));
    }
    if !entry.object.has_method(sqe.method) {
        return Some(err(TransportError::BadMethod));
    }
    if let Err(e) = check_sqe_limits(op, sqe) {
        return Some(err(e));
    }
    if sqe.xfer_count != 0 && !entry.object.accepts_caps(sqe.method) {
        // This object takes no caps with this method.
        return Some(err(TransportError::Malformed));
    }
    let params_range = match UserRange::new(sqe.params_addr, sqe.params_len as u64) {
        Ok(r) => r,
        Err(_) => return Some(err(TransportError::BadPointer)),
    };
    // The results buffer must lie in the user half. Its first page's worth
    // is checked before the call is performed (a buffer that is plainly
    // wrong never lets a call run); the rest, which only large results
    // reach, is checked as it is written.
    if UserRange::new(sqe.results_addr, sqe.results_len as u64).is_err() {
        return Some(err(TransportError::BadPointer));
    }
    let results_head = UserRange::new(sqe.results_addr, (sqe.results_len as u64).min(PAGE_SIZE))
        .expect("a prefix of a valid user range is valid");
    // The params are copied once, into this CPU's call frame, and read there
    // in place; the results are built in the frame.
    let served = crate::cap::frame::with(sqe.params_len as usize, |frame| {
        {
            let space = process.space.lock();
            let Some(space) = space.as_ref() else {
                return Some(err(TransportError::Disconnected));
            };
            if params_range.read(space, frame.params_mut()).is_err()
                || results_head.check(space, Access::Write).is_err()
            {
                return Some(err(TransportError::BadPointer));
            }
        }
        // A call the object cannot take now (a full endpoint queue) fails
        // before any moved cap leaves the table.
        if let Err(e) = entry.object.admits() {
            return Some(err(e));
        }
        // Last: take the transferred caps (nothing before this changed any
        // table).
        let caps_in = match take_caps(process, sqe) {
            Ok(c) => c,
            Err(e) => return Some(err(e)),
        };
        let ctx = CallContext {
            caller: process,
            thread,
            user_data: sqe.user_data,
            results_addr: sqe.results_addr,
            results_len: sqe.results_len,
            caps_in: core::cell::RefCell::new(caps_in),
        };
        let to = Dest { addr: sqe.results_addr, len: sqe.results_len };
        match entry.object.call(&ctx, sqe.method, frame) {
            CallOutcome::Built { caps } => {
                let Some(results) = frame.results() else {
                    return Some(err(TransportError::TooLarge));
                };
                Some(deliver(process, to, Message::Frame(&results), caps).map_err(|(e, _)| (e, 0)))
            }
            CallOutcome::Done { results, caps } => {
                Some(deliver(process, to, Message::Bytes(&results), caps).map_err(|(e, _)| (e, 0)))
            }
            CallOutcome::Exception(bytes) => Some(deliver_exception(process, to, &bytes)),
            CallOutcome::Pending => None,
            CallOutcome::Failed(e) => Some(err(e)),
        }
    });
    served.unwrap_or_else(|e| Some(err(e)))
}

/// Where a completion's results go: the caller's results buffer.
#[derive(Clone, Copy)]
struct Dest {
    addr: u64,
    len: u32,
}

impl From<&PendingCall> for Dest {
    fn from(to: &PendingCall) -> Self {
        Self { addr: to.results_addr, len: to.results_len }
    }
}

/// A results message to deliver: encoded bytes, or one built in a call
/// frame (segment table and segments, written without joining them).
enum Message<'a> {
    Bytes(&'a [u8]),
    Frame(&'a crate::cap::frame::Results<'a>),
}

impl Message<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::Frame(r) => r.encoded_len(),
        }
    }

    /// Writes the message at the writer's position.
    fn write_to(&self, w: &mut crate::mem::user::UserWriter<'_>) -> Result<(), TransportError> {
        let bad = |_| TransportError::BadPointer;
        match self {
            Self::Bytes(b) => w.write(b).map_err(bad),
            Self::Frame(r) => r.pieces().try_for_each(|p| w.write(p).map_err(bad)),
        }
    }
}

/// Writes a results message (and result caps, as 8-byte CapIds after the
/// message, 8-aligned) into the caller's results buffer. On failure the
/// caps come back (none stays in the table); they are dropped by the caller,
/// never under a lock of this process.
fn deliver(
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
        let space = process.space.lock();
        let Some(space) = space.as_ref() else { return Err((TransportError::Disconnected, caps)) };
        return match results.write_to(&mut range.writer(space)) {
            Ok(()) => Ok((len as u32, 0)),
            Err(e) => Err((e, caps)),
        };
    }
    // What is written must be writable before any cap enters the table.
    {
        let space = process.space.lock();
        let Some(space) = space.as_ref() else { return Err((TransportError::Disconnected, caps)) };
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
    let space = process.space.lock();
    let written = space.as_ref().map(|s| {
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
fn deliver_exception(process: &Arc<Process>, to: Dest, bytes: &[u8]) -> Status {
    let n = bytes.len().min(to.len as usize);
    let space = process.space.lock();
    let ok = space.as_ref().is_some_and(|s| {
        UserRange::new(to.addr, n as u64).and_then(|r| r.write(s, &bytes[..n])).is_ok()
    });
    Err((TransportError::AppError, if ok && n == bytes.len() { n as u32 } else { 0 }))
}

/// Completes a call that returned [`CallOutcome::Pending`] with results (or
/// an error).
pub fn complete(to: PendingCall, outcome: Result<Vec<u8>, TransportError>) {
    complete_reply(to, outcome.map_err(|e| (e, Vec::new())), Vec::new());
}

/// Completes a deferred call with a server's answer: results (and result
/// caps), an application error (with its encoded exception) or a transport
/// error.
pub fn complete_reply(
    to: PendingCall,
    outcome: Result<Vec<u8>, (TransportError, Vec<u8>)>,
    caps: Vec<CapEntry>,
) {
    let Some(process) = to.process.upgrade() else { return };
    let status = match outcome {
        // Caps that could not be delivered are dropped here, no lock held.
        Ok(results) => deliver(&process, Dest::from(&to), Message::Bytes(&results), caps)
            .map_err(|(e, _)| (e, 0)),
        Err((TransportError::AppError, bytes)) => {
            deliver_exception(&process, Dest::from(&to), &bytes)
        }
        Err((e, _)) => err(e),
    };
    post_and_wake(&to, &cqe(to.user_data, status));
}

/// Completes a deferred operation with an error.
pub fn complete_error(to: PendingCall, e: TransportError) {
    post_and_wake(&to, &cqe(to.user_data, err(e)));
}

/// Completes a RECV: the header and params (`bytes`), then the CapIds of the
/// transferred `caps` (installed in the receiver's table), with the call id
/// in `aux`. On failure the RECV completes with the error, which is returned
/// with the caps (none of them stays in the receiver's table), so the
/// endpoint can offer the call again.
pub fn complete_recv(
    to: PendingCall,
    bytes: &[u8],
    call_id: u64,
    caps: Vec<CapEntry>,
) -> Result<(), (TransportError, Vec<CapEntry>)> {
    let Some(process) = to.process.upgrade() else {
        return Err((TransportError::Disconnected, caps));
    };
    let delivered = deliver(&process, Dest::from(&to), Message::Bytes(bytes), caps);
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
    let Some(user) = thread.user.as_ref() else { return };
    let counted = {
        let mut ring = user.ring.lock();
        // A closed ring gave its open calls back when it closed.
        let counted = ring.open && ring.inflight > 0;
        ring.inflight = ring.inflight.saturating_sub(1);
        ring.post(c);
        counted
    };
    if counted {
        if let Some(p) = thread.process.as_ref() {
            p.account.close_calls(1);
        }
    }
    if user.waiting.load(Ordering::SeqCst) {
        sched::wake_first(&thread);
    }
}
