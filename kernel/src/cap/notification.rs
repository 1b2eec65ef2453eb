//! `Notification`: a word of signal bits. `signal` sets bits; `wait` returns
//! (and clears) the set bits within its mask as soon as any is set, or fails
//! with `Timeout`.

use alloc::boxed::Box;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::cell::Cell;

use capos_abi::TransportError;
use capos_schema::capos_capnp::notification;
use capos_schema::{dispatch_notification_in, NotificationServer, ServerError};

use super::{exception, failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::sync::IrqLock;

/// Waits one notification holds at most.
pub const MAX_WAITERS: usize = 32;

struct Waiter {
    id: u64,
    mask: u64,
    call: PendingCall,
    timer: Option<u64>,
}

struct State {
    bits: u64,
    waiters: Vec<Waiter>,
    next_id: u64,
}

/// One notification object.
pub struct KernelNotification {
    this: Weak<KernelNotification>,
    state: IrqLock<State>,
}

impl KernelNotification {
    /// A new notification with no bits set.
    pub fn new() -> Arc<KernelNotification> {
        Arc::new_cyclic(|this| KernelNotification {
            this: this.clone(),
            state: IrqLock::new(State { bits: 0, waiters: Vec::new(), next_id: 1 }),
        })
    }

    fn signal(&self, bits: u64) {
        let woken: Vec<(Waiter, u64)> = {
            let mut s = self.state.lock();
            s.bits |= bits;
            // Waiters whose process ended take nothing.
            s.waiters.retain(|w| w.call.is_live());
            let mut woken = Vec::new();
            let mut i = 0;
            while i < s.waiters.len() {
                let got = s.bits & s.waiters[i].mask;
                if got != 0 {
                    s.bits &= !got;
                    woken.push((s.waiters.swap_remove(i), got));
                } else {
                    i += 1;
                }
            }
            woken
        };
        for (w, got) in woken {
            if let Some(t) = w.timer {
                crate::time::cancel(t);
            }
            crate::completion::complete(w.call, Ok(encode_bits(got)));
        }
    }

    fn timed_out(&self, id: u64) {
        let w = {
            let mut s = self.state.lock();
            let i = s.waiters.iter().position(|w| w.id == id);
            i.map(|i| s.waiters.swap_remove(i))
        };
        if let Some(w) = w {
            crate::completion::complete(w.call, Err(TransportError::Timeout));
        }
    }
}

impl Drop for KernelNotification {
    fn drop(&mut self) {
        // The last cap is gone: pending waits can never be satisfied.
        let waiters = core::mem::take(&mut self.state.lock().waiters);
        for w in waiters {
            if let Some(t) = w.timer {
                crate::time::cancel(t);
            }
            crate::completion::complete(w.call, Err(TransportError::Disconnected));
        }
    }
}

fn encode_bits(bits: u64) -> Vec<u8> {
    capos_schema::wire::encode::<notification::wait_results::Owned>(|mut r| {
        r.set_bits(bits);
        Ok(())
    })
    .expect("a one-field results message encodes")
}

struct Server<'a> {
    object: &'a KernelNotification,
    /// `wait` found nothing: (mask, timeout) to wait with.
    defer: Cell<Option<(u64, u64)>>,
}

impl NotificationServer for Server<'_> {
    fn signal(
        &mut self,
        params: notification::signal_params::Reader<'_>,
        _results: notification::signal_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.object.signal(params.get_bits());
        Ok(())
    }

    fn wait(
        &mut self,
        params: notification::wait_params::Reader<'_>,
        mut results: notification::wait_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let mask = params.get_mask();
        if mask == 0 {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                "wait with an empty mask",
            ));
        }
        let mut s = self.object.state.lock();
        let got = s.bits & mask;
        if got != 0 {
            s.bits &= !got;
            results.set_bits(got);
        } else {
            self.defer.set(Some((mask, params.get_timeout_ns())));
        }
        Ok(())
    }
}

impl CapObject for KernelNotification {
    fn interface_id(&self) -> u64 {
        capos_schema::notification::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::notification::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::notification::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { object: self, defer: Cell::new(None) };
        let () = match dispatch_notification_in(&mut server, method, frame) {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let Some((mask, timeout_ns)) = server.defer.get() else {
            return CallOutcome::built();
        };
        let mut s = self.state.lock();
        // A signal may have arrived since the check.
        let got = s.bits & mask;
        if got != 0 {
            s.bits &= !got;
            return CallOutcome::done(encode_bits(got));
        }
        s.waiters.retain(|w| w.call.is_live());
        if timeout_ns == 0 {
            return CallOutcome::Failed(TransportError::Timeout);
        }
        if s.waiters.len() >= MAX_WAITERS {
            return CallOutcome::Failed(TransportError::Overflow);
        }
        let id = s.next_id;
        s.next_id += 1;
        let timer = crate::time::deadline_after_ns(timeout_ns).map(|deadline| {
            let this = self.this.clone();
            crate::time::call_at(
                deadline,
                ctx.caller.pid,
                Box::new(move || {
                    if let Some(n) = this.upgrade() {
                        n.timed_out(id);
                    }
                }),
            )
        });
        s.waiters.push(Waiter { id, mask, call: ctx.pending(), timer });
        CallOutcome::Pending
    }
}
