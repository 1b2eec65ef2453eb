//! `IpcManager`: creates endpoints for the holder.

use alloc::sync::Arc;

use capos_schema::capos_capnp::ipc_manager;
use capos_schema::{dispatch_ipc_manager, IpcManagerServer, ServerError};

use super::endpoint::{Endpoint, EndpointServer};
use super::{failure, CallContext, CallOutcome, CapEntry, CapObject};

/// The kernel's IPC object factory.
pub struct KernelIpcManager;

struct Server;

impl IpcManagerServer for Server {
    type Cap = CapEntry;

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

    fn call(&self, _ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        match dispatch_ipc_manager(&mut Server, method, params) {
            Ok(d) => CallOutcome::Done { results: d.results, caps: d.caps },
            Err(e) => failure(e),
        }
    }
}
