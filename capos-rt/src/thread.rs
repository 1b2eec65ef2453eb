//! Threads of this process: [`spawn`] a closure, [`JoinHandle::join`] it
//! for its value.
//!
//! A spawned thread shares the process's memory and caps. The kernel gives
//! it a ring of its own (so its calls and their completions never mix with
//! another thread's); the runtime gives it a stack of [`STACK_BYTES`] from
//! the heap and a per-thread context reached through its FS base. Spawning
//! needs the `threads` cap (a `ThreadSpawner`). A panic in any thread ends
//! the whole process (exit code 101), as in the first thread.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use capos_abi::TransportError;
use capos_schema::{CallError, ThreadEnd, ThreadHandleClient, ThreadSpawnerClient};

use crate::ring::Ring;
use crate::runtime::{ctx, ready_tls, runtime, ThreadCtx, THREAD_RESULTS_LEN};
use crate::sync::Mutex;
use crate::syscall;

/// Stack of a spawned thread.
pub const STACK_BYTES: usize = 32 * 1024;

/// Why a thread could not be started or joined.
#[derive(Debug)]
pub enum ThreadError {
    /// The process holds no `threads` cap.
    NoSpawner,
    /// The kernel refused (e.g. `LimitReached`) or a call failed.
    Call(CallError),
    /// The thread ended by a CPU exception.
    Faulted,
    /// The thread was killed with its process.
    Killed,
}

impl fmt::Display for ThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSpawner => f.write_str("no `threads` cap"),
            Self::Call(e) => write!(f, "{e}"),
            Self::Faulted => f.write_str("thread faulted"),
            Self::Killed => f.write_str("thread killed"),
        }
    }
}

impl ThreadError {
    /// The transport error behind a refusal, if that is what it was.
    pub fn transport(&self) -> Option<TransportError> {
        match self {
            Self::Call(CallError::Transport(code)) => TransportError::from_u32(*code),
            _ => None,
        }
    }
}

/// What the new thread starts with (boxed; its address is the thread's
/// argument).
struct Start {
    main: Box<dyn FnOnce() + Send>,
    spawner: u64,
}

/// A spawned thread: join it for its value.
pub struct JoinHandle<T> {
    handle: u64,
    result: Arc<Mutex<Option<T>>>,
    /// The thread's stack, freed once the thread has ended.
    stack: Option<Vec<u128>>,
}

impl<T> JoinHandle<T> {
    /// CapId of the thread's `ThreadHandle`.
    pub fn handle_cap(&self) -> u64 {
        self.handle
    }

    /// Waits for the thread to end; its closure's value.
    pub fn join(mut self) -> Result<T, ThreadError> {
        let reply = ThreadHandleClient::new(runtime(), self.handle).join();
        let _ = runtime().release(self.handle);
        let reply = reply.map_err(ThreadError::Call)?;
        // The thread has ended: nothing runs on its stack any more.
        self.stack = None;
        match reply.end {
            ThreadEnd::Faulted => Err(ThreadError::Faulted),
            ThreadEnd::Killed => Err(ThreadError::Killed),
            _ => self.result.lock().take().ok_or(ThreadError::Killed),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // Not joined: the thread may still run on its stack, so it stays.
        if let Some(stack) = self.stack.take() {
            core::mem::forget(stack);
        }
    }
}

/// Starts `f` on a new thread.
pub fn spawn<F, T>(f: F) -> Result<JoinHandle<T>, ThreadError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime();
    let spawner = rt.cap("threads").ok_or(ThreadError::NoSpawner)?.cap;
    ready_tls(spawner).map_err(ThreadError::Call)?;
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let start = Box::new(Start {
        main: Box::new(move || {
            let v = f();
            *slot.lock() = Some(v);
        }),
        spawner,
    });
    let mut stack = vec![0u128; STACK_BYTES / 16];
    let top = stack.as_mut_ptr_range().end as u64;
    let arg = Box::into_raw(start);
    let reply = ThreadSpawnerClient::new(rt, spawner).spawn(
        thread_entry as *const () as u64,
        arg as u64,
        top,
        0,
    );
    match reply {
        Ok(handle) => Ok(JoinHandle { handle, result, stack: Some(stack) }),
        Err(CallError::MissingResultCap { index, received }) => {
            // Started, but the handle did not arrive: the thread keeps its
            // stack and argument.
            core::mem::forget(stack);
            Err(ThreadError::Call(CallError::MissingResultCap { index, received }))
        }
        Err(e) => {
            // SAFETY: the kernel refused the spawn, so no thread received
            // `arg`; this is the only owner of the box again.
            drop(unsafe { Box::from_raw(arg) });
            Err(ThreadError::Call(e))
        }
    }
}

core::arch::global_asm!(
    ".section .text.capos_thread_entry, \"ax\"",
    ".global capos_thread_entry",
    "capos_thread_entry:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    start = sym thread_start,
);

extern "C" {
    #[link_name = "capos_thread_entry"]
    fn thread_entry();
}

/// First Rust code of a spawned thread: `arg` is its [`Start`], `ring` the
/// address of the ring the kernel made for it.
extern "C" fn thread_start(arg: u64, ring: u64) -> ! {
    // SAFETY: `arg` is the pointer `spawn` leaked from a `Box<Start>` for
    // exactly this thread; nothing else uses it.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let me = ThreadCtx::new(Ring::at(ring), THREAD_RESULTS_LEN);
    // Point FS at the context through the thread's own ring (no other
    // context is reachable before that).
    if ThreadSpawnerClient::new(&*me, start.spawner).set_tls(me.tls()).is_err() {
        syscall::thread_exit(-1);
    }
    let me = Box::leak(me);
    debug_assert!(core::ptr::eq(ctx(), me));
    (start.main)();
    // SAFETY: `me` was leaked above and is this thread's context; nothing
    // uses it after this point (the exit below needs no ring).
    drop(unsafe { Box::from_raw(me as *mut ThreadCtx) });
    syscall::thread_exit(0)
}
