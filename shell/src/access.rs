//! Finding the caps a command needs, and saying why a call failed.

use alloc::format;
use alloc::string::{String, ToString};

use capos_rt::abi::TransportError;
use capos_rt::schema::{interface_name, CallError};
use capos_rt::Runtime;

/// The CapId of the cap `name` speaking `interface_id`, or the line the
/// command `command` prints when the session has no such cap (or the cap
/// speaks another interface).
pub fn need(rt: &Runtime, command: &str, name: &str, interface_id: u64) -> Result<u64, String> {
    match rt.cap(name) {
        None => Err(format!("{command}: this session has no {name} cap")),
        Some(c) if c.interface_id != interface_id => Err(format!(
            "{command}: the {name} cap is a {}, not a {}",
            interface_label(c.interface_id),
            interface_label(interface_id)
        )),
        Some(c) => Ok(c.cap),
    }
}

/// The schema name of an interface, or its id in hex.
pub fn interface_label(interface_id: u64) -> String {
    match interface_name(interface_id) {
        Some(name) => name.to_string(),
        None => format!("{interface_id:#018x}"),
    }
}

/// Why a call failed, in a few words: the transport error's name
/// (`Revoked`), or the message of the application error.
pub fn reason(error: &CallError) -> String {
    match error {
        CallError::Transport(code) => match TransportError::from_u32(*code) {
            Some(e) => e.name().to_string(),
            None => format!("transport status {code}"),
        },
        CallError::Exception(e) if e.message.is_empty() => format!("error code {}", e.code),
        CallError::Exception(e) => capos_lib::shell::sanitize(&e.message).into_owned(),
        other => other.to_string(),
    }
}

/// The line a command prints when a call failed: `command: reason`.
pub fn failed(command: &str, error: &CallError) -> String {
    format!("{command}: {}", reason(error))
}
