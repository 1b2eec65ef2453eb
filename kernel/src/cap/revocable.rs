//! Revocable wrappers: a copy of a cap that its creator can revoke, at once,
//! in every table it was passed to. Made by `IpcManager.makeRevocable`.
//!
//! Wrappers are flat: wrapping a wrapper makes a new wrapper of the same
//! base object that carries the inner wrapper's revocation flags plus its
//! own, so a call, the revoked check and the drop never recurse, however
//! often a cap was wrapped. A chain is at most [`MAX_DEPTH`] levels deep;
//! wrapping past it fails (`IpcManager.makeRevocable` raises
//! `exception::EXHAUSTED`).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use capos_schema::capos_capnp::revoker;
use capos_schema::{dispatch_revoker_in, RevokerServer, ServerError};

use super::endpoint::Endpoint;
use super::{outcome, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame};

/// Most revocation levels one wrapper carries (a wrapper of a wrapper of
/// ... of a cap, `MAX_DEPTH` times).
pub const MAX_DEPTH: usize = 32;

/// The wrapped cap: forwards every call to the base cap until any of its
/// levels is revoked.
pub struct Revocable {
    /// The wrapped object (never itself a `Revocable`).
    base: CapEntry,
    /// One flag per level, innermost first; revoking any level sets its flag.
    levels: Vec<Arc<AtomicBool>>,
}

/// The creator's control of one wrapper level.
pub struct KernelRevoker {
    revoked: Arc<AtomicBool>,
}

/// Wrapping would make a chain deeper than [`MAX_DEPTH`].
pub struct TooDeep;

/// A wrapper around `inner` and the revoker that controls it; `inner` comes
/// back when it is already [`MAX_DEPTH`] levels deep.
pub fn wrap(inner: CapEntry) -> Result<(CapEntry, CapEntry), (TooDeep, CapEntry)> {
    let revoked = Arc::new(AtomicBool::new(false));
    let interface_id = inner.interface_id;
    let (base, mut levels) = match inner.object.as_revocable() {
        Some(r) => {
            if r.levels.len() >= MAX_DEPTH {
                return Err((TooDeep, inner));
            }
            // alloc: at most MAX_DEPTH (32) flags, checked above
            let mut levels = Vec::with_capacity(r.levels.len() + 1);
            levels.extend(r.levels.iter().cloned());
            (r.base.clone(), levels)
        }
        None => (CapEntry { object: inner.object.clone(), interface_id }, Vec::with_capacity(1)), // alloc: one flag
    };
    levels.push(revoked.clone());
    // `inner` (perhaps the last reference to an inner wrapper) is dropped by
    // the caller's scope; it holds only flags and the base, never a chain.
    drop(inner);
    let wrapped = CapEntry { object: Arc::new(Revocable { base, levels }), interface_id };
    Ok((CapEntry::new(Arc::new(KernelRevoker { revoked })), wrapped))
}

impl CapObject for Revocable {
    fn interface_id(&self) -> u64 {
        self.base.interface_id
    }

    fn interface_name(&self) -> &'static str {
        self.base.object.interface_name()
    }

    fn has_method(&self, method: u16) -> bool {
        self.base.object.has_method(method)
    }

    fn accepts_caps(&self, method: u16) -> bool {
        self.base.object.accepts_caps(method)
    }

    fn revoked(&self) -> bool {
        // Revoking any level (this wrapper's or one it was made from)
        // revokes it.
        self.levels.iter().any(|l| l.load(Ordering::Acquire)) || self.base.object.revoked()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        if self.revoked() {
            return CallOutcome::Failed(capos_abi::TransportError::Revoked);
        }
        self.base.object.call(ctx, method, frame)
    }

    fn admits(&self) -> Result<(), capos_abi::TransportError> {
        self.base.object.admits()
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.base.object.endpoint()
    }

    fn as_revocable(&self) -> Option<&Revocable> {
        Some(self)
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("revocable ({} levels) {}", self.levels.len(), self.base.object.describe())
    }
}

struct Server<'a> {
    revoked: &'a AtomicBool,
}

impl RevokerServer for Server<'_> {
    fn revoke(
        &mut self,
        _params: revoker::revoke_params::Reader<'_>,
        _results: revoker::revoke_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.revoked.store(true, Ordering::Release);
        Ok(())
    }
}

impl CapObject for KernelRevoker {
    fn interface_id(&self) -> u64 {
        capos_schema::revoker::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::revoker::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::revoker::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_revoker_in(&mut Server { revoked: &self.revoked }, method, frame))
    }
}
