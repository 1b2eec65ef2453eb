//! TLB shootdown by IPI.
//!
//! Threads of one process run on several CPUs at once, each with the
//! process's page tables loaded and their translations cached in its TLB.
//! When a mapping of such an address space is removed, the CPU that removed
//! it flushes its own TLB entry; [`shootdown`] then makes every other CPU
//! now running a thread of that process flush its TLB (a CR3 reload) and
//! waits until each has, before the caller frees the frames. CPUs running
//! other address spaces need nothing: loading CR3 flushed their user
//! entries (no PCIDs are used).
//!
//! A CPU waiting for acknowledgements keeps answering shootdowns aimed at
//! itself, so two CPUs shooting at each other cannot deadlock; the waiter
//! holds no lock, so a target spinning on one gets through.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::apic;
use super::percpu::{self, MAX_CPUS};
use super::trap::VEC_TLB;

/// Set for a CPU that must flush; it clears it once flushed.
static PENDING: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Shootdowns this kernel sent (for diagnostics).
pub static SHOOTDOWNS: AtomicU64 = AtomicU64::new(0);

fn flush_local() {
    let (frame, flags) = x86_64::registers::control::Cr3::read();
    // SAFETY: reloading the current CR3 value changes no mapping; it only
    // drops the non-global TLB entries.
    unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
}

/// Answers a shootdown aimed at this CPU, if one is pending.
pub fn answer() {
    let me = percpu::cpu_index() as usize;
    if PENDING[me].load(Ordering::Acquire) {
        flush_local();
        PENDING[me].store(false, Ordering::Release);
    }
}

/// Makes every CPU whose bit is set in `cpus` (other than this one) flush
/// its TLB, and waits until all have. Interrupts must be off and no lock
/// held. Allocates nothing.
pub fn shootdown(cpus: u64) {
    let me = percpu::cpu_index() as usize;
    let targets = cpus & !(1u64 << me);
    if targets == 0 {
        return;
    }
    SHOOTDOWNS.fetch_add(1, Ordering::Relaxed);
    let each = |f: &mut dyn FnMut(usize)| {
        (0..MAX_CPUS).filter(|&t| targets & (1 << t) != 0).for_each(f);
    };
    each(&mut |t| {
        PENDING[t].store(true, Ordering::Release);
        if let Some(c) = percpu::get(t) {
            apic::send_ipi(c.apic_id.load(Ordering::Relaxed), VEC_TLB as u32);
        }
    });
    loop {
        let mut waiting = false;
        each(&mut |t| waiting |= PENDING[t].load(Ordering::Acquire));
        if !waiting {
            break;
        }
        answer();
        core::hint::spin_loop();
    }
}
