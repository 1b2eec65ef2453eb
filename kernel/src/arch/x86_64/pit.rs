//! The 8254 PIT, used only as the reference clock to calibrate the TSC and
//! the local APIC timer (channel 2, polled, no interrupt).

use x86_64::instructions::port::Port;

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Busy-waits `us` microseconds (at most 54 ms) on PIT channel 2 and calls
/// `start` right after the count starts and returns what `end` returns when
/// it ends.
pub fn measure<T>(us: u64, start: impl FnOnce(), end: impl FnOnce() -> T) -> T {
    let count = (PIT_HZ * us / 1_000_000).clamp(1, 0xffff) as u16;
    let mut ctrl61: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PC PIT channel 2 and its gate;
    // only the calibration code (single-threaded at boot) uses them.
    unsafe {
        let v = ctrl61.read();
        // Gate low, speaker off, while programming.
        ctrl61.write(v & !0x03);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count).
        cmd.write(0b1011_0000);
        ch2.write((count & 0xff) as u8);
        ch2.write((count >> 8) as u8);
        // Gate high starts the count.
        ctrl61.write((v & !0x02) | 0x01);
        start();
        while ctrl61.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
    end()
}
