//! Serving capabilities from user space through kernel IPC endpoints.
//!
//! An endpoint has two sides. Its *serving* cap (from
//! [`create_endpoint`]) takes calls with the ring's `RECV` and answers them
//! with `RETURN`; *client* caps minted from it ([`mint`]) speak whatever
//! interface the server chose and are called like any other cap: with a
//! typed client from [`capos_schema`]. Each client cap carries a cookie the
//! server picked when minting it; the kernel puts it in the [`RecvHeader`] of
//! every call made through that cap, and the caller can neither read nor
//! change it.
//!
//! A server is a loop: [`recv`] a [`Request`], run it through the generated
//! `dispatch_*` function of its interface, [`reply`] with the results or an
//! error status. [`serve`] is that loop:
//!
//! ```ignore
//! use capos_rt::schema::capos_capnp::echo::{echo_params, echo_results};
//! use capos_rt::schema::{dispatch_echo, EchoServer, ServerError};
//!
//! struct Echo;
//!
//! impl EchoServer for Echo {
//!     fn echo(
//!         &mut self,
//!         params: echo_params::Reader<'_>,
//!         mut results: echo_results::Builder<'_>,
//!     ) -> Result<(), ServerError> {
//!         results.set_data(params.get_data()?);
//!         Ok(())
//!     }
//! }
//!
//! fn main(rt: &'static capos_rt::Runtime) -> i64 {
//!     let Some(endpoint) = rt.cap("endpoint") else { return 2 };
//!     let mut server = Echo;
//!     let end = capos_rt::ipc::serve(rt, endpoint.cap, |request| {
//!         dispatch_echo(&mut server, request.header.method, &request.params)
//!     });
//!     capos_rt::println!(rt, "echo: endpoint closed: {end}");
//!     1
//! }
//! ```
//!
//! The runtime is single-threaded and these calls block (through
//! [`Runtime::call_raw`], which keeps completions of other SQEs that arrive
//! meanwhile for [`Runtime::wait_for`]): a server answers one call at a
//! time, in the order it receives them, unless its handler defers calls
//! with [`serve_with`] and answers them later with [`reply`]. [`recv_sqe`]
//! and [`return_sqe`] build the raw entries for servers that batch them.
//!
//! Memory: a [`Receiver`] holds one buffer of [`RECV_BUFFER_LEN`] bytes
//! (64 KiB), and each [`Request`] a copy of its params. [`serve`] keeps one
//! `Receiver` for all its calls.

use alloc::vec;
use alloc::vec::Vec;

use capos_abi::{
    Sqe, TransportError, XferDesc, MAX_PARAMS_LEN, MAX_RECV_LEN, OP_RECV, OP_RETURN,
    RECV_HEADER_SIZE, STATUS_OK, XFER_COPY, XFER_MOVE,
};
use capos_schema::{endpoint, CallError, CallReply, CapException, DispatchError, EndpointClient};

use crate::Runtime;

pub use capos_abi::{RecvHeader, RETURN_STATUSES};

/// The receive buffer: the largest a RECV may name (`MAX_RECV_LEN`). A
/// call whose header, params and transferred CapIds need more cannot be
/// received: the kernel completes the RECV with `Overflow`.
pub const RECV_BUFFER_LEN: usize = MAX_RECV_LEN as usize;

/// The code of the application error [`serve`] answers with when a handler
/// produced results larger than a message may be (`EXHAUSTED`, as the
/// kernel's own objects number it).
pub const RESULTS_TOO_LARGE: u32 = 4;

/// One call taken from an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the kernel says about the call: its id (for [`reply`]), the
    /// interface and cookie of the client cap it came through, an opaque
    /// reference to the calling process, and the method ordinal.
    pub header: RecvHeader,
    /// The params message, as the caller encoded it: untrusted bytes.
    pub params: Vec<u8>,
    /// CapIds of the caps the caller sent with the call, already in this
    /// process's cap table, in the order the caller listed them.
    pub caps: Vec<u64>,
}

impl Request {
    /// The call id [`reply`] needs.
    pub fn call_id(&self) -> u64 {
        self.header.call_id
    }
}

/// Creates an endpoint through the `IpcManager` cap `ipc`; returns its
/// serving cap.
pub fn create_endpoint(rt: &Runtime, ipc: u64) -> Result<u64, CallError> {
    capos_schema::IpcManagerClient::new(rt, ipc).create_endpoint()
}

/// Mints a client cap of `endpoint` speaking `interface_id`, whose calls
/// reach the endpoint with `cookie`.
pub fn mint(rt: &Runtime, endpoint: u64, interface_id: u64, cookie: u64) -> Result<u64, CallError> {
    let reply = EndpointClient::new(rt, endpoint).mint(interface_id, cookie)?;
    let caps = reply.caps();
    caps.first().copied().ok_or(CallError::MissingResultCap { index: 0, received: caps.len() })
}

/// A RECV of one call on the serving cap `endpoint` into `buf`.
///
/// The SQE points at `buf`: it must stay in place, untouched, until the
/// A CALL of `method` on `cap` (as `interface_id`) with `params`, results
/// into `results`: the SQE for a caller that submits it itself and waits
/// for its completion (keeping both buffers alive until then).
pub fn call_sqe(
    cap: u64,
    interface_id: u64,
    method: u16,
    params: &[u8],
    results: &mut [u8],
    user_data: u64,
) -> Sqe {
    Sqe {
        opcode: capos_abi::OP_CALL,
        method,
        cap,
        interface_id,
        params_addr: params.as_ptr() as u64,
        params_len: u32::try_from(params.len()).unwrap_or(u32::MAX),
        results_addr: results.as_mut_ptr() as u64,
        results_len: u32::try_from(results.len()).unwrap_or(u32::MAX),
        user_data,
        ..Sqe::default()
    }
}

/// The transfer descriptors for `caps`, (CapId, move?) pairs, in their wire
/// form (for an SQE's `xfer_addr`, `caps.len()` of them).
pub fn xfer_descs(caps: &[(u64, bool)]) -> Vec<u8> {
    caps.iter()
        .flat_map(|&(cap, moved)| {
            XferDesc { cap, mode: if moved { XFER_MOVE } else { XFER_COPY }, reserved: 0 }
                .to_bytes()
        })
        .collect()
}

/// `sqe` carrying the transfer descriptors `descs` (as [`xfer_descs`] makes
/// them), which must stay in place until the kernel has taken the SQE.
pub fn with_xfer(sqe: Sqe, descs: &[u8]) -> Sqe {
    Sqe {
        xfer_addr: if descs.is_empty() { 0 } else { descs.as_ptr() as u64 },
        xfer_count: u16::try_from(descs.len() / capos_abi::XFER_DESC_SIZE).unwrap_or(u16::MAX),
        ..sqe
    }
}

/// What a CALL's completion `cqe` says, with its results in `results`:
/// the results message and result caps, the application error, or the
/// transport error, as a typed client reports them.
pub fn call_reply(cqe: &capos_abi::Cqe, results: &[u8]) -> Result<CallReply, CallError> {
    let malformed = CallError::Transport(TransportError::Malformed.code());
    let reply_bytes = results.get(..cqe.result_len as usize).ok_or(malformed)?;
    match TransportError::from_u32(cqe.status) {
        None => {
            let caps = capos_abi::delivered_caps(results, cqe.result_len, cqe.cap_count)
                .ok_or(CallError::Transport(TransportError::Malformed.code()))?
                .collect();
            Ok(CallReply { results: reply_bytes.to_vec(), caps })
        }
        Some(TransportError::AppError) => Err(capos_schema::wire::decode_exception(reply_bytes)
            .map(CallError::Exception)
            .unwrap_or(CallError::Transport(TransportError::AppError.code()))),
        Some(e) => Err(CallError::Transport(e.code())),
    }
}

/// RECV completes.
pub fn recv_sqe(endpoint: u64, buf: &mut [u8], user_data: u64) -> Sqe {
    Sqe {
        opcode: OP_RECV,
        cap: endpoint,
        interface_id: endpoint::INTERFACE_ID,
        results_addr: buf.as_mut_ptr() as u64,
        results_len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        user_data,
        ..Sqe::default()
    }
}

/// A RETURN answering call `call_id` on the serving cap `endpoint` with
/// `status` (one of [`RETURN_STATUSES`]) and the message `results`.
///
/// The SQE points at `results`, which must stay in place until the RETURN
/// completes. A status that does not fit the SQE's 16-bit field is sent as
/// `u16::MAX`, which the kernel refuses as `Malformed`.
pub fn return_sqe(endpoint: u64, call_id: u64, status: u32, results: &[u8], user_data: u64) -> Sqe {
    Sqe {
        opcode: OP_RETURN,
        method: u16::try_from(status).unwrap_or(u16::MAX),
        cap: endpoint,
        interface_id: endpoint::INTERFACE_ID,
        results_addr: call_id,
        params_addr: results.as_ptr() as u64,
        params_len: u32::try_from(results.len()).unwrap_or(u32::MAX),
        user_data,
        ..Sqe::default()
    }
}

/// Waits for the next call on the serving cap `endpoint` (into a fresh
/// buffer; a loop should keep a [`Receiver`]).
pub fn recv(rt: &Runtime, endpoint: u64) -> Result<Request, TransportError> {
    Receiver::new().recv(rt, endpoint)
}

/// A receive buffer of [`RECV_BUFFER_LEN`] bytes, reused for every call.
#[derive(Debug)]
pub struct Receiver {
    buf: Vec<u8>,
    /// The user data of a RECV posted into `buf` and not completed yet.
    posted: Option<u64>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// Allocates the buffer.
    pub fn new() -> Receiver {
        Receiver { buf: vec![0; RECV_BUFFER_LEN], posted: None }
    }

    /// Waits for the next call on the serving cap `endpoint`.
    ///
    /// Caps sent with the call are already in this process's cap table;
    /// their CapIds are in [`Request::caps`].
    pub fn recv(&mut self, rt: &Runtime, endpoint: u64) -> Result<Request, TransportError> {
        loop {
            if let Some(request) = self.recv_timeout(rt, endpoint, u64::MAX)? {
                return Ok(request);
            }
        }
    }

    /// Like [`Receiver::recv`], but gives up after `timeout_ns` and returns
    /// `None`. The RECV stays posted: the next call of either method takes
    /// up where this one left (a call arriving meanwhile is not lost). Keep
    /// using one endpoint per `Receiver`.
    pub fn recv_timeout(
        &mut self,
        rt: &Runtime,
        endpoint: u64,
        timeout_ns: u64,
    ) -> Result<Option<Request>, TransportError> {
        let user_data = match self.posted {
            Some(u) => u,
            None => {
                let user_data = rt.next_user_data();
                let sqe = recv_sqe(endpoint, &mut self.buf, user_data);
                while rt.ring().submit(&sqe).is_err() {
                    rt.ring().enter(0, 0)?;
                }
                self.posted = Some(user_data);
                user_data
            }
        };
        let Some(cqe) = rt.wait_for_timeout(user_data, timeout_ns)? else {
            return Ok(None);
        };
        self.posted = None;
        if cqe.status != STATUS_OK {
            return Err(TransportError::from_u32(cqe.status).unwrap_or(TransportError::Malformed));
        }
        let len = cqe.result_len as usize;
        let (Some(message), Some(caps)) = (
            self.buf.get(..len),
            capos_abi::delivered_caps(&self.buf, cqe.result_len, cqe.cap_count),
        ) else {
            return Err(TransportError::Malformed);
        };
        let caps = caps.collect();
        let header = RecvHeader::from_bytes(message).ok_or(TransportError::Malformed)?;
        if header.call_id != cqe.aux {
            return Err(TransportError::Malformed);
        }
        Ok(Some(Request { header, params: message[RECV_HEADER_SIZE..].to_vec(), caps }))
    }
}

/// Answers call `call_id` on the serving cap `endpoint`: `status` is what
/// the caller's completion reports (one of [`RETURN_STATUSES`]) and
/// `results` the message it receives (for `AppError`, an encoded
/// [`CapException`]; see [`reply_exception`]).
///
/// Fails with `UnknownCall` if the endpoint is not serving `call_id` (never
/// received, or already answered), `Malformed` for a status a RETURN may not
/// give, `TooLarge` for results over 64 KiB.
pub fn reply(
    rt: &Runtime,
    endpoint: u64,
    call_id: u64,
    status: u32,
    results: &[u8],
) -> Result<(), TransportError> {
    let cqe = rt.call_raw(return_sqe(endpoint, call_id, status, results, rt.next_user_data()))?;
    match TransportError::from_u32(cqe.status) {
        None if cqe.status == STATUS_OK => Ok(()),
        Some(e) => Err(e),
        None => Err(TransportError::Malformed),
    }
}

/// Answers call `call_id` with `results` and result caps: `caps` are
/// (CapId, move?) pairs, in the order the results struct declares its cap
/// fields. Errors as for [`reply`]; on an error no cap has left.
pub fn reply_with_caps(
    rt: &Runtime,
    endpoint: u64,
    call_id: u64,
    results: &[u8],
    caps: &[(u64, bool)],
) -> Result<(), TransportError> {
    let descs = xfer_descs(caps);
    let mut sqe = return_sqe(endpoint, call_id, STATUS_OK, results, rt.next_user_data());
    sqe.xfer_addr = if caps.is_empty() { 0 } else { descs.as_ptr() as u64 };
    sqe.xfer_count = u16::try_from(caps.len()).unwrap_or(u16::MAX);
    let cqe = rt.call_raw(sqe)?;
    match TransportError::from_u32(cqe.status) {
        None if cqe.status == STATUS_OK => Ok(()),
        Some(e) => Err(e),
        None => Err(TransportError::Malformed),
    }
}

/// Answers call `call_id` with an application error.
pub fn reply_exception(
    rt: &Runtime,
    endpoint: u64,
    call_id: u64,
    exception: &CapException,
) -> Result<(), TransportError> {
    let bytes = capos_schema::wire::encode_exception(exception);
    reply(rt, endpoint, call_id, TransportError::AppError.code(), &bytes)
}

/// Answers call `call_id` with what a generated `dispatch_*` function
/// returned: the results, or `BadMethod`, `Malformed` or the application
/// error. Results too large for a message become an application error
/// ([`RESULTS_TOO_LARGE`]).
pub fn reply_dispatched(
    rt: &Runtime,
    endpoint: u64,
    call_id: u64,
    outcome: Result<Vec<u8>, DispatchError>,
) -> Result<(), TransportError> {
    match outcome {
        Ok(results) if results.len() > MAX_PARAMS_LEN as usize => {
            let exception = CapException {
                code: RESULTS_TOO_LARGE,
                message: alloc::format!(
                    "results of {} bytes are over the {MAX_PARAMS_LEN}-byte message limit",
                    results.len()
                ),
            };
            drop(results);
            reply_exception(rt, endpoint, call_id, &exception)
        }
        Ok(results) => reply(rt, endpoint, call_id, STATUS_OK, &results),
        Err(DispatchError::BadMethod(_)) => {
            reply(rt, endpoint, call_id, TransportError::BadMethod.code(), &[])
        }
        Err(DispatchError::Malformed(_)) => {
            reply(rt, endpoint, call_id, TransportError::Malformed.code(), &[])
        }
        Err(DispatchError::Exception(e)) => reply_exception(rt, endpoint, call_id, &e),
    }
}

/// Serves the endpoint whose serving cap is `endpoint`: receives each call,
/// hands it to `handler` (typically a generated `dispatch_*` function) and
/// answers with its results, or with `BadMethod`, `Malformed` or an
/// application error. Runs until a RECV fails and returns that error: the
/// serving cap was released or is not one (`StaleCap`, `WrongInterface`),
/// or a call too large for [`RECV_BUFFER_LEN`] is first in the queue
/// (`Overflow`).
///
/// Caps a caller sends with a call are released once the handler returns;
/// a server that keeps caps uses [`serve_with`]. A RETURN that fails does
/// not stop the loop (results too large for the caller's buffer do not fail
/// it: the caller's CALL completes with `Overflow`).
pub fn serve(
    rt: &Runtime,
    endpoint: u64,
    mut handler: impl FnMut(&Request) -> Result<Vec<u8>, DispatchError>,
) -> TransportError {
    serve_with(rt, endpoint, |request| Some(handler(request)))
}

/// [`serve`] for handlers that keep caps or leave calls unanswered for now.
///
/// The handler may take caps out of [`Request::caps`]; those left there are
/// released after it returns. `None` answers nothing: the handler (having
/// kept [`Request::call_id`]) answers later with [`reply`], or never, and
/// the caller then waits until the endpoint closes or it gives up. An
/// endpoint holds at most 64 received, unanswered calls; beyond that a RECV
/// completes with `Overflow` and the loop ends.
pub fn serve_with(
    rt: &Runtime,
    endpoint: u64,
    mut handler: impl FnMut(&mut Request) -> Option<Result<Vec<u8>, DispatchError>>,
) -> TransportError {
    let mut receiver = Receiver::new();
    loop {
        let mut request = match receiver.recv(rt, endpoint) {
            Ok(r) => r,
            Err(e) => return e,
        };
        if let Some(outcome) = handler(&mut request) {
            let _ = reply_dispatched(rt, endpoint, request.call_id(), outcome);
        }
        for cap in request.caps {
            let _ = rt.release(cap);
        }
    }
}

/// A CALL that sends caps: `caps` are (CapId, move?) pairs, sent with the
/// params message; returns the completion (results land in `results`).
pub fn call_with_caps(
    rt: &Runtime,
    cap: u64,
    interface_id: u64,
    method: u16,
    params: &[u8],
    caps: &[(u64, bool)],
    results: &mut [u8],
) -> Result<capos_abi::Cqe, TransportError> {
    let descs = xfer_descs(caps);
    let sqe = with_xfer(
        call_sqe(cap, interface_id, method, params, results, rt.next_user_data()),
        &descs,
    );
    let cqe = rt.call_raw(sqe)?;
    match TransportError::from_u32(cqe.status) {
        None => Ok(cqe),
        Some(e) => Err(e),
    }
}

/// Hands the cap `cap` (moved) to init as the export `name`, through the
/// `exporter` cap init granted (a `ServiceExporter`).
pub fn export(rt: &Runtime, exporter: u64, name: &str, cap: u64) -> Result<(), TransportError> {
    let params = capos_schema::wire::encode::<
        capos_schema::capos_capnp::service_exporter::export_params::Owned,
    >(|mut p| {
        p.set_name(name);
        Ok(())
    })
    .map_err(|_| TransportError::Malformed)?;
    let mut results = [0u8; 256];
    call_with_caps(
        rt,
        exporter,
        capos_schema::service_exporter::INTERFACE_ID,
        capos_schema::service_exporter::method::EXPORT,
        &params,
        &[(cap, true)],
        &mut results,
    )
    .map(|_| ())
}
