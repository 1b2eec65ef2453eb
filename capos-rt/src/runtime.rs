//! Process start-up and the [`Runtime`] handed to `main`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicPtr, Ordering};

use capos_abi::{Cqe, Sqe, StartupPage, TransportError, MAX_RESULTS_LEN, OP_CALL, OP_RELEASE};
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

/// What a program has: its startup page, ring and caps.
pub struct Runtime {
    page: StartupPage<'static>,
    ring: Ring,
    results: RefCell<Vec<u8>>,
    next_user_data: Cell<u64>,
    /// Completions reaped while waiting for another one.
    stash: RefCell<VecDeque<Cqe>>,
}

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(core::ptr::null_mut());

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
    let rt: &'static Runtime = Box::leak(Box::new(Runtime {
        page,
        ring,
        results: RefCell::new(vec![0; MAX_RESULTS_LEN as usize]),
        next_user_data: Cell::new(1),
        stash: RefCell::new(VecDeque::new()),
    }));
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

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// A fresh user-data value.
    pub fn next_user_data(&self) -> u64 {
        let v = self.next_user_data.get();
        self.next_user_data.set(v + 1);
        v
    }

    /// Waits for the completion with `user_data`, keeping others for later.
    pub fn wait_for(&self, user_data: u64) -> Result<Cqe, TransportError> {
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

    /// The next completion not yet taken: first those [`Runtime::wait_for`]
    /// set aside while waiting for another, then the ring's. Code that
    /// drives the ring itself alongside blocking calls must take its
    /// completions here, or miss the set-aside ones.
    pub fn next_completion(&self) -> Option<Cqe> {
        let stashed = self.stash.borrow_mut().pop_front();
        stashed.or_else(|| self.ring.pop())
    }

    /// One blocking CALL with raw buffers; returns the completion.
    pub fn call_raw(&self, sqe: Sqe) -> Result<Cqe, TransportError> {
        while self.ring.submit(&sqe).is_err() {
            // SQ full: let the kernel consume it.
            self.ring.enter(0, 0)?;
        }
        self.wait_for(sqe.user_data)
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

    /// Ends the process.
    pub fn exit(&self, code: i64) -> ! {
        syscall::exit(code)
    }
}

impl Runtime {
    /// Waits up to `timeout_ns` for the completion with `user_data`, keeping
    /// others for later; `None` when the time passed first.
    pub fn wait_for_timeout(
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
        let descs: Vec<u8> = caps
            .iter()
            .flat_map(|&(cap, moved)| {
                capos_abi::XferDesc {
                    cap,
                    mode: if moved { capos_abi::XFER_MOVE } else { capos_abi::XFER_COPY },
                    reserved: 0,
                }
                .to_bytes()
            })
            .collect();
        self.call_with_xfer(cap, interface_id, method, params, &descs, caps.len())
    }

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
            opcode: OP_CALL,
            method,
            cap,
            interface_id,
            params_addr: params.as_ptr() as u64,
            params_len: params.len() as u32,
            results_addr: results.as_mut_ptr() as u64,
            results_len: results.len() as u32,
            xfer_addr: if count == 0 { 0 } else { descs.as_ptr() as u64 },
            xfer_count: u16::try_from(count).unwrap_or(u16::MAX),
            user_data: self.next_user_data(),
            ..Sqe::default()
        };
        let cqe = self.call_raw(sqe).map_err(|e| CallError::Transport(e.code()))?;
        let len = cqe.result_len as usize;
        let reply_bytes =
            results.get(..len).ok_or(CallError::Transport(TransportError::Malformed.code()))?;
        match TransportError::from_u32(cqe.status) {
            None => {
                let caps = capos_abi::delivered_caps(&results, cqe.result_len, cqe.cap_count)
                    .ok_or(CallError::Transport(TransportError::Malformed.code()))?
                    .collect();
                Ok(CallReply { results: reply_bytes.to_vec(), caps })
            }
            Some(TransportError::AppError) => {
                Err(capos_schema::wire::decode_exception(reply_bytes)
                    .map(CallError::Exception)
                    .unwrap_or(CallError::Transport(TransportError::AppError.code())))
            }
            Some(e) => Err(CallError::Transport(e.code())),
        }
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
        self.call_with_xfer(cap, interface_id, method, params, &[], 0)
    }
}

/// The panic handler: report through `log` or `console`, exit 101.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let rt = RUNTIME.load(Ordering::Acquire);
    if !rt.is_null() {
        // SAFETY: RUNTIME points at the leaked, never-freed Runtime.
        let rt = unsafe { &*rt };
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
