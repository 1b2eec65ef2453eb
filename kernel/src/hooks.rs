//! What the lowest layer (interrupt entry, CPU start-up) calls in the
//! layers above it. `arch` never names `sched`, `time`, `proc` or `cap`:
//! `main` fills in [`Hooks`] once at boot, before interrupts are enabled or
//! another CPU starts, and the trap and start-up code call through it.
//! See `docs/src/kernel.md`.

use spin::Once;

/// Where a user-mode CPU exception happened.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    /// The exception's name (`"page fault"`, ...).
    pub name: &'static str,
    /// Its vector.
    pub vector: u64,
    /// The faulting instruction.
    pub rip: u64,
    /// The faulting address (page faults; 0 otherwise).
    pub addr: u64,
}

/// Handlers of the layers above `arch`.
pub struct Hooks {
    /// This CPU's timer interrupt (after its EOI); `from_user`: it
    /// interrupted user mode.
    pub timer: fn(from_user: bool),
    /// A wake-up IPI: the run queue may have changed.
    pub wakeup: fn(from_user: bool),
    /// COM1 received input (after the device was drained).
    pub serial_input: fn(),
    /// A device vector fired (after its count went up and its EOI): the
    /// slot of `arch::x86_64::trap::alloc_device_vector`.
    pub device_interrupt: fn(slot: usize),
    /// Last step of every interrupt (and of a new thread's first run):
    /// `to_user` when it returns to user mode.
    pub leave: fn(to_user: bool),
    /// A CPU exception in user mode: ends the current thread's process.
    pub user_fault: fn(Fault) -> !,
    /// A user-mode page fault on a page that is not present, at this
    /// address: whether it was a demand-zero page, now mapped (the faulting
    /// instruction then runs again).
    pub demand_fault: fn(addr: u64) -> bool,
    /// An application processor's scheduler set-up (its idle thread).
    pub cpu_init: fn(),
    /// What a CPU runs once it is up.
    pub idle: fn() -> !,
}

static HOOKS: Once<Hooks> = Once::new();

/// Installs the handlers (once, at boot).
pub fn install(hooks: Hooks) {
    HOOKS.call_once(|| hooks);
}

/// The handlers. Boot installs them before the first interrupt can arrive.
pub fn get() -> &'static Hooks {
    HOOKS.get().expect("hooks installed at boot before interrupts")
}
