//! x86_64 support: descriptor tables, traps, APICs, timers, SMP start-up.

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
