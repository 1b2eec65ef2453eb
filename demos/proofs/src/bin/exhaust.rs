//! exhaust: a process that takes everything its resource profile allows, on
//! every path, must get a named error each time, and leave nothing behind.
//!
//! Run with no argument it is the driver (caps `console`, `spawner`,
//! `sysinfo`, `timer`, `ipc`, `vm`, `threads`): it starts `echo-server` as a
//! well-behaved neighbour, then runs [`ROUNDS`] rounds of a `hog` child (this
//! program with the argument `hog`) and calls Echo while each runs and after
//! it ends. The first round's hog has the default limits of a started
//! program and prints every case; the others have small limits and print
//! only a mismatch. Afterwards the free frames and the kernel heap in use
//! must be back where they were after a warm-up round.
//!
//! The hog maps memory until refused (at once and piecewise), makes a 64 KiB
//! call while its memory is full, and fills each bounded path until refused:
//! an endpoint's queue, its kernel bytes (queued 64 KiB calls), its open
//! calls (notification waits), its cap slots (minted caps), its threads and
//! its children (`exhaust sleeper`, which waits forever). It exits with
//! threads, calls and a full address space still held; the kernel takes it
//! all back.
//!
//! Output: `exhaust: <case>: <result>` (round 1), `exhaust: mismatch in
//! <case>: <got>, expected <want>` for a wrong result, then the driver's
//! summary lines.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use capos_rt::abi::{Sqe, TransportError};
use capos_rt::schema::{
    echo, notification, CallError, EchoClient, Grant, IpcManagerClient, NotificationClient,
    ProcessHandleClient, ProcessSpawnerClient, ResourceProfile, SystemInfoClient, TimerClient,
    VirtualMemoryClient,
};
use capos_rt::{ipc, println, Runtime};
use ipc_programs::CLIENT_COOKIE;

capos_rt::entry!(main);

/// Hog rounds after the warm-up.
const ROUNDS: u32 = 100;
const MIB: u64 = 1024 * 1024;
/// Limits of the small hogs (rounds after the first): 16 MiB of frames.
const SMALL: ResourceProfile =
    ResourceProfile { frames: 4096, kernel_bytes: MIB, threads: 6, caps: 32, open_calls: 100 };

fn main(rt: &'static Runtime) -> i64 {
    match rt.args().next() {
        Some("hog") => hog(rt, rt.args().nth(1) == Some("verbose")),
        Some("sleeper") => sleeper(rt),
        _ => driver(rt),
    }
}

/// The name of a call's failure: a transport error's name, `AppError <code>`
/// or the client's description.
fn name(e: &CallError) -> String {
    match e {
        CallError::Transport(code) => match TransportError::from_u32(*code) {
            Some(t) => t.name().to_string(),
            None => format!("status {code}"),
        },
        CallError::Exception(x) => format!("AppError {} ({})", x.code, x.message),
        other => format!("{other:?}"),
    }
}

fn status_name(status: u32) -> String {
    match TransportError::from_u32(status) {
        Some(t) => t.name().to_string(),
        None => "ok".to_string(),
    }
}

struct Report {
    rt: &'static Runtime,
    verbose: bool,
    failures: u32,
}

impl Report {
    fn check(&mut self, case: &str, got: &str, want: &str) {
        if got == want {
            if self.verbose {
                println!(self.rt, "exhaust: {case}: {got}");
            }
        } else {
            self.failures += 1;
            println!(self.rt, "exhaust: mismatch in {case}: {got}, expected {want}");
        }
    }
}

// --- the hog ---------------------------------------------------------------

fn hog(rt: &'static Runtime, verbose: bool) -> i64 {
    let mut r = Report { rt, verbose, failures: 0 };
    let (Some(vm), Some(ipc_cap), Some(spawner), Some(timer)) =
        (rt.cap("vm"), rt.cap("ipc"), rt.cap("spawner"), rt.cap("timer"))
    else {
        println!(rt, "exhaust: the hog lacks a cap");
        return 2;
    };
    let vm = VirtualMemoryClient::new(rt, vm.cap);
    let ipcm = IpcManagerClient::new(rt, ipc_cap.cap);

    // Memory: all at once, then a piece at a time until refused.
    let big = vm.map(0, 256 * MIB, true);
    r.check(
        "map of 256 MiB at once",
        &big.map(|_| "ok".into()).unwrap_or_else(|e| name(&e)),
        "QuotaExceeded",
    );
    let mut pieces = Vec::new();
    let refusal = loop {
        match vm.map(0, MIB, true) {
            Ok(addr) => pieces.push(addr),
            Err(e) => break name(&e),
        }
        if pieces.len() > 4096 {
            break "never refused".into();
        }
    };
    let got = if pieces.is_empty() { "refused at once".into() } else { refusal };
    r.check("1 MiB maps until refused", &got, "QuotaExceeded");
    if verbose {
        println!(rt, "exhaust: {} MiB mapped before the refusal", pieces.len());
    }

    // A 64 KiB call with every frame of the quota taken: queued (kernel
    // bytes are a quota of their own), then Disconnected when the endpoint
    // goes.
    let big_params = encode_echo(&vec![0x5a; 65000]);
    match endpoint_with_client(rt, &ipcm) {
        Some((ep, client)) => {
            let mut results = [0u8; 64];
            let ud = rt.next_user_data();
            let sqe = ipc::call_sqe(
                client,
                echo::INTERFACE_ID,
                echo::method::ECHO,
                &big_params,
                &mut results,
                ud,
            );
            let queued = submit(rt, &[sqe]);
            let early = rt.wait_for_timeout(ud, 0).ok().flatten();
            let got = match early {
                Some(c) => status_name(c.status),
                None if queued => {
                    let _ = rt.release(ep);
                    match rt.wait_for(ud) {
                        Ok(c) => format!("queued, then {}", status_name(c.status)),
                        Err(e) => e.name().to_string(),
                    }
                }
                None => "not submitted".into(),
            };
            r.check("64 KiB call with every frame taken", &got, "queued, then Disconnected");
            let _ = rt.release(client);
        }
        None => r.check("64 KiB call with every frame taken", "no endpoint", "ok"),
    }
    for addr in pieces {
        let _ = vm.unmap(addr, MIB);
    }

    // An endpoint's queue: 64 calls wait, the 65th is refused.
    let small = encode_echo(b"x");
    let (queued, why) = flood_endpoint(rt, &ipcm, &small, 65);
    r.check(
        "calls on an endpoint nobody serves",
        &format!("{queued} queued, then {why}"),
        "64 queued, then Overflow",
    );
    // Kernel bytes (1 MiB): queued 64 KiB calls until the account is full.
    let (queued, why) = flood_endpoint(rt, &ipcm, &big_params, 40);
    r.check("64 KiB calls until refused", &why, "QuotaExceeded");
    if verbose {
        println!(rt, "exhaust: {queued} calls of 64 KiB were queued before the refusal");
    }
    // Open calls (100): notification waits until refused.
    r.check(
        "notification waits until refused",
        &flood_waits(rt, &ipcm),
        "100 waiting, then QuotaExceeded",
    );
    // Cap slots: minted caps until refused.
    r.check("minted caps until refused", &fill_caps(rt, &ipcm), "QuotaExceeded");
    // Threads, each waiting forever on a notification.
    r.check("threads until refused", &fill_threads(&ipcm), "QuotaExceeded");
    // Children, each waiting forever.
    r.check("children until refused", &fill_children(rt, spawner.cap, timer.cap), "QuotaExceeded");

    // Leave with threads, open calls and caps still held.
    if r.failures == 0 {
        0
    } else {
        1
    }
}

fn encode_echo(data: &[u8]) -> Vec<u8> {
    capos_rt::schema::wire::encode::<echo::echo_params::Owned>(|mut p| {
        p.set_data(data);
        Ok(())
    })
    .unwrap_or_default()
}

/// A new endpoint and an Echo cap minted from it.
fn endpoint_with_client(
    rt: &'static Runtime,
    ipcm: &IpcManagerClient<&'static Runtime>,
) -> Option<(u64, u64)> {
    let ep = ipcm.create_endpoint().ok()?;
    match ipc::mint(rt, ep, echo::INTERFACE_ID, 1) {
        Ok(c) => Some((ep, c)),
        Err(_) => {
            let _ = rt.release(ep);
            None
        }
    }
}

/// Pushes `sqes` and enters the kernel once; false if the SQ had no room.
fn submit(rt: &'static Runtime, sqes: &[Sqe]) -> bool {
    for s in sqes {
        if rt.ring().push(s).is_err() {
            return false;
        }
    }
    rt.ring().publish();
    rt.ring().enter(0, 0).is_ok()
}

/// Completions that arrive within a short wait, by user data range.
fn refused(rt: &'static Runtime, from: u64, to: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let _ = rt.ring().enter(0, 0);
    while let Some(c) = rt.next_completion() {
        if (from..to).contains(&c.user_data) {
            out.push((c.user_data, c.status));
        }
    }
    out
}

/// Queues `n` calls with `params` on a fresh endpoint nobody serves;
/// returns how many stayed queued and how the first refused one failed.
/// Releasing the endpoint then completes the queued ones: each must say
/// Disconnected.
fn flood_endpoint(
    rt: &'static Runtime,
    ipcm: &IpcManagerClient<&'static Runtime>,
    params: &[u8],
    n: u64,
) -> (usize, String) {
    let Some((ep, client)) = endpoint_with_client(rt, ipcm) else {
        return (0, "no endpoint".into());
    };
    let mut results = vec![0u8; 64];
    let (first, done) = flood(rt, n, |ud| {
        ipc::call_sqe(client, echo::INTERFACE_ID, echo::method::ECHO, params, &mut results, ud)
    });
    let queued = n as usize - done.len();
    let why = done.first().map(|&(_, s)| status_name(s)).unwrap_or_else(|| "none refused".into());
    let _ = rt.release(ep);
    let disconnected = collect(rt, first, n, &done, TransportError::Disconnected);
    let _ = rt.release(client);
    if disconnected != queued {
        return (queued, format!("{queued} queued but {disconnected} Disconnected"));
    }
    (queued, why)
}

/// Submits `n` SQEs made by `make(user_data)`, 32 at a time; returns the
/// first user data and the completions that came at once (the refusals).
fn flood(rt: &'static Runtime, n: u64, mut make: impl FnMut(u64) -> Sqe) -> (u64, Vec<(u64, u32)>) {
    let first = rt.next_user_data();
    for _ in 1..n {
        rt.next_user_data();
    }
    let mut done = Vec::new();
    let mut sent = 0;
    while sent < n {
        let batch: Vec<Sqe> = (sent..(sent + 32).min(n)).map(|i| make(first + i)).collect();
        sent += batch.len() as u64;
        if !submit(rt, &batch) {
            break;
        }
        done.extend(refused(rt, first, first + n));
    }
    (first, done)
}

/// Waits for the completions of `first..first + n` not in `done`; counts
/// those with status `want`.
fn collect(
    rt: &'static Runtime,
    first: u64,
    n: u64,
    done: &[(u64, u32)],
    want: TransportError,
) -> usize {
    (first..first + n)
        .filter(|u| !done.iter().any(|&(d, _)| d == *u))
        .filter(|&u| rt.wait_for(u).is_ok_and(|c| c.status == want.code()))
        .count()
}

/// Notification waits until the open-call limit refuses one (spread over
/// several notifications: each holds at most 32 waiters); releasing the
/// notifications then completes every wait with Disconnected.
fn flood_waits(rt: &'static Runtime, ipcm: &IpcManagerClient<&'static Runtime>) -> String {
    const TRIES: u64 = 110;
    const PER: u64 = 30;
    let mut notes = Vec::new();
    for _ in 0..TRIES.div_ceil(PER) {
        match ipcm.create_notification() {
            Ok(n) => notes.push(n),
            Err(e) => return format!("createNotification: {}", name(&e)),
        }
    }
    let params = capos_rt::schema::wire::encode::<notification::wait_params::Owned>(|mut p| {
        p.set_mask(1);
        p.set_timeout_ns(u64::MAX);
        Ok(())
    })
    .unwrap_or_default();
    let mut results = vec![0u8; 64];
    let mut base = None;
    let (first, done) = flood(rt, TRIES, |ud| {
        let i = ud - *base.get_or_insert(ud);
        let n = notes[(i / PER) as usize];
        ipc::call_sqe(
            n,
            notification::INTERFACE_ID,
            notification::method::WAIT,
            &params,
            &mut results,
            ud,
        )
    });
    let waiting = TRIES as usize - done.len();
    let why = done.first().map(|&(_, s)| status_name(s)).unwrap_or_else(|| "none refused".into());
    for n in notes {
        let _ = rt.release(n);
    }
    let ended = collect(rt, first, TRIES, &done, TransportError::Disconnected);
    if ended != waiting {
        return format!("{waiting} waiting but {ended} ended with Disconnected");
    }
    format!("{waiting} waiting, then {why}")
}

/// Mints caps until the table refuses one; releases them again.
fn fill_caps(rt: &'static Runtime, ipcm: &IpcManagerClient<&'static Runtime>) -> String {
    let Ok(ep) = ipcm.create_endpoint() else { return "no endpoint".into() };
    let mut minted = Vec::new();
    let why = loop {
        match ipc::mint(rt, ep, echo::INTERFACE_ID, 1) {
            Ok(c) => minted.push(c),
            Err(e) => break name(&e),
        }
        if minted.len() > 100 {
            break "never refused".into();
        }
    };
    for c in minted {
        let _ = rt.release(c);
    }
    let _ = rt.release(ep);
    why
}

/// Starts threads that wait forever until one is refused.
fn fill_threads(ipcm: &IpcManagerClient<&'static Runtime>) -> String {
    let Ok(n) = ipcm.create_notification() else { return "no notification".into() };
    let mut started = 0;
    loop {
        let spawned = capos_rt::thread::spawn(move || {
            let rt = capos_rt::runtime();
            let _ = NotificationClient::new(rt, n).wait(1 << 63, u64::MAX);
        });
        match spawned {
            Ok(h) => {
                core::mem::forget(h);
                started += 1;
            }
            Err(e) => {
                return match e.transport() {
                    Some(t) => t.name().to_string(),
                    None => format!("{e}"),
                }
            }
        }
        if started > 40 {
            return "never refused".into();
        }
    }
}

/// Starts `exhaust sleeper` children until one is refused; kills them.
fn fill_children(rt: &'static Runtime, spawner: u64, timer: u64) -> String {
    let spawner = ProcessSpawnerClient::new(rt, spawner);
    let grants = [Grant { name: "timer".to_string(), cap: timer }];
    let mut children = Vec::new();
    let why = loop {
        match spawner.spawn("exhaust", &["sleeper"], &grants) {
            Ok(h) => children.push(h),
            Err(e) => break name(&e),
        }
        if children.len() > 64 {
            break "never refused".into();
        }
    };
    for h in children {
        let child = ProcessHandleClient::new(rt, h);
        let _ = child.kill();
        let _ = child.wait();
        let _ = rt.release(h);
    }
    why
}

fn sleeper(rt: &'static Runtime) -> i64 {
    if let Some(timer) = rt.cap("timer") {
        let _ = TimerClient::new(rt, timer.cap).sleep(u64::MAX / 2);
    }
    0
}

// --- the driver ------------------------------------------------------------

fn driver(rt: &'static Runtime) -> i64 {
    let caps = ["console", "spawner", "sysinfo", "timer", "ipc", "vm", "threads"];
    let mut held = Vec::new();
    for c in caps {
        match rt.cap(c) {
            Some(r) => held.push(r.cap),
            None => {
                println!(rt, "exhaust: the driver holds no `{c}` cap");
                return 2;
            }
        }
    }
    let [console, spawner_cap, sysinfo, timer, ipc_cap, vm, threads] = held[..] else { return 2 };
    let spawner = ProcessSpawnerClient::new(rt, spawner_cap);
    let sysinfo = SystemInfoClient::new(rt, sysinfo);
    let timer_c = TimerClient::new(rt, timer);

    // The neighbour: echo-server, and an Echo cap to call it with.
    let Ok(ep) = ipc::create_endpoint(rt, ipc_cap) else { return 3 };
    let Ok(client) = ipc::mint(rt, ep, echo::INTERFACE_ID, CLIENT_COOKIE) else { return 3 };
    let grant = |name: &str, cap: u64| Grant { name: name.to_string(), cap };
    let Ok(server) =
        spawner.spawn("echo-server", &[], &[grant("console", console), grant("endpoint", ep)])
    else {
        println!(rt, "exhaust: cannot start echo-server");
        return 3;
    };
    let _ = rt.release(ep);
    let echo_c = EchoClient::new(rt, client);
    let echo_ok = || matches!(echo_c.echo(b"ping").as_deref(), Ok(b"ping"));
    if !echo_ok() {
        println!(rt, "exhaust: echo-server does not answer");
        return 3;
    }

    let grants = [
        grant("console", console),
        grant("vm", vm),
        grant("ipc", ipc_cap),
        grant("spawner", spawner_cap),
        grant("timer", timer),
        grant("threads", threads),
    ];
    // A profile larger than the driver has left is refused.
    let too_big = ResourceProfile { frames: 1 << 40, ..SMALL };
    let refused = spawner.spawn_limited("exhaust", &["hog"], &grants, &too_big);
    let got = refused.map(|_| "ok".to_string()).unwrap_or_else(|e| name(&e));
    let mut report = Report { rt, verbose: true, failures: 0 };
    report.check("a hog asking for 2^40 frames", &got, "QuotaExceeded");
    let over = ResourceProfile { threads: 33, ..SMALL };
    let got = spawner.spawn_limited("exhaust", &["hog"], &grants, &over).map(|_| "ok".to_string());
    let got = got.unwrap_or_else(|e| name(&e));
    report.check("a hog asking for 33 threads", got.split(" (").next().unwrap_or(""), "AppError 2");

    // The first round (verbose): the default frames of a started program,
    // the small hog's other limits.
    let mut echoes = 0u64;
    let mut round = |profile: Option<&ResourceProfile>, args: &[&str]| -> Result<i64, String> {
        let h = match profile {
            Some(p) => spawner.spawn_limited("exhaust", args, &grants, p),
            None => spawner.spawn("exhaust", args, &grants),
        }
        .map_err(|e| format!("spawn: {}", name(&e)))?;
        let echoes = &mut echoes;
        // Wait for the hog while calling the neighbour.
        let handle = ProcessHandleClient::new(rt, h);
        let code = loop {
            if !echo_ok() {
                return Err("echo-server stopped answering".into());
            }
            *echoes += 1;
            if let Ok(status) = handle.status() {
                if status.exited {
                    break status.exit_code;
                }
            }
        };
        let _ = rt.release(h);
        if !echo_ok() {
            return Err("echo-server stopped answering after the hog".into());
        }
        Ok(code)
    };
    let first = ResourceProfile { frames: 0, ..SMALL };
    match round(Some(&first), &["hog", "verbose"]) {
        Ok(0) => {}
        Ok(c) => {
            println!(rt, "exhaust: the default-limits hog ended with code {c}");
            report.failures += 1;
        }
        Err(e) => {
            println!(rt, "exhaust: {e}");
            return 4;
        }
    }
    // Ten small rounds more, so the kernel's queues and tables reach their
    // working size before the first reading.
    for _ in 0..10 {
        if round(Some(&SMALL), &["hog"]) != Ok(0) {
            println!(rt, "exhaust: a warm-up round failed");
            return 4;
        }
    }
    let reading = || {
        let _ = timer_c.sleep(20_000_000);
        sysinfo.info().map(|i| (i.free_memory_bytes / 4096, i.kernel_heap_used_bytes))
    };
    let Ok((frames0, heap0)) = reading() else { return 5 };
    println!(rt, "exhaust: before: {frames0} free frames, kernel heap {heap0} bytes in use");
    for i in 0..ROUNDS {
        match round(Some(&SMALL), &["hog"]) {
            Ok(0) => {}
            Ok(c) => {
                println!(rt, "exhaust: round {i}: the hog ended with code {c}");
                report.failures += 1;
                break;
            }
            Err(e) => {
                println!(rt, "exhaust: round {i}: {e}");
                return 4;
            }
        }
    }
    // Stacks of dead threads are freed a moment after their exit is
    // reported: let the figures settle.
    let mut after = (0, 0);
    for _ in 0..100 {
        let Ok(r) = reading() else { return 5 };
        after = r;
        if after == (frames0, heap0) {
            break;
        }
    }
    println!(
        rt,
        "exhaust: after {ROUNDS} rounds: {} free frames, kernel heap {} bytes in use",
        after.0,
        after.1
    );
    if after != (frames0, heap0) {
        println!(
            rt,
            "exhaust: lost {} frames and {} heap bytes",
            frames0 as i64 - after.0 as i64,
            heap0 as i64 - after.1 as i64
        );
        report.failures += 1;
    } else {
        println!(rt, "exhaust: no frame and no heap byte lost");
    }
    println!(rt, "exhaust: echo-server answered {echoes} calls while the hogs ran");
    let _ = ProcessHandleClient::new(rt, server).kill();
    if report.failures == 0 {
        println!(rt, "exhaust: every refusal was named");
        0
    } else {
        println!(rt, "exhaust: {} case(s) went wrong", report.failures);
        1
    }
}
