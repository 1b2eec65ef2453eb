//! Kernel panic and the fatal-stop path shared with exception reports:
//! stop the other CPUs (NMI), print the report on both serial ports, then
//! halt, or exit QEMU with the failure code when running under the harness.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::interrupts;

use crate::arch::x86_64::{apic, halt_forever, percpu};
use crate::dev::serial::EmergencyWriter;

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether a fatal stop is in progress (NMI handlers then halt).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Starts a fatal stop: interrupts off, other CPUs halted by NMI. A CPU that
/// arrives second (or a fault inside the report) just halts.
pub fn begin_stop() {
    interrupts::disable();
    if STOPPING.swap(true, Ordering::AcqRel) {
        halt_forever();
    }
    apic::nmi_all_others();
}

/// Ends a fatal stop.
pub fn finish_stop() -> ! {
    crate::qemu::exit_if_harness(crate::qemu::ExitCode::Failure);
    halt_forever()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    begin_stop();
    let cpu = percpu::cpu_index();
    for debug_port in [false, true] {
        let mut w = EmergencyWriter::new(debug_port);
        let _ = write!(w, "\nKERNEL PANIC on cpu {cpu}");
        if let Some(loc) = info.location() {
            let _ = write!(w, " at {}:{}", loc.file(), loc.line());
        }
        let _ = writeln!(w, ": {}", info.message());
    }
    finish_stop()
}
