//! Local APIC (xAPIC, memory mapped): enable, EOI, IPIs, the one-shot
//! timer.
//!
//! The timer is never periodic: each CPU programs one interrupt at the next
//! moment it needs one ([`arm`]), in TSC-deadline mode where CPUID reports
//! it, else as a one-shot count converted from TSC ticks.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

use super::trap::{VEC_APIC_ERROR, VEC_SPURIOUS, VEC_TIMER};
use super::{pit, tsc};

const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xB0;
const REG_SVR: usize = 0xF0;
const REG_ESR: usize = 0x280;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_LVT_LINT1: usize = 0x360;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3E0;

const IA32_APIC_BASE: u32 = 0x1B;
const LVT_MASKED: u32 = 1 << 16;
const TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
const IA32_TSC_DEADLINE: u32 = 0x6E0;
/// Divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

static BASE: AtomicU64 = AtomicU64::new(0);
/// Timer counts per second at divide-by-16.
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// Whether the CPUs have TSC-deadline mode.
static TSC_DEADLINE: AtomicBool = AtomicBool::new(false);

fn read(reg: usize) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return 0;
    }
    // SAFETY: BASE is the uncached mapping of this CPU's local APIC page set
    // up by `init_bsp`; `reg` is an architectural register offset.
    unsafe { core::ptr::read_volatile((base as usize + reg) as *const u32) }
}

fn write(reg: usize, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((base as usize + reg) as *mut u32, value) }
}

/// Whether the local APIC is mapped (so IPIs and EOIs work).
pub fn ready() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

/// Maps the local APIC at `phys` and enables it on the boot CPU.
pub fn init_bsp(phys: u64) {
    let virt = crate::mem::map_mmio(phys, 4096);
    BASE.store(virt, Ordering::Release);
    init_local();
}

/// Enables this CPU's local APIC: spurious vector, error vector, LINT lines.
pub fn init_local() {
    let mut msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting bit 11
    // (global enable) keeps the base address unchanged.
    unsafe {
        let v = msr.read();
        msr.write(v | (1 << 11));
    }
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    // LINT1 delivers NMIs.
    write(REG_LVT_LINT1, 0x400);
    write(REG_LVT_ERROR, VEC_APIC_ERROR as u32);
    write(REG_ESR, 0);
    write(REG_SVR, 0x100 | VEC_SPURIOUS as u32);
    eoi();
}

/// This CPU's local APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Reads and clears the error status register.
pub fn read_error() -> u32 {
    write(REG_ESR, 0);
    read(REG_ESR)
}

fn wait_icr_idle() {
    for _ in 0..1_000_000 {
        if read(REG_ICR_LOW) & (1 << 12) == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Sends an IPI with ICR low word `low` to the APIC `dest`.
pub fn send_ipi(dest: u32, low: u32) {
    wait_icr_idle();
    write(REG_ICR_HIGH, dest << 24);
    write(REG_ICR_LOW, low);
    wait_icr_idle();
}

/// Sends an NMI to every other CPU.
pub fn nmi_all_others() {
    if !ready() {
        return;
    }
    // Shorthand "all excluding self", delivery mode NMI, assert.
    write(REG_ICR_LOW, (0b11 << 18) | (1 << 14) | (0b100 << 8));
}

/// Measures the timer against the PIT and records its rate; returns
/// (TSC Hz, APIC timer Hz at divide 16), both measured over the same window.
pub fn calibrate() -> (u64, u64) {
    const WINDOW_US: u64 = 25_000;
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED);
    let mut tsc0 = 0;
    let (tsc1, remaining) = pit::measure(
        WINDOW_US,
        || {
            write(REG_TIMER_INIT, u32::MAX);
            tsc0 = tsc::rdtsc();
        },
        || (tsc::rdtsc(), read(REG_TIMER_CURRENT)),
    );
    write(REG_TIMER_INIT, 0);
    let apic_counts = (u32::MAX - remaining) as u64;
    let apic_hz = apic_counts * 1_000_000 / WINDOW_US;
    let tsc_hz = (tsc1 - tsc0) * 1_000_000 / WINDOW_US;
    TIMER_HZ.store(apic_hz, Ordering::Release);
    (tsc_hz, apic_hz)
}

/// Picks the timer mode (TSC deadline if CPUID.01H:ECX[24] says the CPU
/// has it); returns whether it is TSC-deadline.
pub fn choose_timer_mode() -> bool {
    let has = core::arch::x86_64::__cpuid(1).ecx & (1 << 24) != 0;
    TSC_DEADLINE.store(has, Ordering::Release);
    has
}

/// Whether the timer runs in TSC-deadline mode.
pub fn tsc_deadline_mode() -> bool {
    TSC_DEADLINE.load(Ordering::Acquire)
}

/// Sets this CPU's timer up (masked until armed).
pub fn init_timer() {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    if tsc_deadline_mode() {
        write(REG_LVT_TIMER, VEC_TIMER as u32 | TIMER_TSC_DEADLINE);
    } else {
        write(REG_LVT_TIMER, VEC_TIMER as u32);
    }
    disarm();
}

/// Programs one timer interrupt at TSC value `deadline` (at once if it
/// passed).
pub fn arm(deadline: u64) {
    if tsc_deadline_mode() {
        let mut msr = Msr::new(IA32_TSC_DEADLINE);
        // SAFETY: the CPU has TSC-deadline mode (CPUID) and the LVT timer is
        // in that mode; writing the deadline only schedules an interrupt.
        unsafe { msr.write(deadline.max(1)) };
    } else {
        let now = tsc::rdtsc();
        let tsc_hz = tsc::hz().max(1) as u128;
        let delta = deadline.saturating_sub(now) as u128;
        // Rounded up: a one-shot that fires early is simply re-armed.
        let counts = (delta * TIMER_HZ.load(Ordering::Relaxed) as u128).div_ceil(tsc_hz);
        write(REG_TIMER_INIT, counts.clamp(1, u32::MAX as u128) as u32);
    }
}

/// Cancels this CPU's pending timer interrupt.
pub fn disarm() {
    if tsc_deadline_mode() {
        let mut msr = Msr::new(IA32_TSC_DEADLINE);
        // SAFETY: as in `arm`; 0 disarms the deadline timer.
        unsafe { msr.write(0) };
    } else {
        write(REG_TIMER_INIT, 0);
    }
}
