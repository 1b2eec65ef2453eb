//! System calls: only `exit`, `thread_exit` and `cap_enter` (everything
//! else is a capability call through the ring).

use capos_abi::{TransportError, SYS_CAP_ENTER, SYS_EXIT, SYS_THREAD_EXIT, USER_TOP};

use crate::arch::x86_64::trap::TrapFrame;
use crate::proc::{self, ExitCause};
use crate::{ring, sched};

/// Entry from the SYSCALL stub: number in RAX, arguments in RDI and RSI,
/// result in RAX.
#[no_mangle]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    // The thread is borrowed: no run-queue lock and no reference count on
    // the way in (it is alive while it runs). The process is owned, and
    // moved into the paths that end the thread.
    let me = sched::current_borrowed().expect("SYSCALL comes from a thread");
    let process = proc::of(&me).expect("SYSCALL comes from a process thread");
    match frame.rax {
        SYS_EXIT => proc::exit_current_process(process, frame.rdi as i64),
        SYS_THREAD_EXIT => proc::thread::exit_current(process, ExitCause::Exited(frame.rdi as i64)),
        SYS_CAP_ENTER => frame.rax = ring::cap_enter(&process, &me, frame.rdi, frame.rsi),
        _ => frame.rax = TransportError::BadOpcode.to_syscall_return(),
    }
    proc::check_kill(process);
    // SYSRETQ loads RIP from the frame's RIP (via RCX); it must be a user
    // (canonical) address. Only a SYSCALL in the last two bytes below
    // USER_TOP leads past it, and no user mapping is executable there; the
    // check keeps that true whatever maps there later.
    if frame.rip >= USER_TOP {
        crate::arch::x86_64::trap::non_canonical_return(frame);
    }
    crate::time::rearm();
}
