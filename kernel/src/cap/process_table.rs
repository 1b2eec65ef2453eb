//! `ProcessTable`: every process of the system, for `ps` and `kill` by pid.
//! An operator's cap: holding it is the authority to end any process but
//! init.

use capos_schema::capos_capnp::process_table;
use capos_schema::{
    dispatch_process_table_in, ProcessEntry, ProcessTableServer, SchemaStruct, ServerError,
};

use super::{outcome, CallContext, CallOutcome, CapObject, KernelFrame};

/// The kernel's process table object.
pub struct KernelProcessTable;

/// Application error codes of `ProcessTable`.
pub mod error {
    /// No live process has the pid.
    pub const NO_SUCH_PROCESS: u32 = 1;
    /// The pid is init's.
    pub const INIT: u32 = 2;
}

struct Server;

impl ProcessTableServer for Server {
    fn list(
        &mut self,
        _params: process_table::list_params::Reader<'_>,
        mut results: process_table::list_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let processes = crate::proc::all();
        let mut list = results.reborrow().init_processes(processes.len() as u32);
        for (i, p) in processes.iter().enumerate() {
            let entry = ProcessEntry {
                pid: p.pid,
                parent: p.parent,
                name: p.name.clone(),
                state: p.state_name().into(),
                cpu_ns: p.cpu_ns(),
            };
            entry.write_to(list.reborrow().get(i as u32))?;
        }
        Ok(())
    }

    fn kill(
        &mut self,
        params: process_table::kill_params::Reader<'_>,
        _results: process_table::kill_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let pid = params.get_pid();
        let Some(process) = crate::proc::find(pid) else {
            return Err(ServerError::exception(
                error::NO_SUCH_PROCESS,
                alloc::format!("no process has pid {pid}"),
            ));
        };
        if process.parent == 0 {
            return Err(ServerError::exception(
                error::INIT,
                alloc::format!("pid {pid} is init, which may not be killed"),
            ));
        }
        crate::kinfo!(
            "proc",
            "{} (pid {}): kill requested through ProcessTable",
            process.name,
            pid
        );
        process.request_kill();
        Ok(())
    }
}

impl CapObject for KernelProcessTable {
    fn interface_id(&self) -> u64 {
        capos_schema::process_table::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::process_table::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::process_table::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_process_table_in(&mut Server, method, frame))
    }
}
