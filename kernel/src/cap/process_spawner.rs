//! `ProcessSpawner`: start a program from the boot package with exactly the
//! caps the caller grants it (copies of caps the caller holds).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use capos_abi::CapId;
use capos_schema::capos_capnp::process_spawner;
use capos_schema::{dispatch_process_spawner, ProcessSpawnerServer, ServerError};

use super::process_handle::KernelProcessHandle;
use super::{exception, failure, CallContext, CallOutcome, CapEntry, CapObject};
use crate::proc::spawn::{spawn, Grant, SpawnError};

/// Most arguments a spawn may pass.
pub const MAX_ARGS: u32 = 32;

/// The kernel's process spawner.
pub struct KernelSpawner;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
}

impl ProcessSpawnerServer for Server<'_> {
    type Cap = CapEntry;

    fn spawn(
        &mut self,
        params: process_spawner::spawn_params::Reader<'_>,
        _results: process_spawner::spawn_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        // Decode and validate everything first.
        let binary = params.get_binary()?.to_str()?;
        let args_list = params.get_args()?;
        if args_list.len() > MAX_ARGS {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("{} arguments (at most {MAX_ARGS})", args_list.len()),
            ));
        }
        let mut args = Vec::new();
        for a in args_list.iter() {
            args.push(String::from(a?.to_str()?));
        }
        let image = super::boot_package::binary(binary).ok_or_else(|| {
            ServerError::exception(
                exception::NOT_FOUND,
                alloc::format!("no binary `{binary}` in the boot package"),
            )
        })?;
        let mut grants = Vec::new();
        {
            let table = self.ctx.caller.caps.lock();
            for g in params.get_grants()?.iter() {
                let name = String::from(g.get_name()?.to_str()?);
                let cap = table.get(CapId(g.get_cap())).map_err(|e| {
                    ServerError::exception(
                        exception::NOT_FOUND,
                        alloc::format!("grant `{name}`: {e}"),
                    )
                })?;
                grants.push(Grant { name, cap: cap.clone() });
            }
        }
        // Perform.
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn(binary, image, grants, &arg_refs, self.ctx.caller.pid).map_err(|e| {
            let code = match e {
                SpawnError::NoMemory => exception::EXHAUSTED,
                _ => exception::INVALID_ARGUMENT,
            };
            ServerError::exception(code, alloc::format!("cannot start `{binary}`: {e}"))
        })?;
        Ok(CapEntry::new(Arc::new(KernelProcessHandle { process: child })))
    }
}

impl CapObject for KernelSpawner {
    fn interface_id(&self) -> u64 {
        capos_schema::process_spawner::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::process_spawner::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::process_spawner::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        match dispatch_process_spawner(&mut Server { ctx }, method, params) {
            Ok(d) => CallOutcome::Done { results: d.results, caps: d.caps },
            Err(e) => failure(e),
        }
    }
}
