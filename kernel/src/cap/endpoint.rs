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
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use capos_abi::{RecvHeader, TransportError, RECV_HEADER_SIZE};
use capos_schema::capos_capnp::endpoint;
use capos_schema::{dispatch_endpoint, EndpointServer as EndpointServerTrait, ServerError};

use super::{failure, CallContext, CallOutcome, CapEntry, CapObject};
use crate::mem::account::Charge;
use crate::ring::PendingCall;
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
    in_flight: BTreeMap<u64, PendingCall>,
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

/// What a RECV got.
pub enum Received {
    /// A call: the bytes for the RECV buffer, the call id and the caps it
    /// transferred.
    Now(Vec<u8>, u64, Vec<CapEntry>),
    /// No call yet; the RECV completes when one arrives.
    Pending,
}

impl Endpoint {
    /// A new, open endpoint.
    pub fn new() -> Arc<Endpoint> {
        Arc::new(Endpoint {
            id: NEXT_ENDPOINT.fetch_add(1, Ordering::Relaxed),
            state: IrqLock::new(State {
                open: true,
                queued: VecDeque::new(),
                receivers: VecDeque::new(),
                in_flight: BTreeMap::new(),
                next_call: 1,
                callers: BTreeMap::new(),
                next_caller: 1,
            }),
        })
    }

    /// Bytes a RECV buffer needs for `call`: header, params, then (8-aligned)
    /// one CapId per transferred cap.
    fn needed(call: &IpcCall) -> usize {
        capos_abi::caps_offset(call.message.len()) + 8 * call.caps.len()
    }

    /// Fills in the header and takes the RECV buffer's bytes out of `call`.
    fn message(call: &mut IpcCall, call_id: u64, caller: u64) -> Vec<u8> {
        let header = RecvHeader {
            call_id,
            interface_id: call.interface_id,
            cookie: call.cookie,
            caller,
            method: call.method,
            reserved: [0; 3],
        };
        call.message[..RECV_HEADER_SIZE].copy_from_slice(&header.to_bytes());
        core::mem::take(&mut call.message)
    }

    /// Takes a queued call for a RECV with a `buffer_len`-byte buffer, or
    /// registers the RECV to be completed by the next call.
    pub fn recv(&self, receiver: PendingCall) -> Result<Received, TransportError> {
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
            let mut call = s.queued.pop_front().expect("front exists");
            let (call_id, caller) = s.admit(&call);
            s.in_flight.insert(call_id, call.caller.clone());
            let caps = core::mem::take(&mut call.caps);
            return Ok(Received::Now(Self::message(&mut call, call_id, caller), call_id, caps));
        }
        // Receivers whose process ended no longer count.
        s.receivers.retain(PendingCall::is_live);
        if s.receivers.len() >= MAX_RECEIVERS {
            return Err(TransportError::Overflow);
        }
        s.receivers.push_back(receiver);
        Ok(Received::Pending)
    }

    /// Whether call `call_id` was received and awaits its answer.
    pub fn serving(&self, call_id: u64) -> bool {
        self.state.lock().in_flight.contains_key(&call_id)
    }

    /// Answers call `call_id` for the caller, with result caps.
    pub fn answer(
        &self,
        call_id: u64,
        outcome: Result<Vec<u8>, (TransportError, Vec<u8>)>,
        caps: Vec<CapEntry>,
    ) -> Result<(), TransportError> {
        let caller =
            self.state.lock().in_flight.remove(&call_id).ok_or(TransportError::UnknownCall)?;
        crate::ring::complete_reply(caller, outcome, caps);
        self.pump();
        Ok(())
    }

    /// Hands queued calls to waiting RECVs while there is in-flight room
    /// (room frees up when a call is answered).
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
            let receiver = s.receivers.remove(pos).expect("position is in range");
            let mut call = s.queued.pop_front().expect("front exists");
            let (call_id, caller) = s.admit(&call);
            s.in_flight.insert(call_id, call.caller.clone());
            drop(s);
            let bytes = Self::message(&mut call, call_id, caller);
            let caps = core::mem::take(&mut call.caps);
            if let Err(e) = crate::ring::complete_recv(receiver, &bytes, call_id, caps) {
                self.fail(call_id, e);
            }
        }
    }

    /// Fails call `call_id` (its delivery to the server failed).
    pub fn fail(&self, call_id: u64, e: TransportError) {
        let caller = self.state.lock().in_flight.remove(&call_id);
        if let Some(caller) = caller {
            crate::ring::complete_error(caller, e);
        }
    }

    /// A CALL through a client cap.
    fn call(&self, mut call: IpcCall) -> CallOutcome {
        let mut s = self.state.lock();
        if !s.open {
            return CallOutcome::Failed(TransportError::Disconnected);
        }
        // Hand it to a waiting RECV that has room for it.
        while s.in_flight.len() < MAX_IN_FLIGHT {
            let Some(receiver) = s.receivers.pop_front() else { break };
            if !receiver.is_live() {
                // Its process ended: skip it.
                continue;
            }
            if Self::needed(&call) > receiver.results_len as usize {
                drop(s);
                crate::ring::complete_error(receiver, TransportError::Overflow);
                s = self.state.lock();
                if !s.open {
                    return CallOutcome::Failed(TransportError::Disconnected);
                }
                continue;
            }
            let (call_id, caller) = s.admit(&call);
            s.in_flight.insert(call_id, call.caller.clone());
            drop(s);
            let bytes = Self::message(&mut call, call_id, caller);
            let caps = core::mem::take(&mut call.caps);
            if let Err(e) = crate::ring::complete_recv(receiver, &bytes, call_id, caps) {
                self.state.lock().in_flight.remove(&call_id);
                return CallOutcome::Failed(e);
            }
            return CallOutcome::Pending;
        }
        if s.queued.len() >= MAX_QUEUED {
            return CallOutcome::Failed(TransportError::Overflow);
        }
        s.queued.push_back(call);
        CallOutcome::Pending
    }

    /// Closes the endpoint: every waiting party completes with `Disconnected`.
    fn close(&self) {
        let (queued, receivers, in_flight) = {
            let mut s = self.state.lock();
            s.open = false;
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
            crate::ring::complete_error(c.caller, TransportError::Disconnected);
        }
        for (_, caller) in in_flight {
            crate::ring::complete_error(caller, TransportError::Disconnected);
        }
        for r in receivers {
            crate::ring::complete_error(r, TransportError::Disconnected);
        }
    }
}

impl State {
    /// A fresh call id and the caller's opaque reference for `call`.
    fn admit(&mut self, call: &IpcCall) -> (u64, u64) {
        let call_id = self.next_call;
        self.next_call += 1;
        let next = self.next_caller;
        let caller = *self.callers.entry(call.caller_pid).or_insert(next);
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

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        let mut minter = Minter { ctx, endpoint: &self.endpoint, request: None };
        match dispatch_endpoint(&mut minter, method, params) {
            Ok(results) => match minter.request {
                Some((interface_id, cookie)) => CallOutcome::Done {
                    results,
                    caps: alloc::vec![CapEntry {
                        object: Arc::new(EndpointClient {
                            endpoint: self.endpoint.clone(),
                            interface_id,
                            cookie,
                        }),
                        interface_id,
                    }],
                },
                None => CallOutcome::done(results),
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

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        // The copy of the params waits in the kernel: charged to the caller,
        // and allocated fallibly.
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
            caps: ctx.take_caps(),
            _charge: charge,
        })
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("{} via endpoint #{}", self.interface_name(), self.endpoint.id)
    }
}
