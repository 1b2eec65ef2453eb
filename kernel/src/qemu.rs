//! QEMU's `isa-debug-exit` device (port 0xf4), used only when the kernel
//! command line says it runs under the test harness (`harness`).
//! QEMU exits with status `(code << 1) | 1`: 33 for success, 35 for failure.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::port::Port;

static HARNESS: AtomicBool = AtomicBool::new(false);

/// Exit codes the harness understands.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything the proof needed happened.
    Success = 0x10,
    /// Panic, fatal exception or failed check.
    Failure = 0x11,
}

/// Records whether the harness is driving this boot.
pub fn set_harness(on: bool) {
    HARNESS.store(on, Ordering::Release);
}

/// Whether the harness is driving this boot.
pub fn harness() -> bool {
    HARNESS.load(Ordering::Acquire)
}

/// Exits QEMU with `code` when under the harness; returns otherwise.
pub fn exit_if_harness(code: ExitCode) {
    if !harness() {
        return;
    }
    let mut port: Port<u32> = Port::new(0xf4);
    // SAFETY: the harness starts QEMU with isa-debug-exit at 0xf4; writing it
    // terminates the VM. Without the device the write is ignored.
    unsafe { port.write(code as u32) };
}
