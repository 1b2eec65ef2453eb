//! `ProcessSpawner`: start a program from the boot package with exactly the
//! caps the caller grants it (copies of caps the caller holds), and limits
//! no larger than the caller has left (its resource profile: see
//! `mem::account`). A child over what the caller can give fails with
//! `QuotaExceeded`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use capos_abi::resources::{PROGRAM_DEFAULTS, SERVICE_DEFAULTS};
use capos_abi::{CapId, TransportError};
use capos_schema::capos_capnp::process_spawner;
use capos_schema::{
    dispatch_process_spawner_in, ProcessSpawnerServer, ResourceProfile, SchemaStruct, ServerError,
};

use super::process_handle::KernelProcessHandle;
use super::{
    exception, limits_of, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame, Refusal,
};
use crate::mem::account::{Account, Limits, QuotaExceeded};
use crate::proc::spawn::{spawn, Grant, SpawnError};

/// Most arguments a spawn may pass.
pub const MAX_ARGS: u32 = 32;

/// The kernel's process spawner.
pub struct KernelSpawner;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
    refusal: &'a Refusal,
}

/// A child's limits: each 0 field of `requested` takes the default (a
/// service's for init's children, a started program's otherwise) cut to what
/// the caller has left; the fields it names are checked against that by
/// [`Account::child`].
fn child_account(
    caller: &Arc<crate::proc::Process>,
    requested: Limits,
) -> Result<Arc<Account>, QuotaExceeded> {
    let defaults = if caller.parent == 0 { SERVICE_DEFAULTS } else { PROGRAM_DEFAULTS };
    let left = caller.account.left();
    let limits = caller.account.limits();
    let fitted = Limits {
        frames: defaults.frames.min(left.frames),
        kernel_bytes: defaults.kernel_bytes.min(left.kernel_bytes),
        threads: defaults.threads.min(limits.threads),
        caps: defaults.caps.min(limits.caps),
        open_calls: defaults.open_calls.min(limits.open_calls),
    };
    Account::child(&caller.account, requested.or(fitted))
}

impl Server<'_> {
    fn start(
        &mut self,
        binary: &str,
        args_list: capnp::text_list::Reader<'_>,
        grant_list: capnp::struct_list::Reader<'_, capos_schema::capos_capnp::grant::Owned>,
        requested: Limits,
    ) -> Result<CapEntry, ServerError> {
        // Decode and validate everything first.
        if args_list.len() > MAX_ARGS {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("{} arguments (at most {MAX_ARGS})", args_list.len()),
            ));
        }
        if let Some(field) = requested.over_bounds() {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("profile field {field} is over its bound"),
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
            for g in grant_list.iter() {
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
        let account = match child_account(self.ctx.caller, requested) {
            Ok(a) => a,
            Err(q) => {
                crate::kdebug!("proc", "{}: cannot start `{binary}`: {q}", self.ctx.caller.name);
                return Err(self.refusal.refuse(TransportError::QuotaExceeded));
            }
        };
        // Perform.
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let child =
            spawn(binary, image, grants, &arg_refs, self.ctx.caller.pid, account).map_err(|e| {
                let code = match e {
                    SpawnError::NoMemory => exception::EXHAUSTED,
                    SpawnError::Quota(_) => {
                        return self.refusal.refuse(TransportError::QuotaExceeded);
                    }
                    _ => exception::INVALID_ARGUMENT,
                };
                ServerError::exception(code, alloc::format!("cannot start `{binary}`: {e}"))
            })?;
        Ok(CapEntry::new(Arc::new(KernelProcessHandle { process: child })))
    }
}

impl ProcessSpawnerServer for Server<'_> {
    type Cap = CapEntry;

    fn spawn(
        &mut self,
        params: process_spawner::spawn_params::Reader<'_>,
        _results: process_spawner::spawn_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let binary = params.get_binary()?.to_str()?;
        self.start(binary, params.get_args()?, params.get_grants()?, Limits::default())
    }

    fn spawn_limited(
        &mut self,
        params: process_spawner::spawn_limited_params::Reader<'_>,
        _results: process_spawner::spawn_limited_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        let binary = params.get_binary()?.to_str()?;
        let requested = limits_of(&ResourceProfile::read_from(params.get_profile()?)?);
        self.start(binary, params.get_args()?, params.get_grants()?, requested)
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

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_process_spawner_in(&mut Server { ctx, refusal: &refusal }, method, frame);
        refusal.or(|| super::outcome_caps(r))
    }
}
