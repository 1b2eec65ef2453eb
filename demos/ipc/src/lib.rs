//! What the IPC proof's programs share: the Echo service they serve and
//! call, its special payloads, and functions for raw ring entries.
//!
//! - `ipc` (the driver) creates an endpoint, mints an Echo cap from it and
//!   starts `echo-server` (holding the serving cap) and `echo-client`
//!   (holding the minted cap); it also runs the endpoint cases that need no
//!   second process.
//! - `echo-server` serves [`Echo`] with `capos_rt::ipc::serve_with`.
//! - `echo-client` calls it with the generated `EchoClient` and raw CALLs.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use capos_rt::abi::{TransportError, STATUS_OK};
use capos_rt::schema::capos_capnp::echo::{echo_params, echo_results};
use capos_rt::schema::{wire, CallError, EchoServer, ServerError};

/// The cookie the driver mints the echo-client's cap with.
pub const CLIENT_COOKIE: u64 = 0x1234;

/// Data the echo server keeps without ever answering.
pub const HANG: &[u8] = b"hang";

/// Data the echo server refuses with an application error.
pub const RAISE: &[u8] = b"raise";
/// The application error code for [`RAISE`].
pub const RAISE_CODE: u32 = 2;
/// The application error message for [`RAISE`].
pub const RAISE_MESSAGE: &str = "echo-server refuses to echo `raise`";

/// The Echo service: returns the data it is given, refuses [`RAISE`], and
/// notes whether the last call was [`HANG`] (which its owner leaves
/// unanswered).
#[derive(Debug, Default)]
pub struct Echo {
    /// The last call's data was [`HANG`].
    pub last_was_hang: bool,
    /// Calls served.
    pub calls: u64,
}

impl EchoServer for Echo {
    fn echo(
        &mut self,
        params: echo_params::Reader<'_>,
        mut results: echo_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let data = params.get_data()?;
        self.calls += 1;
        self.last_was_hang = data == HANG;
        if data == RAISE {
            return Err(ServerError::exception(RAISE_CODE, RAISE_MESSAGE));
        }
        results.set_data(data);
        Ok(())
    }
}

/// `len` bytes of a pattern that differs between sizes and positions.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ len) as u8).collect()
}

/// An encoded `Echo.echo` params message carrying `data`.
pub fn echo_params(data: &[u8]) -> Vec<u8> {
    wire::encode::<echo_params::Owned>(|mut p| {
        p.set_data(data);
        Ok(())
    })
    .unwrap_or_default()
}

/// The data of an encoded `Echo.echo` results message.
pub fn echo_results_data(results: &[u8]) -> Option<Vec<u8>> {
    let message = wire::decode(results).ok()?;
    let root = message.get_root::<echo_results::Reader<'_>>().ok()?;
    root.get_data().ok().map(<[u8]>::to_vec)
}

pub use capos_rt::ipc::call_sqe;

/// `ok` or the error name of a completion status.
pub fn status_name(status: u32) -> String {
    if status == STATUS_OK {
        return "ok".to_string();
    }
    match TransportError::from_u32(status) {
        Some(e) => e.name().to_string(),
        None => format!("unknown status {status}"),
    }
}

/// `ok` or the error name of a ring operation's result.
pub fn transport_result<T>(r: &Result<T, TransportError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => e.name().to_string(),
    }
}

/// `ok`, the transport error name, or `AppError` of a typed client call.
pub fn client_result<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(CallError::Transport(status)) => status_name(*status),
        Err(CallError::Exception(_)) => TransportError::AppError.name().to_string(),
        Err(e) => format!("client error ({e})"),
    }
}
