//! Time-stamp counter: boot-relative time for logs and short delays.

use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick in 32.32 fixed point (no division per reading).
static NS_PER_TICK_FP32: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);

/// Reads the TSC.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records the boot reference point. Called first thing on the boot CPU.
pub fn mark_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// The TSC frequency in Hz, 0 until it is known.
pub fn hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Sets the TSC frequency (from CPUID or calibration).
pub fn set_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_FP32
        .store(((1_000_000_000u128 << 32) / hz.max(1) as u128) as u64, Ordering::Relaxed);
}

/// Nanoseconds since [`mark_boot`] (0 while the frequency is unknown).
pub fn nanos_since_boot() -> u64 {
    let delta = rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    ((delta as u128 * NS_PER_TICK_FP32.load(Ordering::Relaxed) as u128) >> 32) as u64
}

/// `ticks` TSC ticks in nanoseconds (0 while the frequency is unknown).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * NS_PER_TICK_FP32.load(Ordering::Relaxed) as u128) >> 32) as u64
}

/// Microseconds since [`mark_boot`], 0 while the frequency is unknown.
pub fn micros_since_boot() -> u64 {
    let hz = hz();
    if hz == 0 {
        return 0;
    }
    let delta = rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    ((delta as u128 * 1_000_000) / hz as u128) as u64
}

/// Busy-waits `us` microseconds. Needs a known frequency.
pub fn delay_us(us: u64) {
    let hz = hz();
    let ticks = (us as u128 * hz as u128 / 1_000_000) as u64;
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// The TSC frequency CPUID reports (leaf 0x15, else 0x16), if any.
pub fn cpuid_hz() -> Option<u64> {
    let max = __cpuid(0).eax;
    if max >= 0x15 {
        let l = __cpuid(0x15);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(l.ecx as u64 * l.ebx as u64 / l.eax as u64);
        }
    }
    if max >= 0x16 {
        let l = __cpuid(0x16);
        if l.eax & 0xffff != 0 {
            return Some((l.eax & 0xffff) as u64 * 1_000_000);
        }
    }
    None
}

/// Whether the TSC runs at a constant rate in every power state.
pub fn invariant() -> bool {
    let max = __cpuid(0x8000_0000).eax;
    if max < 0x8000_0007 {
        return false;
    }
    __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// The TSC value at which [`nanos_since_boot`] has reached `ns` (rounded
/// up, with a margin of a few ns for the fixed-point conversion).
pub fn tsc_at_nanos(ns: u64) -> u64 {
    let hz = hz().max(1) as u128;
    let ticks = (ns as u128 * hz).div_ceil(1_000_000_000) + hz / 50_000_000 + 1;
    BOOT_TSC.load(Ordering::Relaxed).saturating_add(ticks.min(u64::MAX as u128) as u64)
}

/// `ns` nanoseconds in TSC ticks (saturating).
pub fn ns_to_ticks(ns: u64) -> u64 {
    (ns as u128 * hz() as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}
