//! hello: the first capOS program. It uses each cap init grants it: prints
//! through `console`, reads `sysinfo`, `clock` and `timer`, sleeps, and
//! writes to `log`, then exits 0.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use capos_lib::time::DateTime;
use capos_rt::schema::{
    ConsoleClient, LogLevel, LogSinkClient, SystemInfoClient, TimerClient, WallClockClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

fn main(rt: &'static Runtime) -> i64 {
    let (Some(console), Some(sysinfo), Some(clock), Some(timer), Some(log)) =
        (rt.cap("console"), rt.cap("sysinfo"), rt.cap("clock"), rt.cap("timer"), rt.cap("log"))
    else {
        return 2;
    };
    let console = ConsoleClient::new(rt, console.cap);
    if console.write_line("hello: hello from user space").is_err() {
        return 3;
    }

    let info = match SystemInfoClient::new(rt, sysinfo.cap).info() {
        Ok(info) => info,
        Err(e) => {
            println!(rt, "hello: SystemInfo failed: {e}");
            return 4;
        }
    };
    println!(
        rt,
        "hello: {} {} on {}, {} CPU(s), {} MiB total",
        info.os_name,
        info.version,
        info.hostname,
        info.cpu_count,
        info.total_memory_bytes / (1024 * 1024)
    );

    match WallClockClient::new(rt, clock.cap).now() {
        Ok(now) => println!(rt, "hello: wall clock {}", DateTime::from_unix(now.unix_seconds)),
        Err(e) => {
            println!(rt, "hello: WallClock failed: {e}");
            return 5;
        }
    }

    let timer = TimerClient::new(rt, timer.cap);
    let (Ok(t0), Ok(()), Ok(t1)) = (timer.now(), timer.sleep(20_000_000), timer.now()) else {
        println!(rt, "hello: Timer failed");
        return 6;
    };
    let slept_ms = (t1 - t0) / 1_000_000;
    if t1 - t0 < 20_000_000 {
        println!(rt, "hello: sleep of 20 ms returned after {slept_ms} ms (early)");
        return 7;
    }
    println!(rt, "hello: timer slept 20 ms (measured at least 20 ms)");

    if LogSinkClient::new(rt, log.cap).write(LogLevel::Info, "hello wrote to the log").is_err() {
        return 8;
    }
    println!(rt, "hello: done");
    0
}
