//! x86_64 support: descriptor tables, traps, APICs, timers, SMP start-up.

/// Pushes the 15 general registers in [`trap::TrapFrame`] order (RAX first,
/// so R15 ends lowest); AT&T syntax, for the entry stubs.
macro_rules! save_gprs {
    () => {
        "    pushq %rax\n    pushq %rbx\n    pushq %rcx\n    pushq %rdx\n    pushq %rsi\n    pushq %rdi\n    pushq %rbp\n    pushq %r8\n    pushq %r9\n    pushq %r10\n    pushq %r11\n    pushq %r12\n    pushq %r13\n    pushq %r14\n    pushq %r15\n"
    };
}

/// Pops what [`save_gprs`] pushed.
macro_rules! restore_gprs {
    () => {
        "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %r11\n    popq %r10\n    popq %r9\n    popq %r8\n    popq %rbp\n    popq %rdi\n    popq %rsi\n    popq %rdx\n    popq %rcx\n    popq %rbx\n    popq %rax\n"
    };
}

pub mod apic;
pub mod boot32;
pub mod context;
pub mod gdt;
pub mod ioapic;
pub mod percpu;
pub mod pic;
pub mod pit;
pub mod smp;
pub mod syscall;
pub mod tlb;
pub mod trap;
pub mod trap_entry;
pub mod tsc;

use x86_64::instructions::{hlt, interrupts};

/// Stops this CPU for good: interrupts off, `hlt` forever (NMIs return here).
pub fn halt_forever() -> ! {
    loop {
        interrupts::disable();
        hlt();
    }
}

/// Sleeps until the next interrupt, with interrupts enabled while halted.
pub fn wait_for_interrupt() {
    interrupts::enable_and_hlt();
}
