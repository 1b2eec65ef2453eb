//! `Endpoint`: kernel IPC between processes.
//!
//! A server holds the serving side ([`EndpointServer`], interface
//! `Endpoint`): it mints client caps ([`EndpointClient`]), each speaking an
//! interface of the server's choosing and carrying a server-chosen cookie the
//! client can neither read nor change. A CALL through a client cap queues on
//! the endpoint; the server takes it with RECV (the kernel writes a
//! `RecvHeader` with the call id, interface, cookie, method and an opaque
//! per-endpoint caller reference, then the params) and answers it with
//! RETURN. All queues are bounded. When the last serving cap goes (released,
//! or its process died), every queued and in-flight call completes with
//! `Disconnected`, and so does every later call through a minted cap.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use capos_abi::{RecvHeader, TransportError, RECV_HEADER_SIZE};
use capos_schema::capos_capnp::endpoint;
use capos_schema::{dispatch_endpoint_in, EndpointServer as EndpointServerTrait, ServerError};

use super::{failure, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::mem::account::Charge;
use crate::sync::IrqLock;

/// Calls queued and not yet received.
pub const MAX_QUEUED: usize = 64;
/// RECVs waiting for a call.
pub const MAX_RECEIVERS: usize = 16;
/// Calls received and not yet answered.
pub const MAX_IN_FLIGHT: usize = 64;

struct IpcCall {
    caller: PendingCall,
    caller_pid: u64,
    interface_id: u64,
    method: u16,
    cookie: u64,
    /// Room for the `RecvHeader`, then the params: the RECV buffer's bytes
    /// once the header is filled in (no second copy at delivery).
    message: Vec<u8>,
    caps: Vec<CapEntry>,
    /// The params' bytes (and this record's), charged to the caller's
    /// account until the call is delivered or fails.
    _charge: Charge,
}

/// Kernel bytes a queued call's record is charged besides its params.
const CALL_RECORD_BYTES: u64 = core::mem::size_of::<IpcCall>() as u64;

struct State {
    open: bool,
    queued: VecDeque<IpcCall>,
    receivers: VecDeque<PendingCall>,
    in_flight: InFlight,
    next_call: u64,
    /// Caller process id -> the opaque reference the server sees.
    callers: BTreeMap<u64, u64>,
    next_caller: u64,
}

/// One endpoint.
pub struct Endpoint {
    id: u64,
    state: IrqLock<State>,
}

static NEXT_ENDPOINT: AtomicU64 = AtomicU64::new(1);

/// Every endpoint, by id, for [`forget_process`].
static ENDPOINTS: IrqLock<BTreeMap<u64, Weak<Endpoint>>> = IrqLock::new(BTreeMap::new());

/// How an attempt to hand a call to one RECV ended.
enum Offer {
    /// The RECV took it.
    Taken,
    /// The endpoint closed meanwhile and completed the caller.
    Closed,
    /// Delivery to that RECV failed (the RECV completed with its own
    /// error): the call comes back, to be offered again.
    Back(IpcCall),
}

impl Endpoint {
    /// A new, open endpoint.
    pub fn new() -> Arc<Endpoint> {
        let e = Arc::new(Endpoint {
            id: NEXT_ENDPOINT.fetch_add(1, Ordering::Relaxed),
            state: IrqLock::new(State {
                open: true,
                queued: VecDeque::new(),
                receivers: VecDeque::new(),
                in_flight: InFlight::default(),
                next_call: 1,
                callers: BTreeMap::new(),
                next_caller: 1,
            }),
        });
        ENDPOINTS.lock().insert(e.id, Arc::downgrade(&e));
        e
    }

    /// Bytes a RECV buffer needs for `call`: header, params, then (8-aligned)
    /// one CapId per transferred cap.
    fn needed(call: &IpcCall) -> usize {
        capos_abi::caps_offset(call.message.len()) + 8 * call.caps.len()
    }

    /// Fills in the header in front of the params: the RECV buffer's bytes
    /// are then `call.message` (the call may be offered again if delivery
    /// fails, with a new header).
    fn fill_header(call: &mut IpcCall, call_id: u64, caller: u64) {
        let header = RecvHeader {
            call_id,
            interface_id: call.interface_id,
            cookie: call.cookie,
            caller,
            method: call.method,
            reserved: [0; 3],
        };
        call.message[..RECV_HEADER_SIZE].copy_from_slice(&header.to_bytes());
    }

    /// Admits `call` as in flight and hands it to `receiver`, with the
    /// endpoint's lock (`s`) released for the delivery.
    fn offer(
        &self,
        mut s: crate::sync::IrqLockGuard<'_, State>,
        receiver: PendingCall,
        mut call: IpcCall,
    ) -> Offer {
        let (call_id, caller) = s.admit(&call);
        s.in_flight.insert(call_id, call.caller.clone());
        drop(s);
        Self::fill_header(&mut call, call_id, caller);
        let caps = core::mem::take(&mut call.caps);
        let message = crate::completion::Message::Bytes(&call.message);
        match crate::completion::complete_recv(receiver, message, call_id, caps) {
            Ok(()) => Offer::Taken,
            Err((e, caps)) => {
                crate::kdebug!(
                    "ipc",
                    "endpoint {}: delivery to a RECV failed ({}); the call is offered again",
                    self.id,
                    e.name()
                );
                call.caps = caps;
                if self.state.lock().in_flight.remove(&call_id).is_some() {
                    Offer::Back(call)
                } else {
                    // `close` took it and completed the caller.
                    Offer::Closed
                }
            }
        }
    }

    /// A RECV: takes the next queued call for it (completing the RECV), or
    /// registers the RECV to be completed by the next call. A delivery that
    /// fails (the RECV's buffer went bad, its table is full) completes the
    /// RECV with that error and leaves the call queued, first.
    pub fn recv(&self, receiver: PendingCall) -> Result<(), TransportError> {
        let mut s = self.state.lock();
        if !s.open {
            return Err(TransportError::Disconnected);
        }
        if let Some(call) = s.queued.front() {
            if Self::needed(call) > receiver.results_len as usize {
                // The call stays queued for a RECV with room for it.
                return Err(TransportError::Overflow);
            }
            if s.in_flight.len() >= MAX_IN_FLIGHT {
                return Err(TransportError::Overflow);
            }
            let Some(call) = s.queued.pop_front() else { return Err(TransportError::Overflow) };
            if let Offer::Back(call) = self.offer(s, receiver, call) {
                self.requeue(call);
            }
            return Ok(());
        }
        // Receivers whose process ended no longer count.
        s.receivers.retain(PendingCall::is_live);
        if s.receivers.len() >= MAX_RECEIVERS {
            return Err(TransportError::Overflow);
        }
        s.receivers.push_back(receiver);
        Ok(())
    }

    /// Puts a call whose delivery failed back at the head of the queue, and
    /// offers it to the RECVs waiting (if any). If the endpoint closed
    /// meanwhile, the caller completes with `Disconnected`.
    fn requeue(&self, call: IpcCall) {
        let refused = {
            let mut s = self.state.lock();
            if s.open {
                s.queued.push_front(call);
                None
            } else {
                Some(call)
            }
        };
        match refused {
            Some(call) => {
                crate::completion::complete_error(call.caller, TransportError::Disconnected)
            }
            None => self.pump(),
        }
    }

    /// Whether call `call_id` was received and awaits its answer.
    pub fn serving(&self, call_id: u64) -> bool {
        self.state.lock().in_flight.contains_key(&call_id)
    }

    /// Answers call `call_id` for the caller, with result caps.
    pub fn answer(
        &self,
        call_id: u64,
        outcome: Result<&[u8], (TransportError, &[u8])>,
        caps: Vec<CapEntry>,
    ) -> Result<(), TransportError> {
        let caller =
            self.state.lock().in_flight.remove(&call_id).ok_or(TransportError::UnknownCall)?;
        crate::completion::complete_reply(caller, outcome, caps);
        self.pump();
        Ok(())
    }

    /// Hands queued calls to waiting RECVs while there is in-flight room
    /// (room frees up when a call is answered). A call whose delivery fails
    /// goes back to the head of the queue for the next RECV.
    fn pump(&self) {
        loop {
            let mut s = self.state.lock();
            if !s.open || s.in_flight.len() >= MAX_IN_FLIGHT {
                return;
            }
            let Some(call) = s.queued.front() else { return };
            let need = Self::needed(call);
            let Some(pos) =
                s.receivers.iter().position(|r| r.results_len as usize >= need && r.is_live())
            else {
                return;
            };
            let (Some(receiver), Some(call)) = (s.receivers.remove(pos), s.queued.pop_front())
            else {
                return;
            };
            if let Offer::Back(call) = self.offer(s, receiver, call) {
                let mut s = self.state.lock();
                if s.open {
                    // Each failure used up one RECV, so this ends.
                    s.queued.push_front(call);
                } else {
                    drop(s);
                    crate::completion::complete_error(call.caller, TransportError::Disconnected);
                    return;
                }
            }
        }
    }

    /// Whether a CALL would be taken now (queued or handed to a RECV).
    fn admits(&self) -> Result<(), TransportError> {
        let s = self.state.lock();
        if !s.open {
            return Err(TransportError::Disconnected);
        }
        let to_recv = s.in_flight.len() < MAX_IN_FLIGHT && !s.receivers.is_empty();
        if !to_recv && s.queued.len() >= MAX_QUEUED {
            return Err(TransportError::Overflow);
        }
        Ok(())
    }

    /// A CALL through a client cap. It goes to the first waiting RECV with
    /// room for it; if delivering it there fails, that RECV completes with
    /// its own error and the call goes to the next one, or the queue.
    fn call(&self, mut call: IpcCall) -> CallOutcome {
        let mut s = self.state.lock();
        loop {
            if !s.open {
                return CallOutcome::Failed(TransportError::Disconnected);
            }
            if s.in_flight.len() >= MAX_IN_FLIGHT {
                break;
            }
            let Some(receiver) = s.receivers.pop_front() else { break };
            if !receiver.is_live() {
                // Its process ended: skip it.
                continue;
            }
            if Self::needed(&call) > receiver.results_len as usize {
                drop(s);
                crate::completion::complete_error(receiver, TransportError::Overflow);
                s = self.state.lock();
                continue;
            }
            match self.offer(s, receiver, call) {
                Offer::Taken | Offer::Closed => return CallOutcome::Pending,
                Offer::Back(back) => call = back,
            }
            s = self.state.lock();
        }
        if s.queued.len() >= MAX_QUEUED {
            return CallOutcome::Failed(TransportError::Overflow);
        }
        s.queued.push_back(call);
        CallOutcome::Pending
    }

    /// A CALL handed straight to a waiting RECV: the header and the params
    /// (still in the caller's call frame) are written into the receiver's
    /// buffer, one copy and no allocation. `Err` gives the caps back when no
    /// RECV could take it (none waits, none has room, or delivery failed):
    /// the call then takes the queued path.
    fn call_direct(
        &self,
        ctx: &CallContext<'_>,
        interface_id: u64,
        method: u16,
        cookie: u64,
        params: &[u8],
        mut caps: Vec<CapEntry>,
    ) -> Result<CallOutcome, Vec<CapEntry>> {
        let need = capos_abi::caps_offset(RECV_HEADER_SIZE + params.len()) + 8 * caps.len();
        let mut s = self.state.lock();
        if !s.open {
            return Ok(CallOutcome::Failed(TransportError::Disconnected));
        }
        if s.in_flight.len() >= MAX_IN_FLIGHT {
            return Err(caps);
        }
        let Some(receiver) = s.receivers.front() else { return Err(caps) };
        if !receiver.is_live() || (receiver.results_len as usize) < need {
            return Err(caps);
        }
        let Some(receiver) = s.receivers.pop_front() else { return Err(caps) };
        let (call_id, caller) = s.admit_pid(ctx.caller.pid);
        s.in_flight.insert(call_id, ctx.pending());
        drop(s);
        let header = RecvHeader { call_id, interface_id, cookie, caller, method, reserved: [0; 3] }
            .to_bytes();
        let message = crate::completion::Message::Parts(&header, params);
        match crate::completion::complete_recv(receiver, message, call_id, caps) {
            Ok(()) => Ok(CallOutcome::Pending),
            Err((e, back)) => {
                crate::kdebug!(
                    "ipc",
                    "endpoint {}: direct delivery to a RECV failed ({}); the call is queued",
                    self.id,
                    e.name()
                );
                caps = back;
                if self.state.lock().in_flight.remove(&call_id).is_some() {
                    Err(caps)
                } else {
                    // `close` took it and completed the caller.
                    Ok(CallOutcome::Pending)
                }
            }
        }
    }

    /// Forgets `process` (it is being torn down): its queued calls go
    /// (their caps are dropped, which may close this very endpoint when a
    /// call carried its serving cap), so do its waiting RECVs and its
    /// caller reference.
    fn forget(&self, process: &Arc<crate::proc::Process>) {
        let pid = process.pid;
        let (calls, receivers) = {
            let mut s = self.state.lock();
            s.callers.remove(&pid);
            let mut calls = Vec::new();
            let mut i = 0;
            while i < s.queued.len() {
                if s.queued[i].caller_pid == pid {
                    calls.extend(s.queued.remove(i));
                } else {
                    i += 1;
                }
            }
            let mut receivers = Vec::new();
            s.receivers.retain(|r| {
                // Compared without upgrading: no process is dropped here.
                let gone = r.process.strong_count() == 0
                    || core::ptr::eq(r.process.as_ptr(), Arc::as_ptr(process));
                if gone {
                    receivers.push(r.clone());
                }
                !gone
            });
            (calls, receivers)
        };
        // Without the lock: a cap may be this endpoint's serving side.
        drop(calls);
        drop(receivers);
    }

    /// Closes the endpoint: every waiting party completes with `Disconnected`.
    fn close(&self) {
        let (queued, receivers, in_flight) = {
            let mut s = self.state.lock();
            s.open = false;
            s.callers.clear();
            (
                core::mem::take(&mut s.queued),
                core::mem::take(&mut s.receivers),
                core::mem::take(&mut s.in_flight),
            )
        };
        crate::kdebug!(
            "ipc",
            "endpoint {} closed: {} queued, {} in-flight call(s) disconnected",
            self.id,
            queued.len(),
            in_flight.len()
        );
        for c in queued {
            crate::completion::complete_error(c.caller, TransportError::Disconnected);
        }
        for (_, caller) in in_flight.0 {
            crate::completion::complete_error(caller, TransportError::Disconnected);
        }
        for r in receivers {
            crate::completion::complete_error(r, TransportError::Disconnected);
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        ENDPOINTS.lock().remove(&self.id);
    }
}

/// `process` is torn down: every endpoint drops its queued calls and
/// waiting RECVs and its caller reference. This breaks the cycle of an
/// endpoint whose only serving cap was moved into a call queued on it.
pub fn forget_process(process: &Arc<crate::proc::Process>) {
    let live: Vec<Arc<Endpoint>> = ENDPOINTS.lock().values().filter_map(Weak::upgrade).collect();
    for e in &live {
        e.forget(process);
    }
    // Dropped without the registry lock (`Endpoint::drop` takes it).
    drop(live);
}

/// Calls received and not yet answered: (call id, caller). A vector whose
/// capacity stays once grown (at most [`MAX_IN_FLIGHT`] entries), so a call
/// in steady state allocates nothing for its record.
#[derive(Default)]
struct InFlight(Vec<(u64, PendingCall)>);

impl InFlight {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn insert(&mut self, call_id: u64, caller: PendingCall) {
        // alloc: at most MAX_IN_FLIGHT entries (callers check), capacity kept
        self.0.push((call_id, caller));
    }

    fn remove(&mut self, call_id: &u64) -> Option<PendingCall> {
        let at = self.0.iter().position(|(id, _)| id == call_id)?;
        Some(self.0.swap_remove(at).1)
    }

    fn contains_key(&self, call_id: &u64) -> bool {
        self.0.iter().any(|(id, _)| id == call_id)
    }
}

impl State {
    /// A fresh call id and the caller's opaque reference for `call`.
    fn admit(&mut self, call: &IpcCall) -> (u64, u64) {
        self.admit_pid(call.caller_pid)
    }

    /// A fresh call id and the opaque reference of caller `pid`.
    fn admit_pid(&mut self, pid: u64) -> (u64, u64) {
        let call_id = self.next_call;
        self.next_call += 1;
        let next = self.next_caller;
        let caller = *self.callers.entry(pid).or_insert(next);
        if caller == next {
            self.next_caller += 1;
        }
        (call_id, caller)
    }
}

/// The serving side. Dropping the last copy closes the endpoint.
pub struct EndpointServer {
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
}

impl Drop for EndpointServer {
    fn drop(&mut self) {
        self.endpoint.close();
    }
}

/// A client cap minted by the server.
pub struct EndpointClient {
    endpoint: Arc<Endpoint>,
    interface_id: u64,
    cookie: u64,
}

struct Minter<'a> {
    ctx: &'a CallContext<'a>,
    endpoint: &'a Arc<Endpoint>,
    request: Option<(u64, u64)>,
}

/// Application error codes of `Endpoint`.
pub mod error {
    /// `identify` was sent no cap, or more than one.
    pub const ONE_CAP: u32 = 1;
    /// `identify` was sent a cap not minted from this endpoint.
    pub const NOT_MINTED_HERE: u32 = 2;
}

impl EndpointServerTrait for Minter<'_> {
    fn mint(
        &mut self,
        params: endpoint::mint_params::Reader<'_>,
        _results: endpoint::mint_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.request = Some((params.get_interface_id(), params.get_cookie()));
        Ok(())
    }

    fn identify(
        &mut self,
        _params: endpoint::identify_params::Reader<'_>,
        mut results: endpoint::identify_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let caps = self.ctx.take_caps();
        let [cap] = caps.as_slice() else {
            return Err(ServerError::exception(
                error::ONE_CAP,
                alloc::format!("identify takes exactly one cap, got {}", caps.len()),
            ));
        };
        match cap.object.minted() {
            Some((endpoint, cookie, interface_id)) if Arc::ptr_eq(endpoint, self.endpoint) => {
                results.set_cookie(cookie);
                results.set_interface_id(interface_id);
                Ok(())
            }
            _ => Err(ServerError::exception(
                error::NOT_MINTED_HERE,
                alloc::format!(
                    "the cap sent ({}) was not minted from this endpoint",
                    cap.object.describe()
                ),
            )),
        }
    }
}

impl CapObject for EndpointServer {
    fn interface_id(&self) -> u64 {
        capos_schema::endpoint::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::endpoint::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::endpoint::method::name(method).is_some()
    }

    fn accepts_caps(&self, method: u16) -> bool {
        method == capos_schema::endpoint::method::IDENTIFY
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut minter = Minter { ctx, endpoint: &self.endpoint, request: None };
        match dispatch_endpoint_in(&mut minter, method, frame) {
            Ok(()) => match minter.request {
                Some((interface_id, cookie)) => CallOutcome::Built {
                    // alloc: one cap
                    caps: alloc::vec![CapEntry {
                        object: Arc::new(EndpointClient {
                            endpoint: self.endpoint.clone(),
                            interface_id,
                            cookie,
                        }),
                        interface_id,
                    }],
                },
                None => CallOutcome::built(),
            },
            Err(e) => failure(e),
        }
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        Some(&self.endpoint)
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("Endpoint #{} (serving side)", self.endpoint.id)
    }
}

impl CapObject for EndpointClient {
    fn interface_id(&self) -> u64 {
        self.interface_id
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::interface_name(self.interface_id).unwrap_or("(served interface)")
    }

    fn has_method(&self, _method: u16) -> bool {
        // The server knows its interface and answers BadMethod itself.
        true
    }

    fn accepts_caps(&self, _method: u16) -> bool {
        true
    }

    fn minted(&self) -> Option<(&Arc<Endpoint>, u64, u64)> {
        Some((&self.endpoint, self.cookie, self.interface_id))
    }

    fn admits(&self) -> Result<(), TransportError> {
        self.endpoint.admits()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let params = frame.params();
        // A RECV waiting with room takes the call straight from the frame.
        let caps = match self.endpoint.call_direct(
            ctx,
            self.interface_id,
            method,
            self.cookie,
            params,
            ctx.take_caps(),
        ) {
            Ok(outcome) => return outcome,
            Err(caps) => caps,
        };
        // Otherwise the copy of the params waits in the kernel: charged to
        // the caller, and allocated fallibly.
        let bytes = (RECV_HEADER_SIZE + params.len()) as u64 + CALL_RECORD_BYTES;
        let charge = match Charge::new(&ctx.caller.account, 0, bytes) {
            Ok(c) => c,
            Err(_) => return CallOutcome::Failed(TransportError::QuotaExceeded),
        };
        let mut message = Vec::new();
        if message.try_reserve_exact(RECV_HEADER_SIZE + params.len()).is_err() {
            return CallOutcome::Failed(TransportError::NoMemory);
        }
        message.resize(RECV_HEADER_SIZE, 0);
        message.extend_from_slice(params);
        self.endpoint.call(IpcCall {
            caller: ctx.pending(),
            caller_pid: ctx.caller.pid,
            interface_id: self.interface_id,
            method,
            cookie: self.cookie,
            message,
            caps,
            _charge: charge,
        })
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("{} via endpoint #{}", self.interface_name(), self.endpoint.id)
    }
}
