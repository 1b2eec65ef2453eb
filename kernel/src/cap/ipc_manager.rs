//! `IpcManager`: creates endpoints for the holder.

use alloc::sync::Arc;

use capos_schema::capos_capnp::ipc_manager;
use capos_schema::{dispatch_ipc_manager_in, IpcManagerServer, ServerError};

use super::endpoint::{Endpoint, EndpointServer};
use super::notification::KernelNotification;
use super::{exception, failure, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame};

/// The kernel's IPC object factory.
pub struct KernelIpcManager;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
    /// Set by `makeRevocable`: the wrapped copy, returned as the second
    /// result cap.
    wrapped: Option<CapEntry>,
}

impl IpcManagerServer for Server<'_> {
    type Cap = CapEntry;

    fn make_revocable(
        &mut self,
        _params: ipc_manager::make_revocable_params::Reader<'_>,
        _results: ipc_manager::make_revocable_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let mut caps = self.ctx.take_caps();
        if caps.len() != 1 {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("makeRevocable takes exactly one cap, got {}", caps.len()),
            ));
        }
        match super::revocable::wrap(caps.remove(0)) {
            Ok((revoker, wrapped)) => {
                self.wrapped = Some(wrapped);
                Ok(revoker)
            }
            Err((_, inner)) => {
                // Dropped after the message is made: it is a flat wrapper.
                drop(inner);
                Err(ServerError::exception(
                    exception::EXHAUSTED,
                    alloc::format!(
                        "makeRevocable: the cap is already wrapped {} levels deep (the most)",
                        super::revocable::MAX_DEPTH
                    ),
                ))
            }
        }
    }

    fn create_notification(
        &mut self,
        _params: ipc_manager::create_notification_params::Reader<'_>,
        _results: ipc_manager::create_notification_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        Ok(CapEntry::new(KernelNotification::new()))
    }

    fn create_endpoint(
        &mut self,
        _params: ipc_manager::create_endpoint_params::Reader<'_>,
        _results: ipc_manager::create_endpoint_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        Ok(CapEntry::new(Arc::new(EndpointServer { endpoint: Endpoint::new() })))
    }
}

impl CapObject for KernelIpcManager {
    fn interface_id(&self) -> u64 {
        capos_schema::ipc_manager::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::ipc_manager::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::ipc_manager::method::name(method).is_some()
    }

    fn accepts_caps(&self, method: u16) -> bool {
        method == capos_schema::ipc_manager::method::MAKE_REVOCABLE
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { ctx, wrapped: None };
        match dispatch_ipc_manager_in(&mut server, method, frame) {
            Ok(mut d) => {
                d.extend(server.wrapped.take());
                CallOutcome::Built { caps: d }
            }
            Err(e) => failure(e),
        }
    }
}
