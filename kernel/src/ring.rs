//! The kernel side of the capability ring: SQ intake and dispatch,
//! `cap_enter`.
//!
//! Every thread has its own ring (see `proc::thread`): `cap_enter` works on
//! the calling thread's ring, and a deferred completion goes to the ring of
//! the thread whose SQE made the call (see `completion`).
//!
//! The ring lives in user memory; the kernel reaches it through the direct
//! map of the ring's frames. Only `sq_tail` and `cq_head` are read from the
//! shared header, and both are checked against the kernel's own copies of
//! `sq_head` and `cq_tail` (which the user cannot change): a header whose
//! counts do not add up (say, more SQEs than the ring holds) makes
//! `cap_enter` fail with `Malformed`, and the ring is left untouched. See
//! `docs/src/ring.md` for the protocol.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::Ordering;

use capos_abi::{
    CapId, Opcode, RingHeader, Sqe, TransportError, XferDesc, MAX_XFER, RETURN_STATUSES, XFER_COPY,
    XFER_DESC_SIZE, XFER_MOVE,
};
use capos_lib::ring::{self as ring_index, check_sqe_header, check_sqe_limits, SqConsumer};

use crate::cap::endpoint::Endpoint;
use crate::cap::{CallContext, CallOutcome, CapEntry};
use crate::completion::{
    cqe, deliver, deliver_exception, err, ring_of, Dest, Message, PendingCall, Status,
};
use crate::mem::address_space::Access;
use crate::mem::user::UserRange;
use crate::mem::PAGE_SIZE;
use crate::proc::Process;
use crate::sched::{self, Thread};
use capos_abi::Cqe;

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
    let user = crate::proc::thread::user_of(me).expect("cap_enter runs on a user thread");
    let ring = &user.ring;
    loop {
        let (ready, entries) = match submit(process, me) {
            Ok(r) => r,
            Err(e) => return e.to_syscall_return(),
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
/// completions posted under one lock again. Returns, read under the last
/// lock, the CQEs ready (`None`: the user's `cq_head` is inconsistent) and
/// the CQ's size.
fn submit(
    process: &Arc<Process>,
    thread: &Arc<Thread>,
) -> Result<(Option<u32>, u32), TransportError> {
    let shared = ring_of(thread);
    let mut ring = shared.lock();
    loop {
        let tail = ring.header_field(offset_of!(RingHeader, sq_tail)).load(Ordering::Acquire);
        if tail == ring.sq_head {
            return Ok((ring.cq_ready(), ring.cq_entries));
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
            n
        };
        if n == 0 {
            return Ok((ring.cq_ready(), ring.cq_entries));
        }
        drop(ring);
        let mut done: arrayvec::ArrayVec<Cqe, INTAKE_BATCH> = arrayvec::ArrayVec::new();
        for sqe in &batch {
            if let Some(c) = execute_counted(process, thread, sqe) {
                done.push(c);
            }
        }
        ring = shared.lock();
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
        let mut space = process.space.lock();
        let space = space.as_mut().ok_or(TransportError::Disconnected)?;
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
    // As for a CALL's results: the buffer lies in the user half, its first
    // page's worth is checked now, the rest as a call is written into it.
    let buffer = match UserRange::new(sqe.results_addr, sqe.results_len as u64) {
        Ok(_) => UserRange::new(sqe.results_addr, (sqe.results_len as u64).min(PAGE_SIZE))
            .expect("a prefix of a valid user range is valid"),
        Err(_) => return Some(err(TransportError::BadPointer)),
    };
    {
        let mut space = process.space.lock();
        let Some(space) = space.as_mut() else { return Some(err(TransportError::Disconnected)) };
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
    // The answer is copied once, into this CPU's call frame, and from there
    // into the caller's results buffer.
    let answered = crate::frame::with(sqe.params_len as usize, |frame| {
        {
            let mut space = process.space.lock();
            let Some(space) = space.as_mut() else {
                return Some(err(TransportError::Disconnected));
            };
            let read = UserRange::new(sqe.params_addr, sqe.params_len as u64)
                .and_then(|r| r.read(space, frame.params_mut()));
            if read.is_err() {
                return Some(err(TransportError::BadPointer));
            }
        }
        let bytes = frame.params();
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
    });
    answered.unwrap_or_else(|e| Some(err(e)))
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
    let served = crate::frame::with(sqe.params_len as usize, |frame| {
        {
            let mut space = process.space.lock();
            let Some(space) = space.as_mut() else {
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
