//! sharedbuf: proves `SharedBuffer`: a producer streams 100 MiB to a
//! consumer process through a shared buffer with the ring convention of
//! `capos_lib::shared_ring` (a checksum per chunk, a total the consumer
//! verifies), then revokes the buffer mid-stream: the consumer's next call
//! fails with Revoked, and the buffer's frames come back. Also the refused
//! cases: bad sizes, a writable map or a revoke through a read-only cap, an
//! unknown unmap address, too many mappings, calls after revocation, a
//! buffer over the creator's quota, a holder that touches its mapping
//! after the revocation (ended by the page fault, nothing else harmed).
//!
//! Caps: `console`, `vm`, `ipc`, `spawner`, `timer`, `sysinfo`.
//!
//! The driver (the producer) starts itself as `consumer`, with a limited
//! profile, granting `console`, `timer`, `vm` and a client cap of an
//! endpoint it serves. The consumer makes its tail page, sends its
//! read-only cap in a CALL on that cap; the producer answers with the data
//! buffer's read-only cap and the Notification both use. Before that it
//! starts itself as `toucher`, which maps a read-only cap of a page, and
//! reads it again after the revocation: the page fault ends it.
//!
//! Output: one `sharedbuf: <case>: <result>` line per check (a wrong result
//! is printed as `sharedbuf: FAILED ...`), the consumer's lines prefixed
//! `sharedbuf: consumer:`, then `sharedbuf: all <n> checks passed` (exit
//! code 0) or `sharedbuf: <m> of <n> checks FAILED` (exit code 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use cap_programs::Checks;
use capos_lib::shared_ring::{
    checksum, combine, BIT_DATA, BIT_SPACE, BIT_STOP, BIT_STOPPED, CHECKSUM_SEED, FLAG_END,
};
use capos_rt::abi::TransportError;
use capos_rt::schema::{
    shared_buffer, CallError, Grant, IpcManagerClient, NotificationClient, ProcessHandleClient,
    ProcessSpawnerClient, ResourceProfile, SharedBufferClient, SystemInfoClient, TimerClient,
    VirtualMemoryClient,
};
use capos_rt::shared::{Consumer, Producer, SharedBuffer};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

/// Slots of the ring.
const SLOTS: u32 = 16;
/// Bytes per slot (one chunk).
const SLOT_BYTES: u32 = 64 * 1024;
/// The data buffer: a header page and the slots.
const DATA_BYTES: u64 = 4096 + SLOTS as u64 * SLOT_BYTES as u64;
/// What the first phase streams.
const STREAM_BYTES: u64 = 100 * 1024 * 1024;
/// Chunks the second phase sends before the revocation.
const SECOND_CHUNKS: u32 = 5;
/// The buffer is revoked (the proof's own bit: the consumer waits for it
/// before it calls the cap, so its call comes after the revocation).
const BIT_REVOKED: u64 = 1 << 4;
/// The consumer's frame limit (its own memory; the data buffer is the
/// producer's).
const CONSUMER_FRAMES: u64 = 2048;
/// A wait without a deadline.
const FOREVER: u64 = u64::MAX;
/// Application error codes of SharedBuffer.
const INVALID_ARGUMENT: u32 = 2;
const NOT_FOUND: u32 = 1;
const EXHAUSTED: u32 = 4;
const DENIED: u32 = 6;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    match args.as_slice() {
        ["consumer"] => consumer(rt),
        ["toucher"] => toucher(rt),
        _ => producer(rt),
    }
}

/// An error as the proof prints it.
fn name(e: &CallError) -> String {
    match e {
        CallError::Transport(status) => TransportError::from_u32(*status)
            .map(TransportError::name)
            .unwrap_or("unknown status")
            .to_string(),
        CallError::Exception(e) => format!("AppError (code {})", e.code),
        e => format!("client error ({e})"),
    }
}

fn outcome<T: core::fmt::Debug>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => name(e),
    }
}

fn is_app(r: &Result<impl Sized, CallError>, code: u32) -> bool {
    matches!(r, Err(CallError::Exception(e)) if e.code == code)
}

fn is_transport(r: &Result<impl Sized, CallError>, err: TransportError) -> bool {
    matches!(r, Err(CallError::Transport(s)) if *s == err.code())
}

/// The pattern of chunk `n`: 64-bit words from a counter, mixed.
fn fill(chunk: &mut [u8], n: u64) {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for w in chunk.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
}

fn free_bytes(sysinfo: &SystemInfoClient<&Runtime>) -> u64 {
    sysinfo.info().map(|i| i.free_memory_bytes).unwrap_or(0)
}

/// Free memory once it stops changing: a child that was just waited for
/// may still be giving its frames back (its last thread is reaped after
/// the exit is reported). Two reads 10 ms apart must agree (at most 100
/// tries).
fn settled_free_bytes(sysinfo: &SystemInfoClient<&Runtime>, timer: &TimerClient<&Runtime>) -> u64 {
    let mut last = free_bytes(sysinfo);
    for _ in 0..100 {
        let _ = timer.sleep(10_000_000);
        let now = free_bytes(sysinfo);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn producer(rt: &'static Runtime) -> i64 {
    let (Some(_), Some(vm), Some(ipc), Some(spawner), Some(timer), Some(sysinfo)) = (
        rt.cap("console"),
        rt.cap("vm"),
        rt.cap("ipc"),
        rt.cap("spawner"),
        rt.cap("timer"),
        rt.cap("sysinfo"),
    ) else {
        println!(rt, "sharedbuf: needs console, vm, ipc, spawner, timer and sysinfo caps");
        return 2;
    };
    let mut checks = Checks::new(rt, "sharedbuf");
    let vmc = VirtualMemoryClient::new(rt, vm.cap);
    let sysinfo = SystemInfoClient::new(rt, sysinfo.cap);

    // Sizes.
    let sizes: [(u64, &str); 4] = [
        (0, "0"),
        (4097, "4097"),
        (256 * 1024 * 1024 + 4096, "256 MiB + 4 KiB"),
        (1 << 63, "2^63"),
    ];
    let mut lines = Vec::new();
    let mut all = true;
    for (bytes, label) in sizes {
        let r = vmc.create_shared_buffer(bytes);
        all &= is_app(&r, INVALID_ARGUMENT);
        lines.push(format!("{label}: {}", outcome(&r)));
    }
    checks.check(all, format!("createSharedBuffer of bad sizes: {}", lines.join(", ")));

    // A small buffer: attenuation, unknown unmap, the mapping limit.
    match vmc.create_shared_buffer(4096) {
        Ok(cap) => small_buffer_cases(rt, &mut checks, cap),
        Err(e) => checks.check(false, format!("createSharedBuffer(4096): {}", name(&e))),
    }

    // A holder that touches its mapping after the revocation.
    revoked_touch(rt, &mut checks, &vmc, spawner.cap);

    // The stream.
    let free_before = settled_free_bytes(&sysinfo, &TimerClient::new(rt, timer.cap));
    let data = match SharedBuffer::create(rt, vm.cap, DATA_BYTES) {
        Ok(d) => d,
        Err(e) => {
            checks.check(false, format!("createSharedBuffer({DATA_BYTES}): {}", name(&e)));
            return finish(rt, &checks);
        }
    };
    let free_held = free_bytes(&sysinfo);
    let buffer_frames = DATA_BYTES / 4096 + 1; // and one index frame
    checks.check(
        free_before.saturating_sub(free_held) / 4096 >= buffer_frames,
        format!(
            "data buffer of {} KiB made: free memory down by at least its {buffer_frames} frames",
            DATA_BYTES / 1024
        ),
    );
    let ipcc = IpcManagerClient::new(rt, ipc.cap);
    let (Ok(n), Ok(endpoint)) =
        (ipcc.create_notification(), capos_rt::ipc::create_endpoint(rt, ipc.cap))
    else {
        checks.check(false, "notification or endpoint not made".to_string());
        return finish(rt, &checks);
    };
    let Ok(client) = capos_rt::ipc::mint(rt, endpoint, shared_buffer::INTERFACE_ID, 1) else {
        checks.check(false, "mint failed".to_string());
        return finish(rt, &checks);
    };
    let grants = [
        Grant { name: "console".into(), cap: rt.cap("console").map_or(0, |c| c.cap) },
        Grant { name: "timer".into(), cap: timer.cap },
        Grant { name: "vm".into(), cap: vm.cap },
        Grant { name: "producer".into(), cap: client },
    ];
    let profile = ResourceProfile {
        frames: CONSUMER_FRAMES,
        kernel_bytes: 0,
        threads: 0,
        caps: 0,
        open_calls: 0,
    };
    let child = match ProcessSpawnerClient::new(rt, spawner.cap).spawn_limited(
        "sharedbuf",
        &["consumer"],
        &grants,
        &profile,
    ) {
        Ok(h) => ProcessHandleClient::new(rt, h),
        Err(e) => {
            checks.check(false, format!("spawn of the consumer failed: {}", name(&e)));
            return finish(rt, &checks);
        }
    };
    // From here on the consumer prints while the producer works: the
    // producer's lines wait until the consumer has exited, so the order of
    // the output is fixed.
    let mut later = Later(Vec::new());
    let _ = rt.release(client);

    // The consumer's CALL brings its tail page (read-only).
    let request = match capos_rt::ipc::recv(rt, endpoint) {
        Ok(r) => r,
        Err(e) => {
            later.check(false, format!("recv of the consumer's call: {}", e.name()));
            return later.finish(rt, &mut checks);
        }
    };
    let tail = match request.caps.first().map(|&c| SharedBuffer::open(rt, c)) {
        Some(Ok(t)) => t,
        _ => {
            later.check(false, "the consumer's call carried no tail buffer".to_string());
            return later.finish(rt, &mut checks);
        }
    };
    let (Ok(data_map), Ok(tail_map)) = (data.map(true), tail.map(false)) else {
        later.check(false, "mapping the data or tail buffer failed".to_string());
        return later.finish(rt, &mut checks);
    };
    let mut tx = match Producer::new(data_map, tail_map, SLOTS, SLOT_BYTES) {
        Ok(p) => p,
        Err(e) => {
            later.check(false, format!("ring layout: {e}"));
            return later.finish(rt, &mut checks);
        }
    };
    let for_consumer = match data.client().read_only() {
        Ok(c) => c,
        Err(e) => {
            later.check(false, format!("readOnly: {}", name(&e)));
            return later.finish(rt, &mut checks);
        }
    };
    let replied = capos_rt::ipc::reply_with_caps(
        rt,
        endpoint,
        request.call_id(),
        &[],
        &[(for_consumer, true), (n, false)],
    );
    later.check(
        replied.is_ok(),
        format!(
            "the consumer's tail page arrived by CALL; answered with the data buffer's read-only \
             cap and the notification: {}",
            replied.map_or_else(|e| e.name().to_string(), |()| "ok".to_string())
        ),
    );
    let notification = NotificationClient::new(rt, n);

    // Phase 1: 100 MiB.
    let chunks = STREAM_BYTES / SLOT_BYTES as u64;
    let mut total = CHECKSUM_SEED;
    let mut ok = true;
    for c in 0..chunks + 1 {
        let slot = loop {
            match tx.slot() {
                Ok(Some(_)) => break true,
                Ok(None) => {
                    if notification.wait(BIT_SPACE, FOREVER).is_err() {
                        break false;
                    }
                }
                Err(_) => break false,
            }
        };
        if !slot {
            ok = false;
            break;
        }
        if c == chunks {
            tx.publish(0, FLAG_END, total);
        } else if let Ok(Some(s)) = tx.slot() {
            fill(s, c);
            let sum = checksum(s);
            total = combine(total, sum);
            tx.publish(SLOT_BYTES, 0, sum);
        }
        let _ = notification.signal(BIT_DATA);
    }
    later.check(
        ok,
        format!(
            "producer: streamed {} MiB in {chunks} chunks of {} KiB, total checksum {total:#018x}",
            STREAM_BYTES >> 20,
            SLOT_BYTES / 1024
        ),
    );

    // Phase 2: a few chunks, then the revocation.
    for c in 0..SECOND_CHUNKS as u64 {
        while matches!(tx.slot(), Ok(None)) {
            let _ = notification.wait(BIT_SPACE, FOREVER);
        }
        if let Ok(Some(s)) = tx.slot() {
            fill(s, 1_000_000 + c);
            let sum = checksum(s);
            tx.publish(SLOT_BYTES, 0, sum);
        }
        let _ = notification.signal(BIT_DATA);
    }
    while tx.in_flight().is_ok_and(|n| n > 0) {
        let _ = notification.wait(BIT_SPACE, 100_000_000);
    }
    let _ = notification.signal(BIT_STOP);
    let stopped = notification.wait(BIT_STOPPED, 5_000_000_000);
    // The mapping goes with the revocation: `tx` is not used after it.
    let (_gone, tail_map) = tx.into_mappings();
    let free_mapped = free_bytes(&sysinfo);
    let revoked = data.client().revoke();
    let free_after = free_bytes(&sysinfo);
    let _ = notification.signal(BIT_REVOKED);
    let freed = free_after.saturating_sub(free_mapped) / 4096;
    later.check(
        stopped.is_ok() && revoked.is_ok() && freed >= buffer_frames,
        format!(
            "revoke mid-stream after {SECOND_CHUNKS} more chunks: {}; free memory up by {freed} \
             frames, at least the buffer's {buffer_frames}",
            outcome(&revoked)
        ),
    );
    let info = data.client().info();
    let map = data.client().map(true);
    let again = data.client().revoke();
    later.check(
        is_transport(&info, TransportError::Revoked)
            && is_transport(&map, TransportError::Revoked)
            && is_transport(&again, TransportError::Revoked),
        format!(
            "the creator's cap after revoke: info {}, map {}, revoke {}",
            outcome(&info),
            outcome(&map),
            outcome(&again)
        ),
    );
    let code = child.wait();
    later.check(
        matches!(code, Ok(0)),
        format!("consumer exited with code {}", code.map_or_else(|e| name(&e), |c| c.to_string())),
    );

    // The consumer's exit unmapped its own mappings, not the frames of its
    // tail page, which this process still maps.
    let final_tail = tail_map.atomic_u32(0).load(core::sync::atomic::Ordering::Acquire);
    let info = tail.client().info();
    let free_held = free_bytes(&sysinfo);
    let unmapped = tail.unmap(tail_map);
    let released = rt.release(tail.client().cap_id());
    let freed = free_bytes(&sysinfo).saturating_sub(free_held) / 4096;
    let sent = chunks as u32 + 1 + SECOND_CHUNKS;
    later.check(
        final_tail == sent
            && matches!(&info, Ok(i) if i.mappings == 1)
            && unmapped.is_ok()
            && released.is_ok()
            && freed >= 2,
        format!(
            "after the consumer's exit its tail page is still mapped here: tail reads {final_tail} \
             (of {sent} entries sent), info shows {} mapping(s); unmapped and released: free \
             memory up by {freed} frames (its page and index frame)",
            info.map_or(0, |i| i.mappings)
        ),
    );
    later.finish(rt, &mut checks)
}

/// The word the toucher finds in its mapping before the revocation.
const TOUCH_WORD: u64 = 0x0770_0770;
/// Start and end of the shared-buffer window (where the fault must be).
const SHARED_WINDOW: core::ops::Range<u64> = 0x2000_0000_0000..0x3000_0000_0000;

/// A child maps a read-only cap of a one-page buffer, reads it, reports;
/// the buffer is revoked; the child reads its old mapping again and is
/// ended by the page fault, which the parent sees in its status.
fn revoked_touch(
    rt: &'static Runtime,
    checks: &mut Checks<'_>,
    vmc: &VirtualMemoryClient<&'static Runtime>,
    spawner: u64,
) {
    let Ok(buf) = vmc.create_shared_buffer(4096).map(|c| SharedBufferClient::new(rt, c)) else {
        return checks.check(false, "toucher: createSharedBuffer failed".to_string());
    };
    let (Ok(addr), Ok(ro), Ok(n)) = (
        buf.map(true),
        buf.read_only(),
        rt.cap("ipc").map_or(Err(CallError::Transport(1)), |ipc| {
            IpcManagerClient::new(rt, ipc.cap).create_notification()
        }),
    ) else {
        return checks.check(false, "toucher: map, readOnly or notification failed".to_string());
    };
    capos_rt::probe::write_u64(addr, TOUCH_WORD);
    let grants =
        [Grant { name: "buffer".into(), cap: ro }, Grant { name: "notification".into(), cap: n }];
    let child =
        match ProcessSpawnerClient::new(rt, spawner).spawn("sharedbuf", &["toucher"], &grants) {
            Ok(h) => ProcessHandleClient::new(rt, h),
            Err(e) => return checks.check(false, format!("toucher: spawn: {}", name(&e))),
        };
    let _ = rt.release(ro);
    let notification = NotificationClient::new(rt, n);
    let mapped = notification.wait(0b1, 5_000_000_000);
    let revoked = buf.revoke();
    let _ = notification.signal(0b10);
    let code = child.wait();
    let status = child.status();
    let in_window = matches!(&status, Ok(st) if st.cause == "page fault" && SHARED_WINDOW.contains(&st.fault_address));
    checks.check(
        matches!(mapped, Ok(0b1)) && revoked.is_ok() && matches!(code, Ok(-270)) && in_window,
        format!(
            "a holder that read {TOUCH_WORD:#x} through its mapping, then touched it after the \
             revocation: exit code {}, cause {}, fault address in the shared-buffer window: \
             {in_window}",
            code.map_or_else(|e| name(&e), |c| c.to_string()),
            status.map_or_else(|e| name(&e), |st| st.cause)
        ),
    );
    let _ = rt.release(child.cap_id());
    let _ = rt.release(n);
    let _ = rt.release(buf.cap_id());
}

/// The toucher child: maps `buffer`, checks the word, signals bit 0 of
/// `notification`, waits for bit 1 (the buffer revoked), then reads the
/// old mapping: the page fault ends it (a return means the read worked,
/// which is wrong).
fn toucher(rt: &'static Runtime) -> i64 {
    let (Some(buffer), Some(n)) = (rt.cap("buffer"), rt.cap("notification")) else { return 2 };
    let buf = SharedBufferClient::new(rt, buffer.cap);
    let notification = NotificationClient::new(rt, n.cap);
    let Ok(addr) = buf.map(false) else { return 3 };
    if capos_rt::probe::read_u64(addr) != TOUCH_WORD {
        return 4;
    }
    if notification.signal(0b1).is_err() || notification.wait(0b10, 5_000_000_000).is_err() {
        return 5;
    }
    let _ = capos_rt::probe::read_u64(addr);
    6
}

/// Attenuation, unknown unmap, the mapping limit, on a one-page buffer.
fn small_buffer_cases(rt: &'static Runtime, checks: &mut Checks<'_>, cap: u64) {
    let buf = SharedBufferClient::new(rt, cap);
    let ro = match buf.read_only() {
        Ok(c) => SharedBufferClient::new(rt, c),
        Err(e) => return checks.check(false, format!("readOnly: {}", name(&e))),
    };
    let info = ro.info();
    let wmap = ro.map(true);
    let rev = ro.revoke();
    checks.check(
        matches!(&info, Ok(i) if i.bytes == 4096 && !i.writable)
            && is_app(&wmap, DENIED)
            && is_app(&rev, DENIED),
        format!(
            "read-only cap: info {}, writable map {}, revoke {}",
            outcome(&info),
            outcome(&wmap),
            outcome(&rev)
        ),
    );
    let bogus = buf.unmap(0x2000_dead_0000);
    checks.check(
        is_app(&bogus, NOT_FOUND),
        format!("unmap of an unknown address: {}", outcome(&bogus)),
    );
    let mut addrs = Vec::new();
    let mut last = Ok(0);
    for i in 0..20 {
        let r = if i % 2 == 0 { buf.map(true) } else { ro.map(false) };
        match r {
            Ok(a) => addrs.push(a),
            Err(e) => {
                last = Err(e);
                break;
            }
        }
    }
    let info = buf.info();
    // Written through one mapping, read through another.
    if let (Some(&w), Some(&r)) = (addrs.first(), addrs.get(1)) {
        capos_rt::probe::write_u64(w, 0x5eed);
        let seen = capos_rt::probe::read_u64(r);
        checks.check(
            seen == 0x5eed,
            format!("a word written through one mapping reads back {seen:#x} through another"),
        );
    }
    let mut unmapped = true;
    for (i, &a) in addrs.iter().enumerate() {
        let r = if i % 2 == 0 { buf.unmap(a) } else { ro.unmap(a) };
        unmapped &= r.is_ok();
    }
    checks.check(
        addrs.len() == 16
            && is_app(&last, EXHAUSTED)
            && matches!(&info, Ok(i) if i.mappings == 16)
            && unmapped,
        format!(
            "{} mappings made, the next: {}; info shows {} mappings; all unmapped: {unmapped}",
            addrs.len(),
            outcome(&last),
            info.map_or(0, |i| i.mappings)
        ),
    );
    let rev = buf.revoke();
    let after = ro.map(false);
    let info = ro.info();
    checks.check(
        rev.is_ok()
            && is_transport(&after, TransportError::Revoked)
            && is_transport(&info, TransportError::Revoked),
        format!(
            "revoke: {}; then the read-only cap: map {}, info {}",
            outcome(&rev),
            outcome(&after),
            outcome(&info)
        ),
    );
    let _ = rt.release(ro.cap_id());
    let _ = rt.release(cap);
}

/// Checks whose lines are printed later.
struct Later(Vec<(bool, String)>);

impl Later {
    fn check(&mut self, ok: bool, line: String) {
        self.0.push((ok, line));
    }

    /// Prints the held checks, then the summary.
    fn finish(self, rt: &Runtime, checks: &mut Checks<'_>) -> i64 {
        for (ok, line) in self.0 {
            checks.check(ok, line);
        }
        finish(rt, checks)
    }
}

fn finish(rt: &Runtime, checks: &Checks<'_>) -> i64 {
    let total = checks.passed + checks.failed;
    if checks.failed == 0 {
        println!(rt, "sharedbuf: all {total} checks passed");
        0
    } else {
        println!(rt, "sharedbuf: {} of {total} checks FAILED", checks.failed);
        1
    }
}

/// The consumer: exit code 0 when every check passed.
fn consumer(rt: &'static Runtime) -> i64 {
    let (Some(timer), Some(vm), Some(producer)) =
        (rt.cap("timer"), rt.cap("vm"), rt.cap("producer"))
    else {
        println!(rt, "sharedbuf: consumer: needs timer, vm and producer caps");
        return 2;
    };
    let mut checks = Checks::new(rt, "sharedbuf: consumer");
    let timer = TimerClient::new(rt, timer.cap);

    // Over quota: the consumer's limit is CONSUMER_FRAMES.
    let big = VirtualMemoryClient::new(rt, vm.cap).create_shared_buffer(32 * 1024 * 1024);
    checks.check(
        is_transport(&big, TransportError::QuotaExceeded),
        format!(
            "createSharedBuffer(32 MiB) with a limit of {CONSUMER_FRAMES} frames: {}",
            outcome(&big)
        ),
    );

    let tail = match SharedBuffer::create(rt, vm.cap, 4096) {
        Ok(t) => t,
        Err(e) => {
            checks.check(false, format!("tail page: {}", name(&e)));
            return code(&checks);
        }
    };
    let tail_map = match tail.map(true) {
        Ok(m) => m,
        Err(e) => {
            checks.check(false, format!("tail map: {}", name(&e)));
            return code(&checks);
        }
    };
    let Ok(tail_ro) = tail.client().read_only() else {
        checks.check(false, "tail readOnly failed".to_string());
        return code(&checks);
    };
    let reply =
        rt.call_sending(producer.cap, shared_buffer::INTERFACE_ID, 0, &[], &[(tail_ro, true)]);
    let caps = match reply {
        Ok(r) if r.caps.len() == 2 => r.caps,
        Ok(r) => {
            checks.check(false, format!("the producer answered with {} caps", r.caps.len()));
            return code(&checks);
        }
        Err(e) => {
            checks.check(false, format!("call to the producer: {}", name(&e)));
            return code(&checks);
        }
    };
    let data = match SharedBuffer::open(rt, caps[0]) {
        Ok(d) => d,
        Err(e) => {
            checks.check(false, format!("data buffer info: {}", name(&e)));
            return code(&checks);
        }
    };
    let notification = NotificationClient::new(rt, caps[1]);
    let info = data.client().info();
    let wmap = data.client().map(true);
    let rev = data.client().revoke();
    checks.check(
        matches!(&info, Ok(i) if !i.writable && i.bytes == DATA_BYTES)
            && is_app(&wmap, DENIED)
            && is_app(&rev, DENIED),
        format!(
            "the data buffer arrived read-only ({} KiB): writable map {}, revoke {}",
            DATA_BYTES / 1024,
            outcome(&wmap),
            outcome(&rev)
        ),
    );
    let data_map = match data.map(false) {
        Ok(m) => m,
        Err(e) => {
            checks.check(false, format!("data map: {}", name(&e)));
            return code(&checks);
        }
    };
    let mut rx = match Consumer::new(data_map, tail_map) {
        Ok(c) => c,
        Err(e) => {
            checks.check(false, format!("ring header: {e}"));
            return code(&checks);
        }
    };

    let mut out = vec![0u8; SLOT_BYTES as usize];
    let start = timer.now().unwrap_or(0);
    let mut total = CHECKSUM_SEED;
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    let mut bad = 0u64;
    let mut end = None;
    let mut second = 0u32;
    let mut revoked_seen = false;
    'outer: loop {
        // Drain everything published, then wait.
        loop {
            match rx.pop(&mut out) {
                Ok(Some(d)) if d.flags & FLAG_END != 0 => {
                    end = Some((d.checksum, timer.now().unwrap_or(0)));
                }
                Ok(Some(d)) => {
                    let sum = checksum(&out[..d.len as usize]);
                    if end.is_none() {
                        if sum != d.checksum {
                            bad += 1;
                        }
                        total = combine(total, sum);
                        bytes += d.len as u64;
                        chunks += 1;
                    } else if sum == d.checksum {
                        second += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    checks.check(false, format!("ring: {e}"));
                    break 'outer;
                }
            }
        }
        let _ = notification.signal(BIT_SPACE);
        match notification.wait(BIT_DATA | BIT_STOP, FOREVER) {
            Ok(bits) if bits & BIT_STOP != 0 => {
                // Off the mapping from here on; the next touch would fault.
                let _ = notification.signal(BIT_STOPPED);
                revoked_seen = notification.wait(BIT_REVOKED, 5_000_000_000).is_ok();
                break;
            }
            Ok(_) => {}
            Err(e) => {
                checks.check(false, format!("wait: {}", name(&e)));
                break;
            }
        }
    }
    match end {
        Some((sent, at)) => {
            let ns = at.saturating_sub(start).max(1);
            let mib_s = (bytes as u128 * 1_000_000_000 / ns as u128 / (1024 * 1024)) as u64;
            checks.check(
                bad == 0 && sent == total && bytes == STREAM_BYTES,
                format!(
                    "received {} MiB in {chunks} chunks, {bad} bad chunk checksums, total \
                     checksum {total:#018x} {} the producer's",
                    bytes >> 20,
                    if sent == total { "matches" } else { "does NOT match" }
                ),
            );
            println!(
                rt,
                "sharedbuf: consumer: throughput {mib_s} MiB/s of guest time ({} ms)",
                ns / 1_000_000
            );
        }
        None => checks.check(false, "the stream never ended".to_string()),
    }
    let info = data.client().info();
    let map = data.client().map(false);
    checks.check(
        revoked_seen
            && second == SECOND_CHUNKS
            && is_transport(&info, TransportError::Revoked)
            && is_transport(&map, TransportError::Revoked),
        format!(
            "second stream: {second} chunks taken, then the producer revoked: info {}, map {}",
            outcome(&info),
            outcome(&map)
        ),
    );
    let _gone = rx.into_mappings();
    code(&checks)
}

fn code(checks: &Checks<'_>) -> i64 {
    if checks.failed == 0 {
        0
    } else {
        1
    }
}
