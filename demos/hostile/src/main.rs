//! hostile: does to the kernel what a careless or malicious program would,
//! and checks that each attempt ends in the error `docs/src/ring.md` names
//! for it while the process carries on: SQEs with bad pointers, forged and
//! stale CapIds, unknown opcodes and methods, malformed and oversized
//! messages, lengths near 2^32, validation order, an SQ and a CQ filled to
//! the brim, a corrupted ring header, unknown system calls, spawner requests
//! it must refuse, CPU faults in child processes, revocable-wrapper chains
//! 10,000 levels deep (refused past `MAX_REVOCABLE_DEPTH`), and IPC calls
//! whose delivery to the server fails (a RECV buffer unmapped after the
//! RECV was submitted, a server cap table that is full) or whose endpoint
//! queue is full.
//!
//! Output on the console, one line per case, compared verbatim by
//! `make run-hostile`:
//!
//! - `hostile: <case>: <result>`, where `<result>` is `ok` or the
//!   [`TransportError::name`] of the completion status (client calls that
//!   fail with an application error read `AppError`). A completion that
//!   breaks another rule of the CQE layout (an error with a nonzero
//!   `result_len` or `cap_count`, a nonzero `reserved` or `aux`) gets a note
//!   after the name, so it never matches.
//! - The ring cases read `hostile: ring full after <n> SQEs: ok` (NOPs
//!   pushed until the runtime reports `RingFull`; `<n>` must be
//!   `sq_entries`), `hostile: full CQ holds back <n> SQEs: ok` (with the CQ
//!   full, a whole SQ of NOPs stays unconsumed) and
//!   `hostile: <n> NOPs completed in order: ok` (every NOP of those rounds,
//!   drained in submission order with status 0 and no `cq_overflow`).
//! - `hostile: child <mode> ended with code <code>` for each child process
//!   (see [`child`] for the modes).
//! - A wrong result is followed by `hostile: mismatch in <case>: expected <want>`.
//! - Last, `hostile: all <n> cases gave their named error` (exit code 0), or
//!   `hostile: <m> of <n> cases gave the wrong result` (exit code 1).
//!
//! Started with an argument, the program is a child: it runs the mode the
//! argument names, normally a CPU fault the kernel must answer by ending the
//! child alone.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use capos_rt::abi::OP_RECV;
use capos_rt::abi::{
    CapId, Cqe, Sqe, TransportError, MAX_PARAMS_LEN, OP_CALL, OP_NOP, OP_PIPELINE, OP_RELEASE,
    STARTUP_PAGE_ADDR, STATUS_OK, SYS_CAP_ENTER, USER_STACK_TOP, USER_TOP,
};
use capos_rt::schema::capos_capnp::{console, ipc_manager, process_handle, system_info, timer};
use capos_rt::schema::{
    self, CallError, ConsoleClient, Grant, IpcManagerClient, NotificationClient,
    ProcessHandleClient, ProcessSpawnerClient, RevokerClient, SystemInfoClient, ThreadEnd,
    ThreadHandleClient, ThreadSpawnerClient, VirtualMemoryClient,
};
use capos_rt::{println, CapRef, Runtime};

capos_rt::entry!(main);

/// Text of the params message the pointer cases carry: if the kernel ever
/// carried out such a call, this line would reach the console (the proof
/// fails on it).
const NEVER: &str = "hostile: this line must never appear";

/// A grant name using all 32 bytes a CapSet entry name may have.
const LONG_NAME: &str = "console-granted-under-32-bytes!!";
const _: () = assert!(LONG_NAME.len() == capos_rt::abi::CAPSET_NAME_LEN);

/// 70 KiB of text: a `writeLine` whose params exceed `MAX_PARAMS_LEN`.
static LONG_TEXT: [u8; 70 * 1024] = [b'x'; 70 * 1024];

/// Most levels of a revocable-wrapper chain (`IpcManager.makeRevocable`).
const MAX_REVOCABLE_DEPTH: u32 = 32;
/// Wrapping asked for by the chain case.
const CHAIN_ASKED: u32 = 10_000;
/// `CapException.code` of a refused wrap (`EXHAUSTED`).
const EXHAUSTED: u32 = 4;
/// Calls an endpoint queues at most.
const MAX_QUEUED: usize = 64;

/// Exit codes of a process ended by a CPU exception (`-256 - vector`).
const EXIT_DE: i64 = -256;
const EXIT_UD: i64 = -256 - 6;
const EXIT_GP: i64 = -256 - 13;
const EXIT_PF: i64 = -256 - 14;
/// Exit code of a process ended through `ProcessHandle.kill`.
const EXIT_KILLED: i64 = -9;
/// Exit code of the `syscall-kernel-rsp` child when its system calls worked.
const EXIT_SURVIVED_RSP: i64 = 77;

/// Child modes and the exit code each must end with.
const CHILDREN: [(&str, i64); 10] = [
    ("privileged", EXIT_GP),
    ("soft-int", EXIT_GP),
    ("port-io", EXIT_GP),
    ("non-canonical-read", EXIT_GP),
    ("kernel-read", EXIT_PF),
    ("null-write", EXIT_PF),
    ("bad-stack", EXIT_PF),
    ("invalid-opcode", EXIT_UD),
    ("divide", EXIT_DE),
    ("syscall-kernel-rsp", EXIT_SURVIVED_RSP),
];

fn main(rt: &'static Runtime) -> i64 {
    if let Some(mode) = rt.args().next() {
        return child(rt, mode);
    }
    let (Some(console), Some(sysinfo), Some(timer), Some(spawner), Some(ipc), Some(vm)) = (
        rt.cap("console"),
        rt.cap("sysinfo"),
        rt.cap("timer"),
        rt.cap("spawner"),
        rt.cap("ipc"),
        rt.cap("vm"),
    ) else {
        println!(rt, "hostile: needs console, sysinfo, timer, spawner, ipc, vm and threads caps");
        return 2;
    };
    let Some(threads) = rt.cap("threads") else {
        println!(rt, "hostile: needs console, sysinfo, timer, spawner, ipc, vm and threads caps");
        return 2;
    };
    let never = match schema::wire::encode::<console::write_line_params::Owned>(|mut p| {
        p.set_text(NEVER);
        Ok(())
    }) {
        Ok(m) => m,
        Err(_) => return 2,
    };
    let mut h = Hostile {
        rt,
        console,
        sysinfo,
        timer,
        spawner,
        ipc,
        vm,
        threads,
        never,
        results: vec![0; 256],
        cases: 0,
        wrong: 0,
    };
    h.pointers();
    h.caps();
    h.malformed();
    h.lengths();
    h.opcodes();
    h.order();
    h.ring_flow();
    h.corrupt_header();
    h.enter_and_syscalls();
    h.server_side();
    h.spawner_refusals();
    h.revocable_chains();
    h.queue_full();
    h.bad_recv_buffer();
    h.full_server_table();
    h.thread_entries();
    h.stale();
    h.children();
    if h.wrong == 0 {
        println!(rt, "hostile: all {} cases gave their named error", h.cases);
        0
    } else {
        println!(rt, "hostile: {} of {} cases gave the wrong result", h.wrong, h.cases);
        1
    }
}

/// The name a case prints for an expected outcome.
fn want_name(want: Option<TransportError>) -> &'static str {
    want.map_or("ok", TransportError::name)
}

/// `ok` or the error name of a CQE status.
fn status_name(status: u32) -> String {
    if status == STATUS_OK {
        return "ok".to_string();
    }
    match TransportError::from_u32(status) {
        Some(e) => e.name().to_string(),
        None => format!("unknown status {status}"),
    }
}

/// The status of a completion, with a note for any other CQE rule it breaks.
fn cqe_result(c: &Cqe) -> String {
    let mut s = status_name(c.status);
    let app_error = c.status == TransportError::AppError.code();
    if c.status != STATUS_OK && !app_error && (c.result_len != 0 || c.cap_count != 0) {
        let _ = write!(s, " with result_len {} and cap_count {}", c.result_len, c.cap_count);
    }
    if c.reserved != 0 {
        let _ = write!(s, " with reserved {}", c.reserved);
    }
    if c.aux != 0 {
        let _ = write!(s, " with aux {:#x}", c.aux);
    }
    s
}

/// What a typed client call ended with.
fn client_result<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(CallError::Transport(status)) => status_name(*status),
        Err(CallError::Exception(_)) => TransportError::AppError.name().to_string(),
        Err(e) => format!("client error ({e})"),
    }
}

/// What `cap_enter` returned: `ok` for no completions ready, else the count
/// or the error name.
fn enter_result(r: Result<u32, TransportError>) -> String {
    match r {
        Ok(0) => "ok".to_string(),
        Ok(n) => format!("ok with {n} ready"),
        Err(e) => e.name().to_string(),
    }
}

/// A Cap'n Proto message: its segment table (one segment of `words` words)
/// followed by `words`.
fn message(words: &[u64]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + words.len() * 8);
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(&(words.len() as u32).to_le_bytes());
    for w in words {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m
}

/// An SQE whose every field but `opcode`, `flags`, `reserved`, `cap` and
/// `user_data` holds a value no CALL could use.
fn garbage() -> Sqe {
    Sqe {
        method: 0xffff,
        xfer_count: 0xffff,
        interface_id: 0xdead_beef_dead_beef,
        params_addr: 0xffff_8000_0000_0000,
        params_len: u32::MAX,
        results_len: u32::MAX,
        results_addr: 1,
        xfer_addr: u64::MAX,
        ..Sqe::default()
    }
}

/// A struct pointer to a struct right after it with no data and one pointer.
const ROOT_ONE_POINTER: u64 = 1 << 48;

/// A list pointer to `count` bytes, `offset` words after the pointer's end.
const fn byte_list(offset: u64, count: u64) -> u64 {
    (offset << 2) | 1 | (2 << 32) | (count << 35)
}

struct Hostile {
    rt: &'static Runtime,
    console: CapRef,
    sysinfo: CapRef,
    timer: CapRef,
    spawner: CapRef,
    ipc: CapRef,
    vm: CapRef,
    threads: CapRef,
    /// A valid `Console.writeLine` params message with [`NEVER`].
    never: Vec<u8>,
    /// A writable results buffer.
    results: Vec<u8>,
    cases: u32,
    wrong: u32,
}

impl Hostile {
    /// Counts one case, prints its line, and reports a mismatch.
    fn check(&mut self, case: &str, got: &str, want: &str) {
        self.cases += 1;
        println!(self.rt, "hostile: {case}: {got}");
        if got != want {
            self.wrong += 1;
            println!(self.rt, "hostile: mismatch in {case}: expected {want}");
        }
    }

    /// Submits `sqe` (with a fresh `user_data`) and returns its result.
    fn submit(&self, mut sqe: Sqe) -> String {
        sqe.user_data = self.rt.next_user_data();
        match self.rt.call_raw(sqe) {
            Ok(c) if c.user_data != sqe.user_data => {
                format!("completion for user_data {} instead of {}", c.user_data, sqe.user_data)
            }
            Ok(c) => cqe_result(&c),
            Err(e) => format!("cap_enter failed with {}", e.name()),
        }
    }

    /// Submits `sqe` and checks it ends with `want`.
    fn expect(&mut self, case: &str, sqe: Sqe, want: Option<TransportError>) {
        let got = self.submit(sqe);
        self.check(case, &got, want_name(want));
    }

    /// A NOP that must complete with status 0.
    fn nop(&mut self, case: &str) {
        self.expect(case, Sqe { opcode: OP_NOP, ..Sqe::default() }, None);
    }

    /// A well-formed `Console.writeLine` CALL with `params` and the results
    /// buffer.
    fn write_line(&self, params: &[u8]) -> Sqe {
        Sqe {
            opcode: OP_CALL,
            method: schema::console::method::WRITE_LINE,
            cap: self.console.cap,
            interface_id: self.console.interface_id,
            params_addr: params.as_ptr() as u64,
            params_len: params.len() as u32,
            results_addr: self.results.as_ptr() as u64,
            results_len: self.results.len() as u32,
            ..Sqe::default()
        }
    }

    /// The `writeLine` CALL carrying [`NEVER`].
    fn never(&self) -> Sqe {
        self.write_line(&self.never)
    }

    /// Params and results ranges the caller cannot use.
    fn pointers(&mut self) {
        let bad: [(&str, u64, u32); 5] = [
            ("at null", 0, 8),
            ("unmapped", 0x5000_0000_0000, 8),
            ("in the kernel half", 0xffff_8000_0000_0000, 8),
            ("crossing into an unmapped page", USER_STACK_TOP - 8, 64),
            ("wrapping past 2^64", 0xffff_ffff_ffff_fff0, 32),
        ];
        for (what, addr, len) in bad {
            let sqe = Sqe { params_addr: addr, params_len: len, ..self.never() };
            self.expect(&format!("params {what}"), sqe, Some(TransportError::BadPointer));
        }
        for (what, addr, _) in bad {
            let sqe = Sqe { results_addr: addr, results_len: 64, ..self.never() };
            self.expect(&format!("results {what}"), sqe, Some(TransportError::BadPointer));
        }
        let sqe = Sqe { results_addr: STARTUP_PAGE_ADDR, results_len: 64, ..self.never() };
        self.expect("results in the read-only startup page", sqe, Some(TransportError::BadPointer));
        let code: fn(&'static Runtime) -> i64 = main;
        let sqe = Sqe { results_addr: code as usize as u64, results_len: 64, ..self.never() };
        self.expect("results in program code", sqe, Some(TransportError::BadPointer));
    }

    /// CapIds that name nothing, methods and interfaces a cap lacks.
    fn caps(&mut self) {
        let forged = [
            ("unheld slot 40", CapId::new(40, 0)),
            ("slot 5000 past the table", CapId::new(5000, 0)),
            ("null CapId", CapId::NULL),
        ];
        for (case, id) in forged {
            let sqe = Sqe { cap: id.0, ..self.never() };
            self.expect(case, sqe, Some(TransportError::InvalidCap));
        }
        let held = CapId(self.console.cap);
        let id = CapId::new(held.index(), held.generation().wrapping_add(12345));
        let sqe = Sqe { cap: id.0, ..self.never() };
        self.expect("held slot with a forged generation", sqe, Some(TransportError::StaleCap));
        let sqe = Sqe { method: 99, ..self.never() };
        self.expect("method 99 on Console", sqe, Some(TransportError::BadMethod));
        let sqe = Sqe { interface_id: schema::system_info::INTERFACE_ID, ..self.never() };
        self.expect("Console cap called as SystemInfo", sqe, Some(TransportError::WrongInterface));
    }

    /// Params that are not a `writeLine` params message.
    fn malformed(&mut self) {
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("params of 8 bytes 0xff", vec![0xff; 8]),
            // One segment of 2^28 words, and nothing after the table.
            ("segment table claiming a huge segment", vec![0, 0, 0, 0, 0, 0, 0, 0x10]),
            ("text pointer out of bounds", message(&[ROOT_ONE_POINTER, byte_list(1000, 5)])),
            (
                "text not UTF-8",
                message(&[
                    ROOT_ONE_POINTER,
                    byte_list(0, 3),
                    u64::from_le_bytes([0xff, 0xfe, 0, 0, 0, 0, 0, 0]),
                ]),
            ),
            ("params of 64 KiB of zeros", vec![0; MAX_PARAMS_LEN as usize]),
        ];
        let mut trailing = self.never.clone();
        trailing.extend_from_slice(&[0; 8]);
        cases.push(("valid params with 8 trailing bytes", trailing));
        for (case, params) in &cases {
            let sqe = self.write_line(params);
            self.expect(case, sqe, Some(TransportError::Malformed));
        }
        // An empty range is valid anywhere, even at 0; an empty message is not.
        let sqe = Sqe { params_addr: 0, params_len: 0, ..self.never() };
        self.expect("params of 0 bytes at null", sqe, Some(TransportError::Malformed));
    }

    /// Lengths and counts over their limits.
    fn lengths(&mut self) {
        let cases = [
            ("params_len 0xfffffff0", Sqe { params_len: 0xffff_fff0, ..self.never() }),
            ("results_len 0xffffffff", Sqe { results_len: 0xffff_ffff, ..self.never() }),
            ("params_len 65537", Sqe { params_len: MAX_PARAMS_LEN + 1, ..self.never() }),
            ("xfer_count 17", Sqe { xfer_count: 17, ..self.never() }),
        ];
        for (case, sqe) in cases {
            self.expect(case, sqe, Some(TransportError::TooLarge));
        }
    }

    /// Opcodes, flags and reserved fields.
    fn opcodes(&mut self) {
        for (case, opcode) in [("opcode 200", 200), ("opcode 255", 255), ("PIPELINE", OP_PIPELINE)]
        {
            let sqe = Sqe { opcode, ..Sqe::default() };
            self.expect(case, sqe, Some(TransportError::BadOpcode));
        }
        let malformed = [
            ("NOP with flags 0x01", Sqe { opcode: OP_NOP, flags: 1, ..Sqe::default() }),
            ("CALL with flags 0x80", Sqe { flags: 0x80, ..self.never() }),
            ("NOP with reserved 1", Sqe { opcode: OP_NOP, reserved: 1, ..Sqe::default() }),
            (
                "RELEASE of sysinfo with reserved 1",
                Sqe { opcode: OP_RELEASE, reserved: 1, cap: self.sysinfo.cap, ..Sqe::default() },
            ),
        ];
        for (case, sqe) in malformed {
            self.expect(case, sqe, Some(TransportError::Malformed));
        }
        // Fields an opcode does not use are ignored, whatever they hold.
        let sqe = Sqe { opcode: OP_NOP, cap: CapId::NULL.0, ..garbage() };
        self.expect("NOP with garbage in every unused field", sqe, None);
        let sqe = Sqe { opcode: OP_RELEASE, cap: CapId::NULL.0, ..Sqe::default() };
        self.expect("RELEASE of the null CapId", sqe, Some(TransportError::InvalidCap));
        // The refused RELEASE must have left the cap in place.
        let got = client_result(&SystemInfoClient::new(self.rt, self.sysinfo.cap).info());
        self.check("sysinfo after the refused RELEASE", &got, "ok");
    }

    /// The order of the checks (`docs/src/ring.md` 5.3): an SQE failing
    /// several of them completes with the error of the first.
    fn order(&mut self) {
        use TransportError::*;
        let forged = CapId::new(40, 0).0;
        let cases = [
            (
                "order: opcode 200 with flags 0x01",
                Sqe { opcode: 200, flags: 1, ..Sqe::default() },
                BadOpcode,
            ),
            (
                "order: flags 0x01 on a forged cap",
                Sqe { flags: 1, cap: forged, ..self.never() },
                Malformed,
            ),
            (
                "order: forged cap with a wrong interface",
                Sqe {
                    cap: forged,
                    interface_id: schema::system_info::INTERFACE_ID,
                    ..self.never()
                },
                InvalidCap,
            ),
            (
                "order: wrong interface with method 99",
                Sqe { method: 99, interface_id: schema::system_info::INTERFACE_ID, ..self.never() },
                WrongInterface,
            ),
            (
                "order: method 99 with params_len 0xfffffff0",
                Sqe { method: 99, params_len: 0xffff_fff0, ..self.never() },
                BadMethod,
            ),
            (
                "order: method 99 with params at null",
                Sqe { method: 99, params_addr: 0, ..self.never() },
                BadMethod,
            ),
            (
                "order: params_len 65537 at null",
                Sqe { params_addr: 0, params_len: MAX_PARAMS_LEN + 1, ..self.never() },
                TooLarge,
            ),
            (
                "order: results at null with malformed params",
                Sqe { results_addr: 0, results_len: 64, ..self.write_line(&[0xff; 8]) },
                BadPointer,
            ),
        ];
        for (case, sqe, want) in cases {
            self.expect(case, sqe, Some(want));
        }
    }

    /// Fills the SQ until the runtime refuses, then the CQ until the
    /// kernel holds SQEs back, and drains everything.
    fn ring_flow(&mut self) {
        let rt = self.rt;
        let ring = rt.ring();
        let (sq, cq) = (ring.sq_entries(), ring.cq_entries());
        let mut expected: Vec<u64> = Vec::new();
        // Pushes NOPs until RingFull (at most one more than fits), publishes them.
        let fill = |expected: &mut Vec<u64>| -> u32 {
            let mut n = 0;
            while n <= sq {
                let user_data = rt.next_user_data();
                if ring.push(&Sqe { opcode: OP_NOP, user_data, ..Sqe::default() }).is_err() {
                    break;
                }
                expected.push(user_data);
                n += 1;
            }
            ring.publish();
            n
        };
        // No printing until everything is drained: a print is a call, and
        // a call would take the completions it does not wait for.
        let first = fill(&mut expected);
        let mut ready = ring.enter(0, 0);
        let mut rounds = 1;
        while matches!(ready, Ok(r) if r < cq) && rounds < 64 {
            fill(&mut expected);
            ready = ring.enter(0, 0);
            rounds += 1;
        }
        let held_pushed = fill(&mut expected);
        let after = ring.enter(0, 0);
        let held = sq - ring.sq_space();
        let mut done: Vec<Cqe> = Vec::new();
        while let Some(c) = ring.pop() {
            done.push(c);
        }
        let rest = ring.enter(0, 0);
        while let Some(c) = ring.pop() {
            done.push(c);
        }
        let overflow = ring.cq_overflow();

        let got = if first == sq { "ok".to_string() } else { format!("the ring has {sq}") };
        self.check(&format!("ring full after {first} SQEs"), &got, "ok");

        let got = if ready != Ok(cq) || after != Ok(cq) {
            format!("cap_enter gave {ready:?} and then {after:?} for a CQ of {cq}")
        } else if held != held_pushed || held != sq {
            format!("{held_pushed} pushed into the SQ")
        } else {
            "ok".to_string()
        };
        self.check(&format!("full CQ holds back {held} SQEs"), &got, "ok");

        let mut got = "ok".to_string();
        if let Some((c, want)) = done.iter().zip(&expected).find(|(c, w)| c.user_data != **w) {
            got = format!("user_data {} where {want} was due", c.user_data);
        } else if let Some(c) = done.iter().find(|c| c.status != STATUS_OK) {
            got = format!("a NOP completed with {}", cqe_result(c));
        } else if done.len() != expected.len() {
            got = format!("{} of {} completions", done.len(), expected.len());
        } else if rest != Ok(held) {
            got = format!("cap_enter gave {rest:?} after the CQ was drained");
        } else if overflow != 0 {
            got = format!("cq_overflow {overflow}");
        }
        self.check(&format!("{} NOPs completed in order", done.len()), &got, "ok");
    }

    /// `sq_tail` and `cq_head` overwritten with values no valid ring has.
    fn corrupt_header(&mut self) {
        let ring = self.rt.ring();
        for value in [0x8000_0000u32, 0xffff_ffff] {
            ring.write_raw_sq_tail(value);
            let r = ring.enter(0, 0);
            ring.resync();
            self.check(
                &format!("sq_tail overwritten with {value:#x}"),
                &enter_result(r),
                "Malformed",
            );
            self.nop(&format!("NOP after restoring sq_tail from {value:#x}"));
        }
        for value in [0x8000_0000u32, 0xffff_ffff] {
            ring.write_raw_cq_head(value);
            let r = ring.enter(0, 0);
            ring.resync();
            self.check(
                &format!("cq_head overwritten with {value:#x}"),
                &enter_result(r),
                "Malformed",
            );
            self.nop(&format!("NOP after restoring cq_head from {value:#x}"));
        }
    }

    /// `cap_enter` deadlines and system call numbers that do not exist.
    fn enter_and_syscalls(&mut self) {
        let ring = self.rt.ring();
        let r = ring.enter(u32::MAX, 0);
        self.check("cap_enter for 2^32-1 completions with timeout 0", &enter_result(r), "Timeout");
        let r = ring.enter(1, 1_000_000);
        self.check("cap_enter for 1 completion with a 1 ms timeout", &enter_result(r), "Timeout");
        let r = ring.enter(0, u64::MAX);
        self.check("cap_enter for 0 completions without a deadline", &enter_result(r), "ok");
        for (case, number) in [("system call 2", 2), ("system call 2^64-1", u64::MAX)] {
            let rax = raw_syscall(number);
            let got = match TransportError::from_syscall_return(rax) {
                Some(e) => e.name().to_string(),
                None => format!("returned {rax:#x}"),
            };
            self.check(case, &got, "BadOpcode");
        }
    }

    /// Calls that get through the ring and fail (or succeed) at the object.
    fn server_side(&mut self) {
        let got = client_result(&SystemInfoClient::new(self.rt, self.sysinfo.cap).info());
        self.check("SystemInfo.info still answers", &got, "ok");
        // Kept out of the heap: the encoded message and the runtime's results
        // buffer already take most of it.
        let long = core::str::from_utf8(&LONG_TEXT).unwrap_or_default();
        let got = client_result(&ConsoleClient::new(self.rt, self.console.cap).write_line(long));
        self.check("writeLine of 70 KiB", &got, "TooLarge");
        let Ok(info) = schema::wire::encode::<system_info::info_params::Owned>(|_| Ok(())) else {
            self.check("SystemInfo.info params", "not encodable", "ok");
            return;
        };
        let sqe = Sqe {
            opcode: OP_CALL,
            method: schema::system_info::method::INFO,
            cap: self.sysinfo.cap,
            interface_id: self.sysinfo.interface_id,
            params_addr: info.as_ptr() as u64,
            params_len: info.len() as u32,
            results_addr: self.results.as_ptr() as u64,
            results_len: 8,
            ..Sqe::default()
        };
        self.expect("SystemInfo results into 8 bytes", sqe, Some(TransportError::Overflow));
        let sqe = Sqe { results_addr: 0, results_len: 0, ..sqe };
        self.expect("SystemInfo results into 0 bytes at null", sqe, Some(TransportError::Overflow));
    }

    fn spawner(&self) -> ProcessSpawnerClient<&'static Runtime> {
        ProcessSpawnerClient::new(self.rt, self.spawner.cap)
    }

    fn grant(&self, name: &str, cap: u64) -> Grant {
        Grant { name: name.to_string(), cap }
    }

    /// Spawns and, if that worked, waits for the child and releases its
    /// handle: `ok` when it exited with 0.
    fn spawn_and_wait(&self, args: &[&str], grants: &[Grant]) -> String {
        let r = self.spawner().spawn("hostile", args, grants);
        let Ok(handle) = r else { return client_result(&r) };
        let code = ProcessHandleClient::new(self.rt, handle).wait();
        let _ = self.rt.release(handle);
        match code {
            Ok(0) => "ok".to_string(),
            Ok(c) => format!("child exited with code {c}"),
            Err(e) => format!("wait failed: {}", client_result::<()>(&Err(e))),
        }
    }

    /// Spawn requests the spawner must refuse, and one it must accept.
    fn spawner_refusals(&mut self) {
        let console = self.console.cap;
        let r = self.spawner().spawn("no-such-program", &[], &[]);
        let got = client_result(&r);
        if let Ok(handle) = r {
            let _ = self.rt.release(handle);
        }
        self.check("spawn of a missing binary", &got, "AppError");
        let forged = [self.grant("console", CapId::new(40, 0).0)];
        let got = self.spawn_and_wait(&["exit-0"], &forged);
        self.check("spawn granting a forged cap", &got, "AppError");
        let got = self.spawn_and_wait(&["exit-0"; 33], &[]);
        self.check("spawn with 33 arguments", &got, "AppError");
        let long = "x".repeat(1024);
        let got = self.spawn_and_wait(&["exit-0", long.as_str()], &[]);
        self.check("spawn with 1 KiB of arguments", &got, "AppError");
        let twice = [self.grant("console", console), self.grant("console", self.sysinfo.cap)];
        let got = self.spawn_and_wait(&["exit-0"], &twice);
        self.check("spawn granting two caps under one name", &got, "AppError");
        let got = self.spawn_and_wait(&["exit-0"], &[self.grant("", console)]);
        self.check("spawn granting a cap under an empty name", &got, "AppError");
        let got = self.spawn_and_wait(&["check-grant"], &[self.grant(LONG_NAME, console)]);
        self.check("spawn granting a cap under a 32-byte name", &got, "ok");
    }

    /// `IpcManager.makeRevocable` of `cap` (sent as a copy): the revoker and
    /// the wrapped cap.
    fn make_revocable(&self, cap: u64) -> Result<(u64, u64), CallError> {
        let params = schema::wire::encode::<ipc_manager::make_revocable_params::Owned>(|_| Ok(()))
            .unwrap_or_default();
        let reply = self.rt.call_sending(
            self.ipc.cap,
            self.ipc.interface_id,
            schema::ipc_manager::method::MAKE_REVOCABLE,
            &params,
            &[(cap, false)],
        )?;
        Ok((reply.cap(0)?, reply.cap(1)?))
    }

    /// `writeLine(text)` through `cap`: `ok` or the error name.
    fn write_through(&self, cap: u64, text: &str) -> String {
        client_result(&ConsoleClient::new(self.rt, cap).write_line(text))
    }

    /// Releases `cap`: `ok` or the error name.
    fn release(&self, cap: u64) -> String {
        match self.rt.release(cap) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.name().to_string(),
        }
    }

    /// Wraps console, then each wrapper again, `CHAIN_ASKED` times: the
    /// kernel must refuse past `MAX_REVOCABLE_DEPTH` levels with `EXHAUSTED`;
    /// the deepest chain must call, revoke (an outer level leaves the inner
    /// ones working, an inner level revokes the outer ones too) and release.
    fn revocable_chains(&mut self) {
        let console = self.console.cap;
        let (mut cur, mut depth) = (console, 0u32);
        let (mut r1, mut r16, mut w15) = (0, 0, 0);
        let mut refusal = None;
        for level in 1..=CHAIN_ASKED {
            match self.make_revocable(cur) {
                Ok((revoker, wrapped)) => {
                    match level {
                        1 => r1 = revoker,
                        16 => r16 = revoker,
                        _ => {
                            let _ = self.rt.release(revoker);
                        }
                    }
                    if depth == 15 {
                        w15 = cur;
                    } else if cur != console {
                        let _ = self.rt.release(cur);
                    }
                    cur = wrapped;
                    depth = level;
                }
                Err(e) => {
                    refusal = Some(e);
                    break;
                }
            }
        }
        let got = match refusal {
            Some(CallError::Exception(ex))
                if depth == MAX_REVOCABLE_DEPTH && ex.code == EXHAUSTED =>
            {
                "AppError".to_string()
            }
            Some(e) => format!("{} at level {}", client_result::<()>(&Err(e)), depth + 1),
            None => format!("all {CHAIN_ASKED} levels made"),
        };
        self.check(
            &format!("makeRevocable {CHAIN_ASKED} levels deep, past {MAX_REVOCABLE_DEPTH}"),
            &got,
            "AppError",
        );
        if depth < 16 || w15 == 0 {
            return;
        }
        let got = self.write_through(cur, "hostile: written through 32 revocable levels");
        self.check("writeLine through 32 revocable levels", &got, "ok");
        let got = client_result(&RevokerClient::new(self.rt, r16).revoke());
        self.check("revoke of level 16", &got, "ok");
        let got = self.write_through(cur, NEVER);
        self.check("writeLine through 32 levels after revoking level 16", &got, "Revoked");
        let got = self.write_through(w15, "hostile: written through 15 revocable levels");
        self.check("writeLine through 15 levels after revoking level 16", &got, "ok");
        let got = client_result(&RevokerClient::new(self.rt, r1).revoke());
        self.check("revoke of level 1", &got, "ok");
        let got = self.write_through(w15, NEVER);
        self.check("writeLine through 15 levels after revoking level 1", &got, "Revoked");
        let got = self.release(cur);
        self.check("RELEASE of the 32-level wrapper", &got, "ok");
        let got = self.release(w15);
        self.check("RELEASE of the 15-level wrapper", &got, "ok");
        let _ = self.rt.release(r1);
        let _ = self.rt.release(r16);
        let got = self.write_through(console, "hostile: console after the chains");
        self.check("console after the revocable chains", &got, "ok");
    }

    /// A new endpoint and a client cap minted from it (speaking Console).
    fn endpoint(&mut self, case: &str) -> Option<(u64, u64)> {
        let made = capos_rt::ipc::create_endpoint(self.rt, self.ipc.cap).and_then(|ep| {
            capos_rt::ipc::mint(self.rt, ep, schema::console::INTERFACE_ID, 7).map(|c| (ep, c))
        });
        match made {
            Ok(pair) => Some(pair),
            Err(e) => {
                self.check(case, &client_result::<()>(&Err(e)), "ok");
                None
            }
        }
    }

    /// Submits `sqe` without waiting for it.
    fn start(&self, sqe: &Sqe) -> bool {
        let ring = self.rt.ring();
        if ring.submit(sqe).is_err() {
            return false;
        }
        ring.enter(0, 0).is_ok()
    }

    /// `ok`, `pending` (no completion within 20 ms) or the error of call
    /// `user_data`.
    fn outcome_of(&self, user_data: u64, timeout_ns: u64) -> String {
        match self.rt.wait_for_timeout(user_data, timeout_ns) {
            Ok(Some(c)) => cqe_result(&Cqe { aux: 0, ..c }),
            Ok(None) => "pending".to_string(),
            Err(e) => format!("cap_enter failed with {}", e.name()),
        }
    }

    /// An endpoint with a full queue refuses a CALL with `Overflow` before
    /// the cap it moves leaves the caller's table.
    fn queue_full(&mut self) {
        let case = "CALL moving a cap into a full endpoint queue";
        let Some((ep, client)) = self.endpoint(case) else { return };
        let params = self.never.clone();
        let mut results = vec![0u8; 64];
        let mut queued = Vec::new();
        for _ in 0..MAX_QUEUED {
            let ud = self.rt.next_user_data();
            let sqe = Sqe {
                cap: client,
                interface_id: schema::console::INTERFACE_ID,
                ..capos_rt::ipc::call_sqe(
                    client,
                    schema::console::INTERFACE_ID,
                    schema::console::method::WRITE_LINE,
                    &params,
                    &mut results,
                    ud,
                )
            };
            if !self.start(&sqe) {
                break;
            }
            queued.push(ud);
        }
        let moved = IpcManagerClient::new(self.rt, self.ipc.cap).create_notification();
        let got = match moved {
            Ok(n) => {
                let descs = capos_rt::ipc::xfer_descs(&[(n, true)]);
                let sqe = capos_rt::ipc::with_xfer(
                    capos_rt::ipc::call_sqe(
                        client,
                        schema::console::INTERFACE_ID,
                        schema::console::method::WRITE_LINE,
                        &params,
                        &mut results,
                        0,
                    ),
                    &descs,
                );
                let got = self.submit(sqe);
                let kept = client_result(&NotificationClient::new(self.rt, n).signal(1));
                let _ = self.rt.release(n);
                format!("{got}, the moved cap then {kept}")
            }
            Err(e) => client_result::<()>(&Err(e)),
        };
        self.check(case, &got, "Overflow, the moved cap then ok");
        // Closing the endpoint completes the queued calls.
        let _ = self.rt.release(ep);
        let disconnected =
            queued.iter().filter(|ud| self.outcome_of(**ud, u64::MAX) == "Disconnected").count();
        let got = format!("{disconnected} of {} Disconnected", queued.len());
        self.check("queued calls after the endpoint closed", &got, "64 of 64 Disconnected");
        let _ = self.rt.release(client);
    }

    /// A RECV whose buffer is unmapped after it was submitted: delivering
    /// a call to it fails; the RECV completes with `BadPointer`, the call
    /// stays queued (the caller learns nothing of the server's fault) and
    /// the next RECV takes it.
    fn bad_recv_buffer(&mut self) {
        let case = "RECV into a buffer unmapped after its submission";
        let Some((ep, client)) = self.endpoint(case) else { return };
        let vm = VirtualMemoryClient::new(self.rt, self.vm.cap);
        let page = match vm.map(0, 4096, true) {
            Ok(a) => a,
            Err(e) => {
                self.check(case, &client_result::<()>(&Err(e)), "BadPointer");
                return;
            }
        };
        let recv_ud = self.rt.next_user_data();
        let recv = Sqe {
            opcode: OP_RECV,
            cap: ep,
            interface_id: schema::endpoint::INTERFACE_ID,
            results_addr: page,
            results_len: 4096,
            user_data: recv_ud,
            ..Sqe::default()
        };
        let started = self.start(&recv);
        let unmapped = vm.unmap(page, 4096).is_ok();
        let params = self.never.clone();
        let mut results = vec![0u8; 64];
        let call_ud = self.rt.next_user_data();
        let call = capos_rt::ipc::call_sqe(
            client,
            schema::console::INTERFACE_ID,
            schema::console::method::WRITE_LINE,
            &params,
            &mut results,
            call_ud,
        );
        let called = self.start(&call);
        let got = if started && unmapped && called {
            self.outcome_of(recv_ud, u64::MAX)
        } else {
            format!("setup failed (recv {started}, unmap {unmapped}, call {called})")
        };
        self.check(case, &got, "BadPointer");
        let got = self.outcome_of(call_ud, 20_000_000);
        self.check("the CALL after the failed RECV", &got, "pending");
        self.serve_one(ep, call_ud, 0);
        let _ = self.rt.release(client);
        let _ = self.rt.release(ep);
    }

    /// A second RECV (with a good buffer) takes the pending call `call_ud`
    /// carrying `caps` caps and answers it; the caller then completes `ok`.
    fn serve_one(&mut self, ep: u64, call_ud: u64, caps: u32) {
        let mut buf = vec![0u8; 512];
        let sqe = capos_rt::ipc::recv_sqe(ep, &mut buf, self.rt.next_user_data());
        let got = match self.rt.call_raw(sqe) {
            Ok(c) if c.status == STATUS_OK && c.cap_count == caps => {
                let reply = schema::wire::encode::<console::write_line_results::Owned>(|_| Ok(()))
                    .unwrap_or_default();
                let id = c.aux;
                for cap in capos_abi_caps(&buf, c.result_len, c.cap_count) {
                    let _ = self.rt.release(cap);
                }
                let ret = capos_rt::ipc::return_sqe(ep, id, STATUS_OK, &reply, 0);
                self.submit(ret)
            }
            Ok(c) => format!("{} with {} cap(s)", cqe_result(&Cqe { aux: 0, ..c }), c.cap_count),
            Err(e) => e.name().to_string(),
        };
        self.check("the next RECV takes the call and answers it", &got, "ok");
        let got = self.outcome_of(call_ud, u64::MAX);
        self.check("the caller after that answer", &got, "ok");
    }

    /// A call carrying a cap, queued, then a RECV while the server's cap
    /// table is full: the RECV completes with `QuotaExceeded`, the call (and its
    /// cap) stays queued for the next RECV.
    fn full_server_table(&mut self) {
        let case = "RECV of a call with a cap into a full cap table";
        let Some((ep, client)) = self.endpoint(case) else { return };
        let params = self.never.clone();
        let mut results = vec![0u8; 64];
        let call_ud = self.rt.next_user_data();
        let descs = capos_rt::ipc::xfer_descs(&[(self.console.cap, false)]);
        let call = capos_rt::ipc::with_xfer(
            capos_rt::ipc::call_sqe(
                client,
                schema::console::INTERFACE_ID,
                schema::console::method::WRITE_LINE,
                &params,
                &mut results,
                call_ud,
            ),
            &descs,
        );
        let called = self.start(&call);
        // Fill the table with client caps until a mint finds no slot.
        let mut fill = Vec::new();
        while fill.len() < 128 {
            match capos_rt::ipc::mint(self.rt, ep, schema::console::INTERFACE_ID, 9) {
                Ok(c) => fill.push(c),
                Err(_) => break,
            }
        }
        let mut buf = vec![0u8; 512];
        let sqe = capos_rt::ipc::recv_sqe(ep, &mut buf, 0);
        let got = if called { self.submit(sqe) } else { "setup failed".to_string() };
        self.check(case, &got, "QuotaExceeded");
        let got = self.outcome_of(call_ud, 20_000_000);
        self.check("the CALL after the RECV into a full table", &got, "pending");
        if let Some(c) = fill.pop() {
            let _ = self.rt.release(c);
        }
        self.serve_one(ep, call_ud, 1);
        for c in fill {
            let _ = self.rt.release(c);
        }
        let _ = self.rt.release(client);
        let _ = self.rt.release(ep);
    }

    /// Thread entry points at and near the end of user space: a
    /// non-canonical or kernel one is refused; one two bytes below
    /// `USER_TOP` (where a SYSCALL would return to a non-canonical address)
    /// is unmapped, so the thread faults on its first fetch and ends alone.
    fn thread_entries(&mut self) {
        let spawner = ThreadSpawnerClient::new(self.rt, self.threads.cap);
        let stack = USER_STACK_TOP - 0x1000;
        for (what, entry) in [
            ("0x800000000000 (non-canonical)", USER_TOP),
            ("in the kernel half", 0xffff_8000_0000_0000),
        ] {
            let r = spawner.spawn(entry, 0, stack, 0);
            let got = client_result(&r);
            if let Ok(h) = r {
                let _ = ThreadHandleClient::new(self.rt, h).join();
                let _ = self.rt.release(h);
            }
            self.check(&format!("thread entry {what}"), &got, "BadPointer");
        }
        let got = match spawner.spawn(USER_TOP - 2, 0, stack, 0) {
            Ok(h) => {
                let end = ThreadHandleClient::new(self.rt, h).join();
                let _ = self.rt.release(h);
                match end {
                    Ok(j) if j.end == ThreadEnd::Faulted => "faulted".to_string(),
                    Ok(j) => format!("ended {:?}", j.end as u16),
                    Err(e) => client_result::<()>(&Err(e)),
                }
            }
            Err(e) => client_result::<()>(&Err(e)),
        };
        self.check("thread entry 2 bytes below the end of user space", &got, "faulted");
    }

    /// Releases `timer` and uses the dead CapId.
    fn stale(&mut self) {
        let Ok(now) = schema::wire::encode::<timer::now_params::Owned>(|_| Ok(())) else {
            self.check("Timer.now params", "not encodable", "ok");
            return;
        };
        let release = Sqe { opcode: OP_RELEASE, cap: self.timer.cap, ..garbage() };
        self.expect("RELEASE of timer with garbage in every unused field", release, None);
        let sqe = Sqe {
            opcode: OP_CALL,
            method: schema::timer::method::NOW,
            cap: self.timer.cap,
            interface_id: self.timer.interface_id,
            params_addr: now.as_ptr() as u64,
            params_len: now.len() as u32,
            results_addr: self.results.as_ptr() as u64,
            results_len: self.results.len() as u32,
            ..Sqe::default()
        };
        self.expect("Timer.now after RELEASE", sqe, Some(TransportError::StaleCap));
        self.expect("second RELEASE of timer", release, Some(TransportError::StaleCap));
        // A new cap may take the freed slot; the old id must not reach it.
        let grants = [self.grant("console", self.console.cap)];
        match self.spawner().spawn("hostile", &["spin"], &grants) {
            Ok(handle) => {
                let Ok(wait) =
                    schema::wire::encode::<process_handle::wait_params::Owned>(|_| Ok(()))
                else {
                    return;
                };
                let sqe = Sqe {
                    opcode: OP_CALL,
                    method: schema::process_handle::method::WAIT,
                    cap: self.timer.cap,
                    interface_id: schema::process_handle::INTERFACE_ID,
                    params_addr: wait.as_ptr() as u64,
                    params_len: wait.len() as u32,
                    results_addr: self.results.as_ptr() as u64,
                    results_len: self.results.len() as u32,
                    ..Sqe::default()
                };
                self.expect("old timer id as a ProcessHandle", sqe, Some(TransportError::StaleCap));
                let child = ProcessHandleClient::new(self.rt, handle);
                let killed = child.kill();
                let code = child.wait();
                let _ = self.rt.release(handle);
                self.report_child("spin", killed.and(code), EXIT_KILLED);
            }
            Err(e) => {
                let got = client_result::<()>(&Err(e));
                self.check("spawn of a spinning child", &got, "ok");
            }
        }
    }

    /// Prints `hostile: child <mode> ended with code <code>` and checks it.
    fn report_child(&mut self, mode: &str, code: Result<i64, CallError>, want: i64) {
        self.cases += 1;
        match code {
            Ok(code) => {
                println!(self.rt, "hostile: child {mode} ended with code {code}");
                if code == want {
                    return;
                }
            }
            Err(e) => println!(self.rt, "hostile: child {mode}: {}", client_result::<()>(&Err(e))),
        }
        self.wrong += 1;
        println!(self.rt, "hostile: mismatch in child {mode}: expected code {want}");
    }

    /// Children that fault: each must end alone, with its code.
    fn children(&mut self) {
        let grants = [self.grant("console", self.console.cap)];
        for (mode, want) in CHILDREN {
            let code = self.spawner().spawn("hostile", &[mode], &grants).and_then(|handle| {
                let code = ProcessHandleClient::new(self.rt, handle).wait();
                let _ = self.rt.release(handle);
                code
            });
            self.report_child(mode, code, want);
        }
    }
}

/// The CapIds a RECV delivered after its message.
fn capos_abi_caps(buf: &[u8], len: u32, count: u32) -> Vec<u64> {
    capos_rt::abi::delivered_caps(buf, len, count).map(|c| c.collect()).unwrap_or_default()
}

/// A system call with number `number` and zero arguments; returns `rax`.
#[allow(unsafe_code)]
fn raw_syscall(number: u64) -> u64 {
    let rax: u64;
    // SAFETY: deliberate: a system call number the kernel does not define.
    // SYSCALL clobbers only RCX and R11 (declared); the kernel preserves the
    // rest and touches no memory of ours for an unknown number.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") 0u64,
            in("rsi") 0u64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        )
    };
    rax
}

/// Runs child mode `mode`. The fault modes must not come back; if one
/// does, the child says so and exits 3.
///
/// | mode | does | kernel must end it with |
/// |---|---|---|
/// | `exit-0` | exits 0 | - |
/// | `check-grant` | exits 0 if it holds a cap named [`LONG_NAME`], else 4 | - |
/// | `spin` | loops until killed | -9 |
/// | `privileged` | `hlt` | #GP, -269 |
/// | `soft-int` | `int 0x20` (the timer vector; every gate is DPL 0) | #GP, -269 |
/// | `port-io` | `out 0x80, al` (no I/O permission at CPL 3) | #GP, -269 |
/// | `non-canonical-read` | reads 0x8000_0000_0000_0000 | #GP, -269 |
/// | `kernel-read` | reads 0xffff_ffff_8000_0000 | #PF, -270 |
/// | `null-write` | writes 0x8 | #PF, -270 |
/// | `bad-stack` | points `rsp` at 0xffff_ffff_8000_0000 and pushes | #PF, -270 |
/// | `invalid-opcode` | `ud2` | #UD, -262 |
/// | `divide` | `div` by 0 | #DE, -256 |
/// | `syscall-kernel-rsp` | `cap_enter(0, 0)` with `rsp` at a kernel address, then `exit(77)` (78 if `cap_enter` failed) | exit code 77 |
fn child(rt: &'static Runtime, mode: &str) -> i64 {
    match mode {
        "exit-0" => return 0,
        "check-grant" => return if rt.cap(LONG_NAME).is_some() { 0 } else { 4 },
        "spin" => loop {
            core::hint::spin_loop();
        },
        "privileged" => fault::halt(),
        "soft-int" => fault::soft_int(),
        "port-io" => fault::port_io(),
        "non-canonical-read" => fault::read(0x8000_0000_0000_0000),
        "kernel-read" => fault::read(0xffff_ffff_8000_0000),
        "null-write" => fault::write(0x8),
        "bad-stack" => fault::push_on(0xffff_ffff_8000_0000),
        "invalid-opcode" => fault::invalid_opcode(),
        "divide" => fault::divide_by_zero(),
        "syscall-kernel-rsp" => fault::syscall_with_rsp(0xffff_ffff_8000_0000),
        _ => {
            println!(rt, "hostile: unknown child mode `{mode}`");
            return 2;
        }
    }
    println!(rt, "hostile: child {mode} survived");
    3
}

/// The deliberate faults of the child modes. Each is one instruction (or a
/// few) the CPU refuses at CPL 3; the kernel must end the child and nothing
/// else.
mod fault {
    use core::arch::asm;

    #[allow(unsafe_code)]
    pub fn halt() {
        // SAFETY: deliberate: HLT is privileged, so at CPL 3 it raises #GP
        // and the kernel ends this process. It touches no memory.
        unsafe { asm!("hlt", options(nomem, nostack)) }
    }

    #[allow(unsafe_code)]
    pub fn soft_int() {
        // SAFETY: deliberate: the gate of vector 0x20 has DPL 0, so INT from
        // CPL 3 raises #GP and the kernel ends this process.
        unsafe { asm!("int 0x20", options(nomem, nostack)) }
    }

    #[allow(unsafe_code)]
    pub fn port_io() {
        // SAFETY: deliberate: with IOPL 0 and no I/O bitmap, OUT at CPL 3
        // raises #GP. Port 0x80 (POST codes) is harmless even if it did not.
        unsafe { asm!("out 0x80, al", in("al") 0u8, options(nomem, nostack)) }
    }

    #[allow(unsafe_code)]
    pub fn read(addr: u64) {
        // SAFETY: deliberate: `addr` is not user memory (non-canonical or
        // supervisor-only), so the load faults and the kernel ends this
        // process. Nothing is read into Rust-visible state.
        unsafe {
            asm!("mov {v}, qword ptr [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack))
        }
    }

    #[allow(unsafe_code)]
    pub fn write(addr: u64) {
        // SAFETY: deliberate: `addr` lies in the unmapped page below
        // USER_MIN_VADDR, so the store faults and the kernel ends this process.
        unsafe {
            asm!("mov qword ptr [{a}], {v}", a = in(reg) addr, v = in(reg) 0x5a5a_u64, options(nostack))
        }
    }

    #[allow(unsafe_code)]
    pub fn push_on(stack: u64) -> ! {
        // SAFETY: deliberate: with RSP at a supervisor address the push
        // faults (#PF); the CPU takes it on the kernel stack from the TSS.
        // Nothing runs on the bad stack; UD2 stops the child (with a
        // different code) should the push ever succeed.
        unsafe { asm!("mov rsp, {s}", "push rax", "ud2", s = in(reg) stack, options(noreturn)) }
    }

    #[allow(unsafe_code)]
    pub fn invalid_opcode() {
        // SAFETY: deliberate: UD2 always raises #UD.
        unsafe { asm!("ud2", options(nomem, nostack)) }
    }

    #[allow(unsafe_code)]
    pub fn divide_by_zero() {
        // SAFETY: deliberate: DIV by a zero register raises #DE; the
        // registers it would write are declared clobbered.
        unsafe {
            asm!(
                "div {d:e}",
                d = in(reg) 0u32,
                inout("eax") 1u32 => _,
                inout("edx") 0u32 => _,
                options(nomem, nostack)
            )
        }
    }

    #[allow(unsafe_code)]
    pub fn syscall_with_rsp(stack: u64) -> ! {
        // SAFETY: deliberate: SYSCALL with RSP at a supervisor address. The
        // kernel must switch to its own stack without touching ours, return
        // from cap_enter(0, 0) (0 completions), and end us on exit(77); a
        // failed cap_enter exits 78. Nothing runs on the bad stack.
        unsafe {
            asm!(
                "mov rsp, r13",
                "syscall",
                "mov rdi, r12",
                "test rax, rax",
                "jz 2f",
                "mov rdi, r14",
                "2:",
                "xor eax, eax",
                "syscall",
                "ud2",
                in("rax") super::SYS_CAP_ENTER,
                in("rdi") 0u64,
                in("rsi") 0u64,
                in("r12") super::EXIT_SURVIVED_RSP,
                in("r13") stack,
                in("r14") super::EXIT_SURVIVED_RSP + 1,
                options(noreturn)
            )
        }
    }
}
