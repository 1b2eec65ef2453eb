//! The two capOS system calls.
//!
//! Everything a process does beyond ending itself is a capability call on
//! its ring; the only system calls are [`SYS_EXIT`], [`SYS_CAP_ENTER`] and
//! [`SYS_THREAD_EXIT`].
//!
//! Register convention (the `SYSCALL` instruction):
//!
//! | register | on entry | on return |
//! |---|---|---|
//! | `rax` | system call number | result (see each call) |
//! | `rdi` | argument 1 | preserved |
//! | `rsi` | argument 2 | preserved |
//! | `rdx` | argument 3 | preserved |
//! | `rcx` | - | clobbered (the CPU stores the return `rip` there) |
//! | `r11` | - | clobbered (the CPU stores `rflags` there) |
//!
//! Every other general-purpose register, and the SSE/AVX state, is
//! preserved. An unknown system call number returns
//! `BadOpcode.to_syscall_return()` in `rax`.

/// `exit(code)`: ends the calling process, all its threads included.
/// `rdi` = exit code. Never returns.
pub const SYS_EXIT: u64 = 0;

/// `cap_enter(min_complete, timeout_ns)`: processes the submitted SQEs, then
/// waits until at least `min_complete` CQEs are ready or `timeout_ns`
/// nanoseconds have passed.
///
/// `rdi` = `min_complete` (a value above the CQ size counts as the CQ
/// size), `rsi` = `timeout_ns` ([`CAP_ENTER_FOREVER`] waits without a
/// deadline, 0 never waits). Returns in `rax` the number of CQEs ready
/// (below `min_complete` only if the timeout passed), or a negative
/// [`TransportError`](crate::TransportError) code (see
/// [`TransportError::to_syscall_return`](crate::TransportError::to_syscall_return)):
/// `Malformed` when the ring header is corrupt (the ring is then left
/// untouched), `Timeout` when the timeout passed with no CQE ready.
pub const SYS_CAP_ENTER: u64 = 1;

/// `timeout_ns` value for `cap_enter` meaning "no deadline".
pub const CAP_ENTER_FOREVER: u64 = u64::MAX;

/// `thread_exit(value)`: ends the calling thread only; `rdi` = the value
/// `ThreadHandle.join` returns. When the caller is the process's last
/// thread the process ends too, with `value` as its exit code. Never
/// returns. (Number 2 stays unassigned.)
pub const SYS_THREAD_EXIT: u64 = 3;
