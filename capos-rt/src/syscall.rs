//! The two system calls.

use capos_abi::{TransportError, SYS_CAP_ENTER, SYS_EXIT, SYS_THREAD_EXIT};

/// Ends the calling thread with `value` (what `join` returns); the process
/// too if this is its last thread.
pub fn thread_exit(value: i64) -> ! {
    // SAFETY: SYS_THREAD_EXIT never returns; RCX and R11 are clobbered by
    // SYSCALL.
    unsafe {
        core::arch::asm!(
            "syscall",
            in("rax") SYS_THREAD_EXIT,
            in("rdi") value,
            options(noreturn, nostack)
        )
    }
}

/// Ends the process (all its threads) with `code`.
pub fn exit(code: i64) -> ! {
    // SAFETY: SYS_EXIT never returns; RCX and R11 are clobbered by SYSCALL.
    unsafe {
        core::arch::asm!(
            "syscall",
            in("rax") SYS_EXIT,
            in("rdi") code,
            options(noreturn, nostack)
        )
    }
}

/// Processes submitted SQEs and waits until `min_complete` completions are
/// ready or `timeout_ns` passes (`u64::MAX`: no timeout). Returns the number
/// of ready completions.
pub fn cap_enter(min_complete: u32, timeout_ns: u64) -> Result<u32, TransportError> {
    let rax: u64;
    // SAFETY: SYS_CAP_ENTER reads and writes only the ring the kernel mapped
    // for this process; SYSCALL clobbers RCX and R11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_CAP_ENTER => rax,
            in("rdi") min_complete as u64,
            in("rsi") timeout_ns,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
    match TransportError::from_syscall_return(rax) {
        Some(e) => Err(e),
        None => Ok(rax as u32),
    }
}

/// The CPU's time-stamp counter (readable in user mode; capOS leaves
/// CR4.TSD clear). For benchmarks.
pub fn cycles() -> u64 {
    // SAFETY: RDTSC only reads the counter; it is allowed at CPL 3.
    unsafe { core::arch::x86_64::_rdtsc() }
}
