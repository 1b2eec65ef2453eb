//! Process start-up and the [`Runtime`] handed to `main`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use capos_abi::{Cqe, Sqe, StartupPage, TransportError, MAX_RESULTS_LEN, OP_RELEASE};
use capos_schema::{CallError, CallReply, Transport};

use crate::ring::Ring;
use crate::{heap, startup, syscall};

/// A cap from the CapSet: its id and the interface it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapRef {
    /// CapId in this process's table.
    pub cap: u64,
    /// Interface id.
    pub interface_id: u64,
}

/// What a program has: its startup page and caps, and through the calling
/// thread's [`ThreadCtx`], that thread's ring. One `Runtime` serves every
/// thread of the process.
pub struct Runtime {
    page: StartupPage<'static>,
}

/// Per-thread state: the thread's own ring, results buffer and completions
/// set aside. Each thread reaches its own through its FS base (`fs:[0]`
/// holds the context's address); until the first thread is spawned only the
/// first thread exists and uses the main context.
#[repr(C)]
pub(crate) struct ThreadCtx {
    /// This context's own address (read as `fs:[0]`).
    self_ptr: *const ThreadCtx,
    ring: Ring,
    results: RefCell<Vec<u8>>,
    next_user_data: Cell<u64>,
    /// Completions reaped while waiting for another one.
    stash: RefCell<VecDeque<Cqe>>,
}

/// Results buffer of threads other than the first: calls whose results are
/// larger fail with `Overflow` there.
pub const THREAD_RESULTS_LEN: usize = 16 * 1024;

impl ThreadCtx {
    /// A context over `ring`, boxed so its address is stable.
    pub(crate) fn new(ring: Ring, results_len: usize) -> Box<ThreadCtx> {
        let mut ctx = Box::new(ThreadCtx {
            self_ptr: core::ptr::null(),
            ring,
            results: RefCell::new(vec![0; results_len]),
            next_user_data: Cell::new(1),
            stash: RefCell::new(VecDeque::new()),
        });
        ctx.self_ptr = &*ctx as *const ThreadCtx;
        ctx
    }

    /// The value to make this thread's FS base.
    pub(crate) fn tls(&self) -> u64 {
        self.self_ptr as u64
    }

    fn next_user_data(&self) -> u64 {
        let v = self.next_user_data.get();
        self.next_user_data.set(v + 1);
        v
    }

    fn wait_for(&self, user_data: u64) -> Result<Cqe, TransportError> {
        let stashed = self.stash.borrow().iter().position(|c| c.user_data == user_data);
        if let Some(pos) = stashed {
            return Ok(self.stash.borrow_mut().remove(pos).expect("position is in range"));
        }
        loop {
            while let Some(c) = self.ring.pop() {
                if c.user_data == user_data {
                    return Ok(c);
                }
                self.stash.borrow_mut().push_back(c);
            }
            self.ring.enter(1, u64::MAX)?;
        }
    }

    fn call_raw(&self, sqe: Sqe) -> Result<Cqe, TransportError> {
        while self.ring.submit(&sqe).is_err() {
            // SQ full: let the kernel consume it.
            self.ring.enter(0, 0)?;
        }
        self.wait_for(sqe.user_data)
    }
}

impl ThreadCtx {
    /// [`ThreadCtx::wait_for`] giving up after `timeout_ns`: `None` when the
    /// time passed first.
    fn wait_for_timeout(
        &self,
        user_data: u64,
        timeout_ns: u64,
    ) -> Result<Option<Cqe>, TransportError> {
        let stashed = self.stash.borrow().iter().position(|c| c.user_data == user_data);
        if let Some(pos) = stashed {
            return Ok(self.stash.borrow_mut().remove(pos));
        }
        let mut waited = false;
        loop {
            while let Some(c) = self.ring.pop() {
                if c.user_data == user_data {
                    return Ok(Some(c));
                }
                self.stash.borrow_mut().push_back(c);
            }
            if waited {
                return Ok(None);
            }
            match self.ring.enter(1, timeout_ns) {
                Ok(_) => {}
                Err(TransportError::Timeout) => waited = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// A CALL sending the `count` caps whose transfer descriptors are `descs`.
    fn call_with_xfer(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
        descs: &[u8],
        count: usize,
    ) -> Result<CallReply, CallError> {
        let mut results = self.results.borrow_mut();
        let sqe = Sqe {
            xfer_addr: if count == 0 { 0 } else { descs.as_ptr() as u64 },
            xfer_count: u16::try_from(count).unwrap_or(u16::MAX),
            ..crate::ipc::call_sqe(
                cap,
                interface_id,
                method,
                params,
                &mut results,
                self.next_user_data(),
            )
        };
        let cqe = self.call_raw(sqe).map_err(|e| CallError::Transport(e.code()))?;
        crate::ipc::call_reply(&cqe, &results)
    }
}

impl Transport for ThreadCtx {
    fn call(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
    ) -> Result<CallReply, CallError> {
        self.call_with_xfer(cap, interface_id, method, params, &[], 0)
    }
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(core::ptr::null_mut());
static MAIN_CTX: AtomicPtr<ThreadCtx> = AtomicPtr::new(core::ptr::null_mut());
/// Set once the first thread's FS base points at its context (before any
/// other thread exists); from then on every thread finds its own context
/// through `fs:[0]`.
static TLS_READY: AtomicBool = AtomicBool::new(false);

/// The calling thread's context.
pub(crate) fn ctx() -> &'static ThreadCtx {
    if !TLS_READY.load(Ordering::Acquire) {
        // SAFETY: MAIN_CTX is set (to a leaked, never-freed context) before
        // `main` runs, and until TLS_READY only the first thread exists.
        return unsafe { &*MAIN_CTX.load(Ordering::Acquire) };
    }
    let ptr: *const ThreadCtx;
    // SAFETY: once TLS_READY is set every thread's FS base points at its own
    // ThreadCtx (the first thread's is set before the flag, each spawned
    // thread sets its own before running user code), whose first field is
    // its own address; a context lives until its thread has ended.
    unsafe {
        core::arch::asm!("mov {}, fs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*ptr
    }
}

/// Makes the first thread's FS base point at its context (once, before the
/// first spawn), through the `ThreadSpawner` cap `spawner`.
pub(crate) fn ready_tls(spawner: u64) -> Result<(), CallError> {
    if TLS_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let main = ctx();
    capos_schema::ThreadSpawnerClient::new(main, spawner).set_tls(main.tls())?;
    TLS_READY.store(true, Ordering::Release);
    Ok(())
}

/// The process's runtime (set before `main` runs).
pub fn runtime() -> &'static Runtime {
    // SAFETY: RUNTIME points at the leaked, never-freed Runtime, set before
    // any user code runs.
    unsafe { &*RUNTIME.load(Ordering::Acquire) }
}

extern "Rust" {
    fn capos_main(rt: &'static Runtime) -> i64;
}

core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    start = sym capos_rt_start,
);

extern "C" fn capos_rt_start() -> ! {
    heap::init();
    let page = match startup::page() {
        Ok(p) => p,
        Err(_) => syscall::exit(102),
    };
    let ring = Ring::from_startup(page.header());
    let main = Box::leak(ThreadCtx::new(ring, MAX_RESULTS_LEN as usize));
    MAIN_CTX.store(main as *mut ThreadCtx, Ordering::Release);
    let rt: &'static Runtime = Box::leak(Box::new(Runtime { page }));
    RUNTIME.store(rt as *const Runtime as *mut Runtime, Ordering::Release);
    // SAFETY: `capos_main` is defined by the program through `entry!`, with
    // exactly this signature.
    let code = unsafe { capos_main(rt) };
    syscall::exit(code)
}

impl Runtime {
    /// The cap named `name` in the CapSet.
    pub fn cap(&self, name: &str) -> Option<CapRef> {
        self.page.cap(name).map(|e| CapRef { cap: e.cap, interface_id: e.interface_id })
    }

    /// Every (name, cap) in the CapSet.
    pub fn caps(&self) -> impl Iterator<Item = (String, CapRef)> + '_ {
        self.page.capset().map(|e| {
            (
                String::from(e.name_str().unwrap_or("?")),
                CapRef { cap: e.cap, interface_id: e.interface_id },
            )
        })
    }

    /// The program's arguments.
    pub fn args(&self) -> impl Iterator<Item = &'static str> {
        self.page.args().filter_map(|a| core::str::from_utf8(a).ok())
    }

    /// The calling thread's ring.
    pub fn ring(&self) -> &Ring {
        &ctx().ring
    }

    /// A fresh user-data value (for the calling thread's ring).
    pub fn next_user_data(&self) -> u64 {
        ctx().next_user_data()
    }

    /// Waits for the completion with `user_data` on the calling thread's
    /// ring, keeping others for later.
    pub fn wait_for(&self, user_data: u64) -> Result<Cqe, TransportError> {
        ctx().wait_for(user_data)
    }

    /// [`Runtime::wait_for`] with a deadline: `None` when `timeout_ns`
    /// passed first (the completion, when it comes, is kept for later).
    pub fn wait_for_timeout(
        &self,
        user_data: u64,
        timeout_ns: u64,
    ) -> Result<Option<Cqe>, TransportError> {
        ctx().wait_for_timeout(user_data, timeout_ns)
    }

    /// A CALL that also sends caps: `caps` are (CapId, move?) pairs, in the
    /// order the callee expects them. Results and result caps as for a
    /// typed client's call.
    pub fn call_sending(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
        caps: &[(u64, bool)],
    ) -> Result<CallReply, CallError> {
        let descs = crate::ipc::xfer_descs(caps);
        ctx().call_with_xfer(cap, interface_id, method, params, &descs, caps.len())
    }

    /// The next completion not yet taken: first those [`Runtime::wait_for`]
    /// set aside while waiting for another, then the ring's. Code that
    /// drives the ring itself alongside blocking calls must take its
    /// completions here, or miss the set-aside ones.
    pub fn next_completion(&self) -> Option<Cqe> {
        let ctx = ctx();
        let stashed = ctx.stash.borrow_mut().pop_front();
        stashed.or_else(|| ctx.ring.pop())
    }

    /// One blocking CALL with raw buffers; returns the completion.
    pub fn call_raw(&self, sqe: Sqe) -> Result<Cqe, TransportError> {
        ctx().call_raw(sqe)
    }

    /// Drops a cap.
    pub fn release(&self, cap: u64) -> Result<(), TransportError> {
        let sqe =
            Sqe { opcode: OP_RELEASE, cap, user_data: self.next_user_data(), ..Sqe::default() };
        let c = self.call_raw(sqe)?;
        match TransportError::from_u32(c.status) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Writes a line to the `console` cap, if the program holds one.
    pub fn println(&self, args: fmt::Arguments<'_>) {
        let Some(console) = self.cap("console") else { return };
        let mut line = String::new();
        let _ = line.write_fmt(args);
        let client = capos_schema::ConsoleClient::new(self, console.cap);
        let _ = client.write_line(&line);
    }

    /// Ends the process (every thread of it).
    pub fn exit(&self, code: i64) -> ! {
        syscall::exit(code)
    }
}

impl Transport for Runtime {
    fn call(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
    ) -> Result<CallReply, CallError> {
        ctx().call(cap, interface_id, method, params)
    }
}

/// The panic handler: report through `log` or `console`, exit 101.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if !RUNTIME.load(Ordering::Acquire).is_null() {
        let rt = runtime();
        let mut msg = String::new();
        let _ = write!(msg, "panic: {}", info.message());
        if let Some(loc) = info.location() {
            let _ = write!(msg, " at {}:{}", loc.file(), loc.line());
        }
        if let Some(log) = rt.cap("log") {
            let client = capos_schema::LogSinkClient::new(rt, log.cap);
            let _ = client.write(capos_schema::LogLevel::Error, &msg);
        } else {
            rt.println(format_args!("{msg}"));
        }
    }
    syscall::exit(101)
}
