//! Processes: address space, cap table, threads, exit state.
//!
//! A process has one or more threads (see [`thread`]); each has its own
//! ring. `exit`, a kill request or the end of the last thread ends the
//! process: every thread ends itself on its way back to user mode (a kill
//! wakes the blocked ones and interrupts the running ones), and once the
//! last has left its CPU, [`teardown`] drops every cap, frees the address
//! space (rings, stacks and startup page included) and completes the
//! waiters on its `ProcessHandle`s. A thread's own `thread_exit` or fault
//! ends only that thread, unless it is the last.

pub mod elf_load;
pub mod spawn;
pub mod thread;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cap::{CapEntry, CapTable};
use crate::completion::PendingCall;
use crate::mem::account::{Account, Charge};
use crate::mem::address_space::AddressSpace;
use crate::sched::{self, Thread};
use crate::sync::IrqLock;

/// Exit code of a process killed through its `ProcessHandle`.
pub const EXIT_KILLED: i64 = -9;
/// Exit codes of processes ended by a CPU exception: `EXIT_FAULT_BASE - vector`.
pub const EXIT_FAULT_BASE: i64 = -256;

/// Why a process ended.
#[derive(Debug, Clone)]
pub enum ExitCause {
    /// It called `exit(code)`.
    Exited(i64),
    /// It was killed.
    Killed,
    /// A CPU exception in user mode.
    Fault {
        /// Exception name.
        name: &'static str,
        /// Vector.
        vector: u64,
        /// Faulting instruction.
        rip: u64,
        /// Faulting address (page faults) or 0.
        addr: u64,
    },
}

impl ExitCause {
    /// The exit code reported to `ProcessHandle.wait`.
    pub fn code(&self) -> i64 {
        match self {
            Self::Exited(c) => *c,
            Self::Killed => EXIT_KILLED,
            Self::Fault { vector, .. } => EXIT_FAULT_BASE - *vector as i64,
        }
    }
}

/// Exit status and the calls waiting for it.
#[derive(Default)]
pub struct ExitState {
    /// Set once the process ended.
    pub cause: Option<ExitCause>,
    /// Why the process is ending (`exit` or a kill), while its threads end.
    pub requested: Option<ExitCause>,
    /// `ProcessHandle.wait` calls to complete at exit.
    pub waiters: Vec<PendingCall>,
}

/// A user process.
pub struct Process {
    /// Process id.
    pub pid: u64,
    /// Name (the binary it runs).
    pub name: String,
    /// Parent's pid (0 for init).
    pub parent: u64,
    /// Address space; `None` once torn down.
    pub space: IrqLock<Option<AddressSpace>>,
    /// Capability table.
    pub caps: IrqLock<CapTable>,
    /// Exit status.
    pub exit: IrqLock<ExitState>,
    /// Kill requested; honoured by each thread on the way back to user mode.
    pub kill_requested: AtomicBool,
    /// Set once the process is torn down.
    pub ended: AtomicBool,
    /// Live threads (owned here until each is reaped; a thread refers back
    /// to the process, so reaping breaks the cycle).
    pub threads: IrqLock<thread::ThreadSet>,
    /// TSC ticks its threads ran on a CPU (charged with each thread's).
    pub cpu_ticks: AtomicU64,
    /// What it holds, against its resource profile.
    pub account: Arc<Account>,
    /// This record's own kernel bytes.
    _record: Charge,
}

static PROCESSES: IrqLock<BTreeMap<u64, Weak<Process>>> = IrqLock::new(BTreeMap::new());
static NEXT_PID: AtomicU64 = AtomicU64::new(1);

/// A fresh pid.
pub fn next_pid() -> u64 {
    NEXT_PID.fetch_add(1, Ordering::Relaxed)
}

/// Registers a live process.
pub fn register(p: &Arc<Process>) {
    PROCESSES.lock().insert(p.pid, Arc::downgrade(p));
}

/// Live processes, by pid.
pub fn all() -> Vec<Arc<Process>> {
    PROCESSES.lock().values().filter_map(Weak::upgrade).collect()
}

/// The live process `pid`.
pub fn find(pid: u64) -> Option<Arc<Process>> {
    PROCESSES.lock().get(&pid).and_then(Weak::upgrade)
}

impl Process {
    /// Switches this CPU to the process's address space.
    pub fn activate_address_space(&self) {
        match self.space.lock().as_ref() {
            Some(space) => space.activate(),
            None => crate::mem::paging::activate_kernel_space(),
        }
    }

    /// Whether the process has ended (it can take no more completions).
    pub fn exit_started(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// CPU time its threads used so far, in ns, as charged by the scheduler
    /// (a slice still running is not in it yet).
    pub fn cpu_ns(&self) -> u64 {
        crate::arch::x86_64::tsc::ticks_to_ns(self.cpu_ticks.load(Ordering::Relaxed))
    }

    /// `ps` state: `running` if a thread is on a CPU, else `ready` if one
    /// waits for a CPU, else `blocked`; `exiting` once it is ending.
    pub fn state_name(&self) -> &'static str {
        if self.exit_started() || self.kill_requested.load(Ordering::Acquire) {
            return "exiting";
        }
        let states: Vec<&'static str> =
            self.threads.lock().live.iter().map(|t| sched::state_name(t)).collect();
        ["running", "ready", "blocked"]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or("exiting")
    }

    /// Asks the process to end with `cause` (the first request wins): every
    /// thread ends on its next way back to user mode; blocked threads are
    /// woken and running ones interrupted for it.
    pub fn request_exit(&self, cause: ExitCause) {
        {
            let mut exit = self.exit.lock();
            if exit.requested.is_none() {
                exit.requested = Some(cause);
            }
        }
        self.kill_requested.store(true, Ordering::Release);
        let threads: Vec<Arc<Thread>> = self.threads.lock().live.clone();
        for t in &threads {
            sched::wake(t);
            sched::kick(t);
        }
    }

    /// Asks the process to end as killed.
    pub fn request_kill(&self) {
        self.request_exit(ExitCause::Killed);
    }
}

/// Releases everything `process` holds and records its exit. Runs once the
/// last thread has left its CPU (from the scheduler's reaper).
fn teardown(process: &Arc<Process>, cause: ExitCause) {
    match &cause {
        ExitCause::Fault { .. } => {}
        ExitCause::Killed => {
            crate::kinfo!("proc", "{} (pid {}) killed", process.name, process.pid);
        }
        ExitCause::Exited(code) => {
            crate::kinfo!(
                "proc",
                "{} (pid {}) exited with code {}",
                process.name,
                process.pid,
                code
            );
        }
    }
    process.ended.store(true, Ordering::Release);
    // Its timers (sleeps, cap_enter wake-ups, wait timeouts) and parked
    // calls go first: they refer to its threads.
    crate::time::cancel_owned_by(process.pid);
    (end_hooks().forget_parked)(process.pid);
    // Caps next: dropping them may release other objects.
    let caps: Vec<CapEntry> = process.caps.lock().drain_all().collect();
    drop(caps);
    // Calls it queued on endpoints (and the caps they carry), its waiting
    // RECVs and its caller references go too.
    (end_hooks().forget_calls)(process);
    // Frees every user frame, the rings and the page tables. No CPU runs in
    // this address space any more: every thread has been switched away from.
    let space = process.space.lock().take();
    let pages = space.as_ref().map_or(0, AddressSpace::pages);
    drop(space);
    crate::kdebug!("proc", "{} (pid {}): {} user pages freed", process.name, process.pid, pages);
    let waiters = {
        let mut exit = process.exit.lock();
        exit.cause = Some(cause.clone());
        core::mem::take(&mut exit.waiters)
    };
    for w in waiters {
        (end_hooks().complete_wait)(w, cause.code());
    }
    PROCESSES.lock().remove(&process.pid);
    if process.parent == 0 {
        (end_hooks().init_exited)(cause.code());
    }
}

impl sched::Owner for Process {
    fn charge_cpu(&self, ticks: u64) {
        self.cpu_ticks.fetch_add(ticks, Ordering::Relaxed);
    }

    fn activate_address_space(&self) {
        Process::activate_address_space(self);
    }
}

/// The process `thread` belongs to (`None` for an idle thread).
pub fn of(thread: &Thread) -> Option<Arc<Process>> {
    let owner: Arc<dyn core::any::Any + Send + Sync> = thread.process.clone()?;
    owner.downcast::<Process>().ok()
}

/// The process of the thread running on this CPU.
pub fn current_process() -> Option<Arc<Process>> {
    sched::current().and_then(|t| of(&t))
}

/// What the layers above do when a process or thread ends (installed once
/// at boot): `proc` never names the cap objects or `main`.
pub struct EndHooks {
    /// Drops the parked calls of process `pid`.
    pub forget_parked: fn(pid: u64),
    /// Drops the calls the process queued on endpoints, its waiting RECVs
    /// and its caller references.
    pub forget_calls: fn(&Arc<Process>),
    /// Completes a `ProcessHandle.wait` with the exit code.
    pub complete_wait: fn(PendingCall, i64),
    /// Completes a `ThreadHandle.join` with how the thread ended.
    pub complete_join: fn(PendingCall, &ExitCause),
    /// init (the process without a parent) ended with this code.
    pub init_exited: fn(i64),
}

static END_HOOKS: spin::Once<EndHooks> = spin::Once::new();

/// Installs the end-of-life hooks (once, at boot).
pub fn set_end_hooks(hooks: EndHooks) {
    END_HOOKS.call_once(|| hooks);
}

/// The end-of-life hooks. Boot installs them before any process exists.
pub fn end_hooks() -> &'static EndHooks {
    END_HOOKS.get().expect("end hooks installed at boot")
}

/// On the way back to user mode: honour a pending kill by ending the
/// calling thread.
pub fn check_kill(process: Arc<Process>) {
    if process.kill_requested.load(Ordering::Acquire) {
        thread::exit_current(process, ExitCause::Killed);
    }
}

/// `exit(code)`: ends the whole process; the calling thread ends at once.
pub fn exit_current_process(process: Arc<Process>, code: i64) -> ! {
    process.request_exit(ExitCause::Exited(code));
    thread::exit_current(process, ExitCause::Exited(code))
}
