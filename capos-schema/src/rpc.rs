//! What generated clients and servers stand on: the [`Transport`] a client
//! calls through, the errors on each side of a call, and the functions generated
//! code uses to build and read messages.
//!
//! A call is (cap, interface id, method ordinal, params bytes) and its reply is
//! (results bytes, result caps). Caps never travel inside a message: those a
//! call returns arrive through the ring as CapIds, in the order the results
//! struct declares its interface-typed fields, and those fields stay null.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use capnp::traits::Owned;

use crate::wire;
use crate::CapException;

/// How a typed client reaches a capability: in capOS, one `CALL` on the
/// capability ring; in tests, anything that hands the call to a server.
pub trait Transport {
    /// Calls `method` of `interface_id` on the cap `cap` with an encoded
    /// params message, and returns the encoded results with any result caps.
    fn call(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
    ) -> Result<CallReply, CallError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn call(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
    ) -> Result<CallReply, CallError> {
        (**self).call(cap, interface_id, method, params)
    }
}

/// A completed call: the encoded results message and the CapIds of the caps
/// it returned, in the order the results struct declares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallReply {
    /// The encoded results message.
    pub results: Vec<u8>,
    /// CapIds of the result caps, in the caller's cap table.
    pub caps: Vec<u64>,
}

impl CallReply {
    /// The CapId of result cap `index`.
    pub fn cap(&self, index: usize) -> Result<u64, CallError> {
        self.caps
            .get(index)
            .copied()
            .ok_or(CallError::MissingResultCap { index, received: self.caps.len() })
    }
}

/// Why a client call failed.
#[derive(Debug)]
pub enum CallError {
    /// The transport failed the call with this status code (a capos-abi
    /// transport error such as a stale cap or a bad method).
    Transport(u32),
    /// The server answered with an application error.
    Exception(CapException),
    /// The params message could not be built (e.g. a list too long).
    Encode(capnp::Error),
    /// The results message is malformed or does not match the schema.
    Decode(capnp::Error),
    /// The results declare more interface-typed fields than caps arrived.
    MissingResultCap {
        /// Position of the missing cap among the results' cap fields.
        index: usize,
        /// How many result caps did arrive.
        received: usize,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(status) => write!(f, "call failed with transport status {status}"),
            Self::Exception(e) => write!(f, "call raised exception {}: {}", e.code, e.message),
            Self::Encode(e) => write!(f, "cannot encode params: {e}"),
            Self::Decode(e) => write!(f, "malformed results: {e}"),
            Self::MissingResultCap { index, received } => {
                write!(f, "result cap {index} is missing: only {received} result caps arrived")
            }
        }
    }
}

impl core::error::Error for CallError {}

/// Why a server method failed; [`dispatch`](crate) functions turn it into a
/// [`DispatchError`].
#[derive(Debug)]
pub enum ServerError {
    /// A params field failed to decode (bad pointer, invalid UTF-8, unknown
    /// enumerant), or the results could not be built.
    Decode(capnp::Error),
    /// An application error for the caller.
    Exception(CapException),
}

impl ServerError {
    /// An application error with `code` and `message`.
    pub fn exception(code: u32, message: impl Into<String>) -> Self {
        Self::Exception(CapException { code, message: message.into() })
    }
}

impl From<capnp::Error> for ServerError {
    fn from(e: capnp::Error) -> Self {
        Self::Decode(e)
    }
}

impl From<capnp::NotInSchema> for ServerError {
    fn from(e: capnp::NotInSchema) -> Self {
        Self::Decode(e.into())
    }
}

impl From<core::str::Utf8Error> for ServerError {
    fn from(e: core::str::Utf8Error) -> Self {
        Self::Decode(e.into())
    }
}

impl From<CapException> for ServerError {
    fn from(e: CapException) -> Self {
        Self::Exception(e)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "malformed params: {e}"),
            Self::Exception(e) => write!(f, "exception {}: {}", e.code, e.message),
        }
    }
}

impl core::error::Error for ServerError {}

/// Why a generated dispatch function did not produce results.
#[derive(Debug)]
pub enum DispatchError {
    /// The interface has no method with this ordinal.
    BadMethod(u16),
    /// The params are not a well-formed message of the method's params struct.
    Malformed(capnp::Error),
    /// The server method raised an application error.
    Exception(CapException),
}

impl From<ServerError> for DispatchError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Decode(e) => Self::Malformed(e),
            ServerError::Exception(e) => Self::Exception(e),
        }
    }
}

impl fmt::Display for DispatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMethod(ordinal) => write!(f, "no method with ordinal {ordinal}"),
            Self::Malformed(e) => write!(f, "malformed params: {e}"),
            Self::Exception(e) => write!(f, "exception {}: {}", e.code, e.message),
        }
    }
}

impl core::error::Error for DispatchError {}

/// Results of a dispatched call on an interface whose methods may return caps.
///
/// `caps` are the server's own values for them (kernel object references in
/// the kernel, CapIds in a userspace server); the ring turns them into CapIds
/// in the caller's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatched<C> {
    /// The encoded results message.
    pub results: Vec<u8>,
    /// The result caps, in the order the results struct declares them.
    pub caps: Vec<C>,
}

impl<C> Dispatched<C> {
    /// Results of a method that returns no caps.
    pub fn without_caps(results: Vec<u8>) -> Self {
        Self { results, caps: Vec::new() }
    }
}

/// A Rust value mirroring a schema struct, convertible both ways.
///
/// Generated for every struct whose fields all have a plain Rust form.
pub trait SchemaStruct: Sized {
    /// The `capnp` type of the struct.
    type Owned: Owned;

    /// Reads the value from a struct reader.
    fn read_from(reader: <Self::Owned as Owned>::Reader<'_>) -> capnp::Result<Self>;

    /// Writes the value into a freshly initialised struct builder.
    fn write_to(&self, builder: <Self::Owned as Owned>::Builder<'_>) -> capnp::Result<()>;

    /// Encodes the value as a message whose root is this struct.
    fn to_message(&self) -> capnp::Result<Vec<u8>> {
        wire::encode::<Self::Owned>(|builder| self.write_to(builder))
    }

    /// Decodes a message whose root is this struct.
    fn from_message(bytes: &[u8]) -> capnp::Result<Self> {
        let message = wire::decode(bytes)?;
        let root = message.get_root()?;
        Self::read_from(root)
    }
}

/// Results kept as a message, for methods whose results have no plain Rust
/// form (unions, generic or untyped pointers).
pub struct Reply<R: Owned> {
    message: wire::MessageReader,
    caps: Vec<u64>,
    _results: core::marker::PhantomData<R>,
}

impl<R: Owned> Reply<R> {
    /// The results struct.
    pub fn get(&self) -> capnp::Result<R::Reader<'_>> {
        self.message.get_root()
    }

    /// CapIds of the result caps, in declaration order of the cap fields.
    pub fn caps(&self) -> &[u64] {
        &self.caps
    }
}

impl<R: Owned> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").field("caps", &self.caps).finish_non_exhaustive()
    }
}

/// Encodes params of type `P` with `build` and calls through `transport`.
pub fn call<P: Owned, T: Transport + ?Sized>(
    transport: &T,
    cap: u64,
    interface_id: u64,
    method: u16,
    build: impl for<'a> FnOnce(P::Builder<'a>) -> capnp::Result<()>,
) -> Result<CallReply, CallError> {
    let params = wire::encode::<P>(build).map_err(CallError::Encode)?;
    transport.call(cap, interface_id, method, &params)
}

/// Decodes the results of `reply` as an `R` and reads them with `read`.
pub fn read_results<R: Owned, V>(
    reply: &CallReply,
    read: impl for<'a> FnOnce(R::Reader<'a>) -> capnp::Result<V>,
) -> Result<V, CallError> {
    let message = wire::decode(&reply.results).map_err(CallError::Decode)?;
    let results = message.get_root::<R::Reader<'_>>().map_err(CallError::Decode)?;
    read(results).map_err(CallError::Decode)
}

/// Keeps the results of `reply` as an `R` message for the caller to read.
pub fn keep_results<R: Owned>(reply: CallReply) -> Result<Reply<R>, CallError> {
    let message = wire::decode(&reply.results).map_err(CallError::Decode)?;
    message.get_root::<R::Reader<'_>>().map_err(CallError::Decode)?;
    Ok(Reply { message, caps: reply.caps, _results: core::marker::PhantomData })
}

/// Decodes params as a `P`, runs `handle` with them and a fresh `R` results
/// builder, and encodes the results; `handle`'s own value (the result caps of
/// a cap-returning method) is passed back beside them.
pub fn serve<P: Owned, R: Owned, C>(
    params: &[u8],
    handle: impl for<'a, 'b> FnOnce(P::Reader<'a>, R::Builder<'b>) -> Result<C, ServerError>,
) -> Result<(Vec<u8>, C), DispatchError> {
    let message = wire::decode(params).map_err(DispatchError::Malformed)?;
    let params = message.get_root::<P::Reader<'_>>().map_err(DispatchError::Malformed)?;
    let mut results = wire::builder();
    let value = handle(params, results.init_root::<R::Builder<'_>>())?;
    Ok((capnp::serialize::write_message_to_words(&results), value))
}

/// Where one call is served: it holds the params message and the memory the
/// results are built in. Generated `dispatch_*_in` functions serve a call in
/// a frame; the kernel's frame decodes params in place from a per-CPU scratch
/// area and builds results in a preallocated segment, so a call allocates
/// nothing. [`HeapFrame`] is the plain form on the heap.
pub trait CallFrame {
    /// Reads the params as a `P`, runs `handle` with them and an `R` results
    /// builder, and keeps the results in the frame; `handle`'s own value is
    /// passed back.
    fn serve<P: Owned, R: Owned, C>(
        &mut self,
        handle: impl for<'a, 'b> FnOnce(P::Reader<'a>, R::Builder<'b>) -> Result<C, ServerError>,
    ) -> Result<C, DispatchError>;
}

/// A call frame over a params message in memory, whose results are encoded
/// into a fresh vector.
pub struct HeapFrame<'p> {
    params: &'p [u8],
    results: Vec<u8>,
}

impl<'p> HeapFrame<'p> {
    /// A frame for a call with the encoded `params`.
    pub fn new(params: &'p [u8]) -> Self {
        Self { params, results: Vec::new() }
    }

    /// The encoded results of the call served in the frame (empty if none
    /// was).
    pub fn into_results(self) -> Vec<u8> {
        self.results
    }
}

impl CallFrame for HeapFrame<'_> {
    fn serve<P: Owned, R: Owned, C>(
        &mut self,
        handle: impl for<'a, 'b> FnOnce(P::Reader<'a>, R::Builder<'b>) -> Result<C, ServerError>,
    ) -> Result<C, DispatchError> {
        let (results, value) = serve::<P, R, C>(self.params, handle)?;
        self.results = results;
        Ok(value)
    }
}
