//! logforge: tries to forge the lines the kernel, init and the proofs trust,
//! through `Console` (COM1) and `LogSink` (COM2 and the log store): text with
//! newlines, carriage returns and ANSI escapes, exact copies of a kernel log
//! line and of lines `make run-hello` waits for, and a 64 KiB log record.
//!
//! `make run-log-forge` checks that every attempt shows up escaped, inside a
//! line that starts with `logforge` (COM1) or `log: #N Info logforge:`
//! (COM2), never as a line of its own, that the big record was cut to
//! 512 bytes with a `…(N bytes cut)` marker, and that the system still
//! answers afterwards. The program's own report lines:
//!
//! - `logforge: stored record: <n> bytes, ends …(<cut> bytes cut), no control characters`
//! - `logforge: still answering: timer <ms> ms after the big record`
//! - `logforge: done` (exit 0), or `logforge: FAILED <what>` (exit 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;

use capos_rt::schema::{ConsoleClient, LogLevel, LogReaderClient, LogSinkClient, TimerClient};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

/// A kernel log line, as COM2 shows them.
const KERNEL_LINE: &str = "[    1.000000] cpu0 info proc: init (pid 1) exited with code 0";
/// Lines `make run-hello` waits for on COM1.
const HELLO_DONE: &str = "hello: done";
const INIT_LINE: &str = "init: hello exited with code 0";
/// Text of the oversized record.
const BIG: usize = 65000;

fn main(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(log), Some(reader), Some(timer)) =
        (rt.cap("console"), rt.cap("log"), rt.cap("log_reader"), rt.cap("timer"))
    else {
        return 2;
    };
    let console = ConsoleClient::new(rt, console.cap);
    let log = LogSinkClient::new(rt, log.cap);
    let mut failed = 0;
    let mut check = |what: &str, ok: bool| {
        if !ok {
            println!(rt, "logforge: FAILED {what}");
            failed += 1;
        }
    };

    // COM1: whole forged lines, and forged lines behind control characters.
    for text in [
        String::from(INIT_LINE),
        String::from(HELLO_DONE),
        alloc::format!("newline\n{INIT_LINE}"),
        alloc::format!("carriage return\r{HELLO_DONE}"),
        alloc::format!("ansi\x1b[2K\x1b[1G{INIT_LINE}"),
        alloc::format!("crlf\r\n{HELLO_DONE}\r\n"),
    ] {
        check("Console.writeLine", console.write_line(&text).is_ok());
    }
    // A line left open by `write`, finished by a forged line.
    check("Console.write", console.write("open line ").is_ok());
    check("Console.write", console.write(&alloc::format!("\n{INIT_LINE}\n")).is_ok());
    check("Console.writeLine", console.write_line("").is_ok());

    // COM2 and the store.
    for text in [
        String::from(KERNEL_LINE),
        alloc::format!("newline\n{KERNEL_LINE}"),
        alloc::format!("carriage return\r{KERNEL_LINE}"),
        alloc::format!("ansi\x1b[1A\x1b[2K{KERNEL_LINE}"),
        String::from("bell\x07 nul\0 del\x7f csi\u{9b}"),
    ] {
        check("LogSink.write", log.write(LogLevel::Info, &text).is_ok());
    }
    let big: String = core::iter::repeat_n('x', BIG).collect();
    check("LogSink.write of 65000 bytes", log.write(LogLevel::Info, &big).is_ok());

    // The record as stored: the newest one.
    match LogReaderClient::new(rt, reader.cap).tail(1) {
        Ok(reply) => match reply.records.last() {
            Some(r) if r.source == "logforge" => {
                let marker = alloc::format!("\u{2026}({} bytes cut)", BIG - 512);
                let clean = !r.message.chars().any(|c| c.is_control());
                let text = r.message.strip_suffix(marker.as_str()).map_or(0, str::len);
                println!(
                    rt,
                    "logforge: stored record: {text} bytes, ends {}, {}",
                    if r.message.ends_with(marker.as_str()) { marker.as_str() } else { "unmarked" },
                    if clean { "no control characters" } else { "control characters" }
                );
            }
            _ => check("LogReader.tail: the big record is not the newest", false),
        },
        Err(e) => {
            println!(rt, "logforge: LogReader.tail failed: {e}");
            check("LogReader.tail", false);
        }
    }

    let timer = TimerClient::new(rt, timer.cap);
    match (timer.now(), timer.sleep(10_000_000), timer.now()) {
        (Ok(t0), Ok(()), Ok(t1)) if t1 >= t0 + 10_000_000 => {
            println!(
                rt,
                "logforge: still answering: timer {} ms after the big record",
                (t1 - t0) / 1_000_000
            )
        }
        _ => check("Timer after the big record", false),
    }

    if failed > 0 {
        return 1;
    }
    println!(rt, "logforge: done");
    0
}
