//! `ThreadSpawner`: start threads in the caller's own process.

use alloc::sync::Arc;
use core::cell::Cell;

use capos_abi::TransportError;
use capos_schema::capos_capnp::thread_spawner;
use capos_schema::{dispatch_thread_spawner_in, ServerError, ThreadSpawnerServer};

use super::thread_handle::KernelThreadHandle;
use super::{failure, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame};
use crate::proc::thread::{self, ThreadStart};

/// The kernel's thread spawner (acts on whichever process calls).
pub struct KernelThreadSpawner;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
    /// A transport-level refusal (limit, bad address) to report as such.
    refused: Cell<Option<TransportError>>,
}

impl ThreadSpawnerServer for Server<'_> {
    type Cap = Option<CapEntry>;

    fn spawn(
        &mut self,
        params: thread_spawner::spawn_params::Reader<'_>,
        _results: thread_spawner::spawn_results::Builder<'_>,
    ) -> Result<Option<CapEntry>, ServerError> {
        let start = ThreadStart {
            entry: params.get_entry(),
            arg: params.get_arg(),
            stack_top: params.get_stack_top(),
            tls: params.get_tls(),
        };
        match thread::spawn(self.ctx.caller, start) {
            Ok(t) => Ok(Some(CapEntry::new(Arc::new(KernelThreadHandle { thread: t })))),
            Err(e) => {
                self.refused.set(Some(e));
                Ok(None)
            }
        }
    }

    fn set_tls(
        &mut self,
        params: thread_spawner::set_tls_params::Reader<'_>,
        _results: thread_spawner::set_tls_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let tls = params.get_tls();
        if tls >= capos_abi::USER_TOP {
            self.refused.set(Some(TransportError::BadPointer));
        } else {
            // The call runs on the calling thread, on its CPU: the FS base
            // set here is what it returns to user mode with (and what the
            // scheduler loads whenever the thread gets a CPU again).
            crate::sched::set_fs_base(tls);
        }
        Ok(())
    }
}

impl CapObject for KernelThreadSpawner {
    fn interface_id(&self) -> u64 {
        capos_schema::thread_spawner::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::thread_spawner::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::thread_spawner::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { ctx, refused: Cell::new(None) };
        match dispatch_thread_spawner_in(&mut server, method, frame) {
            Ok(_) if server.refused.get().is_some() => {
                CallOutcome::Failed(server.refused.get().expect("checked just above"))
            }
            Ok(d) => CallOutcome::Built { caps: d.into_iter().flatten().collect() },
            Err(e) => failure(e),
        }
    }
}
