//! `ParkSpace`: futex-like parking of threads on 32-bit words of their own
//! process's memory.
//!
//! Waiters are kept per process, then per address: a `wait` or `wake` looks
//! at its own process's queues only, and a process's queues go when it is
//! torn down ([`forget`]). `wait` reads the word and
//! queues the caller under the same lock `wake` takes, so a `wake` that
//! follows a store to the word either finds the waiter queued or the waiter
//! sees the new value: no wake-up is lost.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::cell::Cell;

use capos_abi::TransportError;
use capos_schema::capos_capnp::{park_space, ParkResult};
use capos_schema::{dispatch_park_space_in, ParkSpaceServer, ServerError};

use super::{failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::mem::user::UserRange;
use crate::sync::IrqLock;

/// The kernel's park space (acts on whichever process calls).
pub struct KernelParkSpace;

/// Most threads parked on one word.
const MAX_PARKED_PER_WORD: usize = 256;

struct Parked {
    id: u64,
    call: PendingCall,
    timer: Option<u64>,
}

/// The parked calls of one process, by word address.
type Words = BTreeMap<u64, VecDeque<Parked>>;

struct Queues {
    /// Process id -> its words.
    by_pid: BTreeMap<u64, Words>,
    next_id: u64,
}

static PARKED: IrqLock<Queues> = IrqLock::new(Queues { by_pid: BTreeMap::new(), next_id: 1 });

impl Queues {
    /// Takes parked call `id` off word `key`, dropping emptied queues.
    fn take(
        &mut self,
        (pid, addr): (u64, u64),
        mut pick: impl FnMut(&mut VecDeque<Parked>) -> Vec<Parked>,
    ) -> Vec<Parked> {
        let Some(words) = self.by_pid.get_mut(&pid) else { return Vec::new() };
        let Some(list) = words.get_mut(&addr) else { return Vec::new() };
        let taken = pick(list);
        if list.is_empty() {
            words.remove(&addr);
            if words.is_empty() {
                self.by_pid.remove(&pid);
            }
        }
        taken
    }
}

/// Process `pid` is torn down: its parked calls go (their timers were
/// cancelled with the process's other timers).
pub fn forget(pid: u64) {
    let words = PARKED.lock().by_pid.remove(&pid);
    drop(words);
}

fn encode(result: ParkResult) -> Vec<u8> {
    capos_schema::wire::encode::<park_space::wait_results::Owned>(|mut r| {
        r.set_result(result);
        Ok(())
    })
    .expect("a one-field results message encodes")
}

/// A parked call's timeout passed: take it off its queue and complete it.
fn timed_out(key: (u64, u64), id: u64) {
    let parked = PARKED.lock().take(key, |list| {
        list.iter().position(|p| p.id == id).and_then(|i| list.remove(i)).into_iter().collect()
    });
    for p in parked {
        crate::completion::complete(p.call, Ok(encode(ParkResult::TimedOut)));
    }
}

struct Server<'a> {
    ctx: &'a CallContext<'a>,
    refused: Cell<Option<TransportError>>,
    decision: Cell<Option<(u64, u32, u64)>>,
}

impl ParkSpaceServer for Server<'_> {
    fn wait(
        &mut self,
        params: park_space::wait_params::Reader<'_>,
        _results: park_space::wait_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.decision.set(Some((
            params.get_addr(),
            params.get_expected(),
            params.get_timeout_ns(),
        )));
        Ok(())
    }

    fn wake(
        &mut self,
        params: park_space::wake_params::Reader<'_>,
        mut results: park_space::wake_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let addr = params.get_addr();
        if !addr.is_multiple_of(4) {
            self.refused.set(Some(TransportError::Misaligned));
            return Ok(());
        }
        let key = (self.ctx.caller.pid, addr);
        let count = params.get_count() as usize;
        let mut dead = Vec::new();
        let woken = PARKED.lock().take(key, |list| {
            let mut woken = Vec::new();
            while woken.len() < count {
                let Some(p) = list.pop_front() else { break };
                if p.call.is_live() {
                    woken.push(p);
                } else {
                    dead.push(p);
                }
            }
            woken
        });
        drop(dead);
        results.set_woken(woken.len() as u32);
        for p in woken {
            if let Some(t) = p.timer {
                crate::time::cancel(t);
            }
            crate::completion::complete(p.call, Ok(encode(ParkResult::Woken)));
        }
        Ok(())
    }
}

impl KernelParkSpace {
    /// Checks the word and parks the caller (or answers at once).
    fn wait(ctx: &CallContext<'_>, addr: u64, expected: u32, timeout_ns: u64) -> CallOutcome {
        if !addr.is_multiple_of(4) {
            return CallOutcome::Failed(TransportError::Misaligned);
        }
        let Ok(range) = UserRange::new(addr, 4) else {
            return CallOutcome::Failed(TransportError::BadPointer);
        };
        let key = (ctx.caller.pid, addr);
        let mut q = PARKED.lock();
        let mut word = [0u8; 4];
        {
            let mut space = ctx.caller.space.lock();
            let Some(space) = space.as_mut() else {
                return CallOutcome::Failed(TransportError::Disconnected);
            };
            if range.read(space, &mut word).is_err() {
                return CallOutcome::Failed(TransportError::BadPointer);
            }
        }
        if u32::from_le_bytes(word) != expected {
            return CallOutcome::done(encode(ParkResult::Mismatch));
        }
        if timeout_ns == 0 {
            return CallOutcome::done(encode(ParkResult::TimedOut));
        }
        let id = q.next_id;
        q.next_id += 1;
        let list = q.by_pid.entry(key.0).or_default().entry(addr).or_default();
        // Drop this word's waiters whose thread ended (their ring is closed).
        list.retain(|p| p.call.is_live());
        if list.len() >= MAX_PARKED_PER_WORD {
            return CallOutcome::Failed(TransportError::Overflow);
        }
        let timer = crate::time::deadline_after_ns(timeout_ns)
            .map(|d| crate::time::call_at(d, key.0, Box::new(move || timed_out(key, id))));
        list.push_back(Parked { id, call: ctx.pending(), timer });
        CallOutcome::Pending
    }
}

impl CapObject for KernelParkSpace {
    fn interface_id(&self) -> u64 {
        capos_schema::park_space::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::park_space::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::park_space::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server = Server { ctx, refused: Cell::new(None), decision: Cell::new(None) };
        let () = match dispatch_park_space_in(&mut server, method, frame) {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        if let Some(e) = server.refused.get() {
            return CallOutcome::Failed(e);
        }
        match server.decision.get() {
            Some((addr, expected, timeout_ns)) => Self::wait(ctx, addr, expected, timeout_ns),
            None => CallOutcome::built(),
        }
    }
}
