//! The capOS boot manifest: what init starts, with which caps.
//!
//! The operator writes `system.cue`; `cue export` (see `tools/cue/`) turns it
//! into JSON; `tools/mkmanifest` reads that JSON with [`from_json`], checks it
//! with [`validate()`] and writes the Cap'n Proto `SystemManifest`
//! (`schema/capos.capnp`) with [`encode`], the boot module `manifest.bin`.
//! [`decode`] reads such a module back into the same [`Manifest`], and
//! [`start_order`] gives the order init starts the services in.
//!
//! - [`model`]: the typed manifest ([`Manifest`], [`Service`], [`Grant`], …)
//!   and a text rendering of it (its `Display`).
//! - [`mod@validate`]: [`validate()`] checks every rule a manifest must follow, each broken
//!   rule a [`ValidationError`] whose message names the service and field.
//! - [`start_order`]: services in dependency order, stable by declaration.
//! - [`encode`] / [`decode`]: the model to and from `SystemManifest` bytes.
//! - [`from_json`] (feature `json`, on by default): the JSON `cue export`
//!   prints; the `json` module documents its shape.
//!
//! Without the `json` feature the crate is `no_std` (with `alloc`), so that
//! init can decode and check the manifest again at boot and fail closed.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
#[cfg(feature = "json")]
pub mod json;
pub mod model;
mod order;
pub mod validate;
mod wire;

pub use error::ConfigError;
#[cfg(feature = "json")]
pub use json::from_json;
pub use model::{
    Account, AuthConfig, ExportRef, Grant, GrantSource, KernelParams, LimitsText, Manifest,
    Profile, Resources, RestartMode, RestartPolicy, Service,
};
pub use order::start_order;
pub use validate::{
    check_hostname, validate, Context, HostnameError, SourceField, ValidationError,
};
pub use wire::{decode, encode};

/// The `SystemManifest` version this crate reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

/// The bootstrap caps init holds and may grant to a service by name (a
/// grant's `kernel` source), in the order the schema lists them.
pub const KERNEL_CAP_SOURCES: &[&str] = &[
    "console",
    "sysinfo",
    "clock",
    "timer",
    "log",
    "log_reader",
    "entropy",
    "spawner",
    "vm",
    "ipc",
    "boot",
    "terminal",
    "processes",
    "threads",
    "park",
    "sched",
    "devices",
];

/// The kernel log levels, least verbose first.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Most restarts a restart policy may allow.
pub const MAX_RESTARTS: u32 = 100;

/// Longest first restart delay a restart policy may ask for, in milliseconds.
pub const MAX_BACKOFF_MS: u32 = 60_000;

/// Longest host name (RFC 1123), in characters.
pub const MAX_HOSTNAME_LEN: usize = 253;

/// Longest label of a host name, in characters.
pub const MAX_HOSTNAME_LABEL_LEN: usize = 63;

/// Longest grant name in bytes: the size of a cap set entry's name
/// (`capos_abi::CAPSET_NAME_LEN`).
pub const MAX_GRANT_NAME_BYTES: usize = capos_abi::CAPSET_NAME_LEN;

/// Most grants one service may have: the entries of a startup page's cap set
/// (`capos_abi::MAX_CAPSET`).
pub const MAX_GRANTS: usize = capos_abi::MAX_CAPSET as usize;

/// The CapSet name under which init grants a service that exports caps its
/// `ServiceExporter` cap; such a service may not use it for a grant.
pub const EXPORTER_GRANT: &str = "exporter";

/// Most arguments a process may receive (`ProcessSpawner.spawn` refuses more;
/// kernel `cap/process_spawner.rs`, `MAX_ARGS`).
pub const MAX_ARGS: usize = 32;

/// Most bytes of arguments a process may receive, one terminating NUL per
/// argument included (kernel `proc/spawn.rs`, `MAX_ARGS_BYTES`).
pub const MAX_ARGS_BYTES: usize = 1024;

/// Fewest frames a service's `resources.frames` may name (0 aside, which
/// means the default): fewer cannot hold a program's ring, startup page,
/// stack and page tables.
pub const MIN_RESOURCE_FRAMES: u64 = 16;

/// Most frames `resources.frames` may name: 1 TiB of 4 KiB frames.
pub const MAX_RESOURCE_FRAMES: u64 = (1 << 40) / 4096;

/// Fewest bytes `resources.kernelBytes` may name (0 aside): 64 KiB.
pub const MIN_RESOURCE_KERNEL_BYTES: u64 = 64 << 10;

/// Most bytes `resources.kernelBytes` may name: 1 TiB.
pub const MAX_RESOURCE_KERNEL_BYTES: u64 = 1 << 40;

/// Most threads `resources.threads` may name (`capos_abi::MAX_THREADS`).
pub const MAX_RESOURCE_THREADS: u32 = capos_abi::MAX_THREADS;

/// Most cap-table slots `resources.caps` may name
/// (`capos_abi::resources::MAX_CAP_SLOTS`).
pub const MAX_RESOURCE_CAPS: u32 = capos_abi::resources::MAX_CAP_SLOTS;

/// Most open ring operations `resources.openCalls` may name
/// (`capos_abi::resources::MAX_OPEN_CALLS`).
pub const MAX_RESOURCE_OPEN_CALLS: u32 = capos_abi::resources::MAX_OPEN_CALLS;
