//! `Timer`: monotonic time and sleeping.

use core::cell::Cell;

use capos_schema::capos_capnp::timer;
use capos_schema::{dispatch_timer_in, ServerError, TimerServer};

use super::{failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;

/// The kernel's timer object.
pub struct KernelTimer;

struct Server {
    /// Set by `sleep` and `sleepUntil`: the TSC deadline of the call.
    deadline: Cell<Option<u64>>,
}

impl TimerServer for Server {
    fn now(
        &mut self,
        _params: timer::now_params::Reader<'_>,
        mut results: timer::now_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_ns(crate::time::monotonic_ns());
        Ok(())
    }

    fn sleep(
        &mut self,
        params: timer::sleep_params::Reader<'_>,
        _results: timer::sleep_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        // Rounded up to the next TSC tick so the sleep never ends early.
        let deadline = crate::time::now_tsc()
            .saturating_add(crate::time::ns_to_tsc(params.get_ns()))
            .saturating_add(1);
        self.deadline.set(Some(deadline));
        Ok(())
    }

    fn sleep_until(
        &mut self,
        params: timer::sleep_until_params::Reader<'_>,
        _results: timer::sleep_until_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.deadline.set(Some(crate::arch::x86_64::tsc::tsc_at_nanos(params.get_deadline_ns())));
        Ok(())
    }
}

/// Completes a sleep whose deadline passed.
pub fn finish_sleep(call: PendingCall) {
    let results = capos_schema::wire::encode::<timer::sleep_results::Owned>(|_| Ok(()))
        .expect("an empty results message encodes");
    crate::completion::complete(call, Ok(results));
}

impl CapObject for KernelTimer {
    fn interface_id(&self) -> u64 {
        capos_schema::timer::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::timer::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::timer::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { deadline: Cell::new(None) };
        match dispatch_timer_in(&mut server, method, frame) {
            Ok(()) => match server.deadline.get() {
                // A sleep that never ends is not queued: nothing would
                // ever complete it (its CQ slot stays reserved).
                Some(crate::time::NEVER) => CallOutcome::Pending,
                Some(deadline) if deadline > crate::time::now_tsc() => {
                    let call = ctx.pending();
                    crate::time::call_at(
                        deadline,
                        ctx.caller.pid,
                        alloc::boxed::Box::new(move || finish_sleep(call)),
                    );
                    CallOutcome::Pending
                }
                Some(_) => CallOutcome::built(),
                None => CallOutcome::built(),
            },
            Err(e) => failure(e),
        }
    }
}
