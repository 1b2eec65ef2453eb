//! Kernel context switch and user FPU/SSE state.
//!
//! A thread not running has its kernel RSP saved; its kernel stack holds the
//! callee-saved registers and RFLAGS pushed by [`switch`], and above them
//! either the frames of the code that called the scheduler or, for a thread
//! that never ran, the address of `thread_start` followed by the
//! [`TrapFrame`](super::trap::TrapFrame) that enters user mode.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.context_switch, "ax"
    .code64
    .global context_switch
context_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushfq
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popfq
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    .global thread_start
thread_start:
    call thread_first_run
    jmp trap_return
"#,
    options(att_syntax)
);

extern "C" {
    fn context_switch(save_rsp: *mut u64, load_rsp: u64);
    /// First code a new thread runs (its initial return address).
    pub fn thread_start();
}

/// Words [`switch`] keeps below a thread's resume point: RFLAGS, r15, r14,
/// r13, r12, rbx, rbp, return address.
pub const SWITCH_FRAME_WORDS: usize = 8;

/// Saves the current kernel context into `*save_rsp` and resumes the one
/// saved at `load_rsp`.
///
/// # Safety
/// `load_rsp` must be a context saved by `switch` (or built like one for a new
/// thread) on a kernel stack that stays mapped, and `save_rsp` must stay
/// valid until the current context is resumed.
pub unsafe fn switch(save_rsp: *mut u64, load_rsp: u64) {
    // SAFETY: per the contract.
    unsafe { context_switch(save_rsp, load_rsp) }
}

/// FXSAVE area: x87, MMX and SSE state of one thread.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state a new thread starts with: all exceptions masked
    /// (FCW 0x37F, MXCSR 0x1F80), registers zero.
    pub fn initial() -> Self {
        let mut s = FpuState([0; 512]);
        s.0[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        s.0[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        s
    }

    /// Saves this CPU's FPU/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: FXSAVE64 writes 512 bytes to a 16-byte aligned buffer we own;
        // CR4.OSFXSR is set by `enable_fpu` on every CPU.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads the FPU/SSE registers from here.
    pub fn restore(&self) {
        // SAFETY: the buffer holds a state produced by FXSAVE64 or `initial`
        // (reserved MXCSR bits clear), so FXRSTOR64 cannot fault.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }
}

/// Lets user code use SSE on this CPU: CR0.MP set, CR0.EM and CR0.TS clear,
/// CR4.OSFXSR and CR4.OSXMMEXCPT set. The kernel itself is soft-float.
pub fn enable_fpu() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    // SAFETY: standard FPU/SSE enablement; the kernel never executes vector
    // instructions, so only user state lives in these registers.
    unsafe {
        Cr0::update(|f| {
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
        });
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        });
    }
}

/// Turns on SMEP and SMAP where the CPU has them; returns (smep, smap).
pub fn enable_smep_smap() -> (bool, bool) {
    use core::arch::x86_64::__cpuid_count;
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 7 {
        return (false, false);
    }
    let ebx = __cpuid_count(7, 0).ebx;
    let smep = ebx & (1 << 7) != 0;
    let smap = ebx & (1 << 20) != 0;
    // SAFETY: the kernel never touches user memory through user addresses
    // (only through the direct map after walking the page tables), and never
    // executes user pages, so both protections hold everywhere.
    unsafe {
        Cr4::update(|f| {
            if smep {
                f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if smap {
                f.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
    }
    (smep, smap)
}
