//! `ThreadHandle`: join one thread, or read what it used.

use alloc::sync::Arc;

use capos_abi::TransportError;
use capos_schema::capos_capnp::{thread_handle, ThreadEnd};
use capos_schema::{
    dispatch_thread_handle_in, SchemaStruct, ServerError, ThreadHandleServer, ThreadInfo,
};

use super::{failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::proc::ExitCause;
use crate::sched::Thread;

/// A handle on one thread (keeps its record, not its process, running).
pub struct KernelThreadHandle {
    /// The thread.
    pub thread: Arc<Thread>,
}

/// How a thread's end shows to `join`: (end, value).
fn end_of(cause: Option<&ExitCause>) -> (ThreadEnd, u64) {
    match cause {
        None => (ThreadEnd::Running, 0),
        Some(ExitCause::Exited(v)) => (ThreadEnd::Returned, *v as u64),
        Some(ExitCause::Fault { .. }) => (ThreadEnd::Faulted, 0),
        Some(ExitCause::Killed) => (ThreadEnd::Killed, 0),
    }
}

fn encode_join(cause: &ExitCause) -> alloc::vec::Vec<u8> {
    let (end, value) = end_of(Some(cause));
    capos_schema::wire::encode::<thread_handle::join_results::Owned>(|mut r| {
        r.set_value(value);
        r.set_end(end);
        Ok(())
    })
    .expect("a two-field results message encodes")
}

/// Completes a deferred `join` now that the thread ended with `cause`.
pub fn complete_join(call: PendingCall, cause: &ExitCause) {
    crate::completion::complete(call, Ok(encode_join(cause)));
}

struct Server<'a> {
    thread: &'a Arc<Thread>,
}

impl ThreadHandleServer for Server<'_> {
    fn join(
        &mut self,
        _params: thread_handle::join_params::Reader<'_>,
        _results: thread_handle::join_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        // Performed in `call`, which may defer it.
        Ok(())
    }

    fn info(
        &mut self,
        _params: thread_handle::info_params::Reader<'_>,
        results: thread_handle::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let user = crate::proc::thread::user_of(self.thread.as_ref())
            .expect("handles are made for user threads");
        let (end, value) = end_of(user.end.lock().cause.as_ref());
        let ticks = self.thread.cpu_ticks();
        let hz = crate::arch::x86_64::tsc::hz().max(1);
        let info = ThreadInfo {
            tid: self.thread.tid,
            end,
            value,
            cpu_ns: (ticks as u128 * 1_000_000_000 / hz as u128) as u64,
            weight: crate::sched::weight_of(self.thread),
            cpu: self.thread.cpu(),
        };
        info.write_to(results.init_info())?;
        Ok(())
    }
}

impl CapObject for KernelThreadHandle {
    fn interface_id(&self) -> u64 {
        capos_schema::thread_handle::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::thread_handle::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::thread_handle::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        if let Err(e) =
            dispatch_thread_handle_in(&mut Server { thread: &self.thread }, method, frame)
        {
            return failure(e);
        }
        if method != capos_schema::thread_handle::method::JOIN {
            return CallOutcome::built();
        }
        if Arc::ptr_eq(&self.thread, ctx.thread) {
            // A thread waiting for its own end would wait forever.
            return CallOutcome::Failed(TransportError::BadState);
        }
        let user = crate::proc::thread::user_of(self.thread.as_ref())
            .expect("handles are made for user threads");
        let mut end = user.end.lock();
        if end.joined {
            return CallOutcome::Failed(TransportError::BadState);
        }
        end.joined = true;
        match end.cause.clone() {
            Some(cause) => CallOutcome::done(encode_join(&cause)),
            None => {
                end.joiners.push(ctx.pending());
                CallOutcome::Pending
            }
        }
    }

    fn thread(&self) -> Option<&Arc<Thread>> {
        Some(&self.thread)
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!("ThreadHandle(tid {})", self.thread.tid)
    }
}
