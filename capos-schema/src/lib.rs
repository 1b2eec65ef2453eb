//! capOS capability interfaces, generated from `schema/capos.capnp`.
//!
//! - [`capos_capnp`]: the Cap'n Proto readers and builders (`capnpc` output).
//! - For every interface `Foo`: a module `foo` with its `INTERFACE_ID`, `NAME`,
//!   method ordinals (`foo::method::*`) and params/results types; a typed
//!   client `FooClient<T: Transport>`; a server trait `FooServer` and
//!   `dispatch_foo`, which decodes params, calls the server and encodes results.
//! - For every plain schema struct: an owned Rust mirror (e.g.
//!   [`SystemDescription`]) implementing [`SchemaStruct`].
//! - [`rpc`]: the [`Transport`] trait, call and dispatch errors; [`wire`]:
//!   message encoding and bounded decoding of untrusted bytes.
//!
//! Everything under `src/generated/` is written by `tools/src/bin/schema-codegen.rs`
//! and checked for staleness; change the schema, never those files.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

/// Cap'n Proto readers and builders for `schema/capos.capnp`, as `capnpc`
/// writes them (made no-std-clean and formatted by `schema-codegen`).
#[path = "generated/capos_capnp.rs"]
pub mod capos_capnp;

#[path = "generated/interfaces.rs"]
mod interfaces;

pub mod rpc;
pub mod wire;

pub use interfaces::*;
pub use rpc::{
    CallError, CallReply, DispatchError, Dispatched, Reply, SchemaStruct, ServerError, Transport,
};
