//! System calls: only `exit`, `thread_exit` and `cap_enter` (everything
//! else is a capability call through the ring).

use capos_abi::{TransportError, SYS_CAP_ENTER, SYS_EXIT, SYS_THREAD_EXIT};

use crate::arch::x86_64::trap::TrapFrame;
use crate::proc::{self, ExitCause};
use crate::{ring, sched};

/// Entry from the SYSCALL stub: number in RAX, arguments in RDI and RSI,
/// result in RAX.
#[no_mangle]
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) {
    let process = sched::current_process().expect("SYSCALL comes from a process thread");
    match frame.rax {
        SYS_EXIT => proc::exit_current_process(process, frame.rdi as i64),
        SYS_THREAD_EXIT => proc::thread::exit_current(process, ExitCause::Exited(frame.rdi as i64)),
        SYS_CAP_ENTER => frame.rax = ring::cap_enter(&process, frame.rdi, frame.rsi),
        _ => frame.rax = TransportError::BadOpcode.to_syscall_return(),
    }
    proc::check_kill(process);
    crate::time::rearm();
}
