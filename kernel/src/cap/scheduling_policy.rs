//! `SchedulingPolicy`: set thread weights, read per-CPU scheduler counters.

use core::sync::atomic::Ordering;

use capos_schema::capos_capnp::scheduling_policy;
use capos_schema::{dispatch_scheduling_policy_in, SchedulingPolicyServer, ServerError};

use super::{exception, failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::arch::x86_64::percpu;

/// The kernel's scheduling policy object.
pub struct KernelSchedulingPolicy;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
}

impl SchedulingPolicyServer for Server<'_> {
    fn set_weight(
        &mut self,
        params: scheduling_policy::set_weight_params::Reader<'_>,
        _results: scheduling_policy::set_weight_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let weight = params.get_weight();
        if !(crate::sched::MIN_WEIGHT..=crate::sched::MAX_WEIGHT).contains(&weight) {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!(
                    "weight {weight} outside {}..={}",
                    crate::sched::MIN_WEIGHT,
                    crate::sched::MAX_WEIGHT
                ),
            ));
        }
        let caps = self.ctx.take_caps();
        let thread = match caps.as_slice() {
            [one] => one.object.thread().cloned(),
            _ => None,
        };
        let Some(thread) = thread else {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!(
                    "setWeight takes exactly one ThreadHandle ({} caps sent)",
                    caps.len()
                ),
            ));
        };
        crate::sched::set_weight(&thread, weight);
        Ok(())
    }

    fn cpu_stats(
        &mut self,
        params: scheduling_policy::cpu_stats_params::Reader<'_>,
        mut results: scheduling_policy::cpu_stats_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let Some(cpu) = percpu::get(params.get_cpu() as usize) else {
            return Err(ServerError::exception(
                exception::NOT_FOUND,
                alloc::format!("no cpu{}", params.get_cpu()),
            ));
        };
        results.set_online(cpu.online.load(Ordering::Acquire));
        results.set_timer_interrupts(cpu.timer_ticks.load(Ordering::Relaxed));
        results.set_switches(cpu.switches.load(Ordering::Relaxed));
        results.set_steals(cpu.steals.load(Ordering::Relaxed));
        Ok(())
    }
}

impl CapObject for KernelSchedulingPolicy {
    fn interface_id(&self) -> u64 {
        capos_schema::scheduling_policy::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::scheduling_policy::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::scheduling_policy::method::name(method).is_some()
    }

    fn accepts_caps(&self, method: u16) -> bool {
        method == capos_schema::scheduling_policy::method::SET_WEIGHT
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        match dispatch_scheduling_policy_in(&mut Server { ctx }, method, frame) {
            Ok(()) => CallOutcome::built(),
            Err(e) => failure(e),
        }
    }
}
