//! Processes: address space, cap table, ring, exit state.
//!
//! A process is torn down by its own thread: `exit`, a fault, or a kill
//! request (noticed on the way back to user mode) all end in [`terminate`],
//! which drops every cap, frees the address space (ring, stack and startup
//! page included), completes the waiters on its `ProcessHandle`s, and ends
//! the thread.

pub mod elf_load;
pub mod spawn;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cap::{CapEntry, CapTable};
use crate::mem::address_space::AddressSpace;
use crate::ring::{PendingCall, RingState};
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
    /// Kernel side of the submission/completion ring.
    pub ring: IrqLock<RingState>,
    /// The thread blocked in `cap_enter`, if any.
    pub waiter: IrqLock<Option<Arc<Thread>>>,
    /// Exit status.
    pub exit: IrqLock<ExitState>,
    /// Kill requested; honoured on the way back to user mode.
    pub kill_requested: AtomicBool,
    /// The process's thread (owned here until the process ends; the thread
    /// refers back to the process, so `terminate` breaks the cycle).
    pub thread: IrqLock<Option<Arc<Thread>>>,
    /// TSC ticks its threads ran on a CPU (charged at each switch).
    pub cpu_ticks: AtomicU64,
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

/// Live processes (id, name).
pub fn list() -> Vec<(u64, String)> {
    PROCESSES.lock().values().filter_map(|w| w.upgrade()).map(|p| (p.pid, p.name.clone())).collect()
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

    /// Whether the process has begun to end (its ring is closed): it can take
    /// no more completions.
    pub fn exit_started(&self) -> bool {
        !self.ring.lock().is_open()
    }

    /// CPU time used so far, in ns, as charged at each switch (a slice
    /// still running is not in it yet).
    pub fn cpu_ns(&self) -> u64 {
        crate::arch::x86_64::tsc::ticks_to_ns(self.cpu_ticks.load(Ordering::Relaxed))
    }

    /// `ps` state: running, ready, blocked or exiting.
    pub fn state_name(&self) -> &'static str {
        if self.exit_started() {
            return "exiting";
        }
        match self.thread.lock().as_ref() {
            Some(t) => sched::state_name(t),
            None => "exiting",
        }
    }

    /// Asks the process to end; it does so on its next return to user mode.
    pub fn request_kill(&self) {
        self.kill_requested.store(true, Ordering::Release);
        let thread = self.thread.lock().clone();
        if let Some(t) = thread {
            sched::wake(&t);
        }
    }
}

/// Ends the current process with `cause` and never returns. Must run on the
/// process's own thread with interrupts off. Takes the caller's reference:
/// nothing on this stack is ever dropped once the thread is gone.
pub fn terminate_current(process: Arc<Process>, cause: ExitCause) -> ! {
    terminate(&process, cause);
    drop(process);
    sched::exit_current()
}

/// Releases everything `process` holds and records its exit.
fn terminate(process: &Arc<Process>, cause: ExitCause) {
    match &cause {
        ExitCause::Fault { name, vector, rip, addr } => {
            crate::console!(
                "proc: {} (pid {}) killed by {} (vector {}) at rip={:#x} addr={:#x}",
                process.name,
                process.pid,
                name,
                vector,
                rip,
                addr
            );
        }
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
    // Caps first: dropping them may release other objects.
    let caps: Vec<CapEntry> = process.caps.lock().drain_all().collect();
    drop(caps);
    *process.waiter.lock() = None;
    // The running thread stays alive through the CPU's `current` slot until
    // the scheduler reaps it.
    *process.thread.lock() = None;
    // Frees every user frame, the ring and the page tables (switching this
    // CPU to the kernel's tables first).
    // Close the ring first: a completion posted from another CPU must not
    // write into ring frames that are about to be freed.
    process.ring.lock().close();
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
        crate::cap::process_handle::complete_wait(w, cause.code());
    }
    PROCESSES.lock().remove(&process.pid);
    if process.parent == 0 {
        crate::init_exited(cause.code());
    }
}

/// On the way back to user mode: honour a pending kill.
pub fn check_kill(process: Arc<Process>) {
    if process.kill_requested.load(Ordering::Acquire) {
        terminate_current(process, ExitCause::Killed);
    }
}
