//! Revocable wrappers: a copy of a cap that its creator can revoke, at once,
//! in every table it was passed to. Made by `IpcManager.makeRevocable`.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use capos_schema::capos_capnp::revoker;
use capos_schema::{dispatch_revoker, RevokerServer, ServerError};

use super::endpoint::Endpoint;
use super::{outcome, CallContext, CallOutcome, CapEntry, CapObject};

/// The wrapped cap: forwards every call to the inner cap until revoked.
pub struct Revocable {
    inner: CapEntry,
    revoked: Arc<AtomicBool>,
}

/// The creator's control of one wrapper.
pub struct KernelRevoker {
    revoked: Arc<AtomicBool>,
}

/// A wrapper around `inner` and the revoker that controls it.
pub fn wrap(inner: CapEntry) -> (CapEntry, CapEntry) {
    let revoked = Arc::new(AtomicBool::new(false));
    let interface_id = inner.interface_id;
    let wrapped =
        CapEntry { object: Arc::new(Revocable { inner, revoked: revoked.clone() }), interface_id };
    (CapEntry::new(Arc::new(KernelRevoker { revoked })), wrapped)
}

impl CapObject for Revocable {
    fn interface_id(&self) -> u64 {
        self.inner.interface_id
    }

    fn interface_name(&self) -> &'static str {
        self.inner.object.interface_name()
    }

    fn has_method(&self, method: u16) -> bool {
        self.inner.object.has_method(method)
    }

    fn accepts_caps(&self, method: u16) -> bool {
        self.inner.object.accepts_caps(method)
    }

    fn revoked(&self) -> bool {
        // A wrapper of a revoked wrapper is revoked too.
        self.revoked.load(Ordering::Acquire) || self.inner.object.revoked()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        if self.revoked() {
            return CallOutcome::Failed(capos_abi::TransportError::Revoked);
        }
        self.inner.object.call(ctx, method, params)
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.inner.object.endpoint()
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("revocable {}", self.inner.object.describe())
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

    fn call(&self, _ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        outcome(dispatch_revoker(&mut Server { revoked: &self.revoked }, method, params))
    }
}
