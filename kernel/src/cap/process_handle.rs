//! `ProcessHandle`: wait for, kill, or identify one spawned process.

use alloc::sync::Arc;
use core::cell::Cell;

use capos_schema::capos_capnp::process_handle;
use capos_schema::{
    dispatch_process_handle_in, ProcessHandleServer, ProcessStatus, SchemaStruct, ServerError,
};

use super::{failure, profile_of, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::proc::{ExitCause, Process};

/// A handle on one process (keeps its record, not its memory, alive).
pub struct KernelProcessHandle {
    /// The process.
    pub process: Arc<Process>,
}

struct Server<'a> {
    process: &'a Arc<Process>,
    /// `wait` on a live process: complete when it exits.
    defer_wait: Cell<bool>,
}

impl ProcessHandleServer for Server<'_> {
    fn wait(
        &mut self,
        _params: process_handle::wait_params::Reader<'_>,
        mut results: process_handle::wait_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        match self.process.exit.lock().cause.as_ref() {
            Some(cause) => results.set_exit_code(cause.code()),
            None => self.defer_wait.set(true),
        }
        Ok(())
    }

    fn kill(
        &mut self,
        _params: process_handle::kill_params::Reader<'_>,
        _results: process_handle::kill_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.process.request_kill();
        Ok(())
    }

    fn status(
        &mut self,
        _params: process_handle::status_params::Reader<'_>,
        results: process_handle::status_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let exit = self.process.exit.lock();
        let status = match exit.cause.as_ref() {
            None => ProcessStatus {
                exited: false,
                exit_code: 0,
                cause: "running".into(),
                fault_rip: 0,
                fault_address: 0,
            },
            Some(cause) => {
                let (text, rip, addr) = match cause {
                    ExitCause::Exited(_) => ("exited", 0, 0),
                    ExitCause::Killed => ("killed", 0, 0),
                    ExitCause::Fault { name, rip, addr, .. } => (*name, *rip, *addr),
                };
                ProcessStatus {
                    exited: true,
                    exit_code: cause.code(),
                    cause: text.into(),
                    fault_rip: rip,
                    fault_address: addr,
                }
            }
        };
        status.write_to(results.init_status())?;
        Ok(())
    }

    fn id(
        &mut self,
        _params: process_handle::id_params::Reader<'_>,
        mut results: process_handle::id_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_pid(self.process.pid);
        Ok(())
    }

    fn usage(
        &mut self,
        _params: process_handle::usage_params::Reader<'_>,
        mut results: process_handle::usage_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        if self.process.exit_started() {
            return Ok(());
        }
        let account = &self.process.account;
        let mut used = account.used();
        used.caps = self.process.caps.lock().len() as u32;
        profile_of(used).write_to(results.reborrow().init_used())?;
        profile_of(account.limits()).write_to(results.init_limits())?;
        Ok(())
    }
}

/// Completes a deferred `wait` with the exit code.
pub fn complete_wait(call: PendingCall, code: i64) {
    let results = capos_schema::wire::encode::<process_handle::wait_results::Owned>(|mut r| {
        r.set_exit_code(code);
        Ok(())
    })
    .expect("a one-field results message encodes");
    crate::completion::complete(call, Ok(results));
}

impl CapObject for KernelProcessHandle {
    fn interface_id(&self) -> u64 {
        capos_schema::process_handle::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::process_handle::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::process_handle::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { process: &self.process, defer_wait: Cell::new(false) };
        match dispatch_process_handle_in(&mut server, method, frame) {
            Ok(()) if server.defer_wait.get() => {
                let mut exit = self.process.exit.lock();
                match exit.cause.as_ref() {
                    // It exited between the check and now.
                    Some(cause) => {
                        let code = cause.code();
                        drop(exit);
                        complete_wait(ctx.pending(), code);
                    }
                    None => exit.waiters.push(ctx.pending()),
                }
                CallOutcome::Pending
            }
            Ok(()) => CallOutcome::built(),
            Err(e) => failure(e),
        }
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("ProcessHandle({} pid {})", self.process.name, self.process.pid)
    }
}
