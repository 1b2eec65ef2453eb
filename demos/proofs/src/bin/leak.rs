//! leak: 1,000 spawn/wait/release cycles of `nop` must leave the free-frame
//! count and the kernel heap use exactly where they started; so must 1,000
//! spawn/join cycles of a thread (when the program holds `threads`), and,
//! when it holds `ipc`:
//!
//! - 1,000 children (`leak sleeper`) that exit with 10 `Timer.sleepUntil`
//!   calls pending (5 far in the future, 5 at `u64::MAX`) and a
//!   `Notification.wait` with a far timeout pending on a notification the
//!   parent holds;
//! - 1,000 children (`leak selfref`) that exit with an endpoint whose only
//!   serving cap they moved into a call queued on that same endpoint;
//! - 5,000 IPC cycles in this process: an endpoint and a client cap, a
//!   notification moved and a revocable console copied with a CALL, the
//!   RECV taking both, a signal, the revocation, a RETURN moving a cap back,
//!   and every cap released.
//!
//! When it also holds `vm`:
//!
//! - 1,000 shared-buffer cycles in this process: a 4-page buffer mapped
//!   writable, a read-only cap mapped too, a word written through one
//!   mapping and read through the other; then either both unmapped and both
//!   caps released (the last holder lets go), or the buffer revoked with
//!   both mappings in place and the caps released;
//! - 200 children (`leak mapper`) that map a read-only cap of such a buffer
//!   and exit holding the mapping, the parent then revoking the buffer or
//!   unmapping and releasing its own.
//!
//! Ten warm-up cycles come first (the kernel's queues and tables reach their
//! working size). A child's kernel stack is freed just after it leaves its
//! CPU, which can be a moment after its exit is reported, so the final
//! reading is retried for up to two seconds until it settles.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use capos_rt::abi::{Sqe, STATUS_OK};
use capos_rt::schema::capos_capnp::{console, notification, timer};
use capos_rt::schema::{
    self, ConsoleClient, Grant, IpcManagerClient, NotificationClient, ProcessHandleClient,
    ProcessSpawnerClient, RevokerClient, SharedBufferClient, SystemDescription, SystemInfoClient,
    TimerClient, VirtualMemoryClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const CYCLES: u32 = 1000;
/// IPC cycles in this process (cheaper than spawning).
const IPC_CYCLES: u32 = 5000;
/// A deadline (ns since boot) no proof run reaches, but that is queued.
const FAR: u64 = 1 << 60;

fn cycle(rt: &'static Runtime, spawner: &ProcessSpawnerClient<&'static Runtime>) -> bool {
    spawn_wait(rt, spawner, "nop", &[], &[])
}

/// Spawns `binary` with `args` and `grants`, waits for it to exit 0 and
/// releases its handle.
fn spawn_wait(
    rt: &'static Runtime,
    spawner: &ProcessSpawnerClient<&'static Runtime>,
    binary: &str,
    args: &[&str],
    grants: &[Grant],
) -> bool {
    let Ok(h) = spawner.spawn(binary, args, grants) else { return false };
    let ok = matches!(ProcessHandleClient::new(rt, h).wait(), Ok(0));
    rt.release(h).is_ok() && ok
}

/// Submits `sqe` and lets the kernel take it, without waiting for it.
fn start(rt: &Runtime, sqe: &Sqe) -> bool {
    rt.ring().submit(sqe).is_ok() && rt.ring().enter(0, 0).is_ok()
}

/// Child `sleeper`: leaves 10 sleeps and a notification wait pending, exits.
fn sleeper(rt: &'static Runtime) -> i64 {
    let (Some(timer), Some(note)) = (rt.cap("timer"), rt.cap("note")) else { return 2 };
    let mut results = vec![0u8; 64];
    for i in 0..10 {
        let deadline = if i < 5 { FAR + i } else { u64::MAX };
        let Ok(params) = schema::wire::encode::<timer::sleep_until_params::Owned>(|mut p| {
            p.set_deadline_ns(deadline);
            Ok(())
        }) else {
            return 3;
        };
        let sqe = capos_rt::ipc::call_sqe(
            timer.cap,
            timer.interface_id,
            schema::timer::method::SLEEP_UNTIL,
            &params,
            &mut results,
            rt.next_user_data(),
        );
        if !start(rt, &sqe) {
            return 4;
        }
    }
    let Ok(params) = schema::wire::encode::<notification::wait_params::Owned>(|mut p| {
        p.set_mask(1);
        p.set_timeout_ns(FAR);
        Ok(())
    }) else {
        return 3;
    };
    let sqe = capos_rt::ipc::call_sqe(
        note.cap,
        note.interface_id,
        schema::notification::method::WAIT,
        &params,
        &mut results,
        rt.next_user_data(),
    );
    if !start(rt, &sqe) {
        return 4;
    }
    0
}

/// Child `selfref`: moves its endpoint's only serving cap into a call
/// queued on that endpoint, exits.
fn selfref(rt: &'static Runtime) -> i64 {
    let Some(ipc) = rt.cap("ipc") else { return 2 };
    let Ok(ep) = capos_rt::ipc::create_endpoint(rt, ipc.cap) else { return 3 };
    let Ok(client) = capos_rt::ipc::mint(rt, ep, schema::console::INTERFACE_ID, 1) else {
        return 3;
    };
    let params =
        schema::wire::encode::<console::write_line_params::Owned>(|_| Ok(())).unwrap_or_default();
    let mut results = vec![0u8; 64];
    let descs = capos_rt::ipc::xfer_descs(&[(ep, true)]);
    let sqe = capos_rt::ipc::with_xfer(
        capos_rt::ipc::call_sqe(
            client,
            schema::console::INTERFACE_ID,
            schema::console::method::WRITE_LINE,
            &params,
            &mut results,
            rt.next_user_data(),
        ),
        &descs,
    );
    if !start(rt, &sqe) {
        return 4;
    }
    0
}

/// One IPC cycle: endpoint, client cap, a moved notification and a copied
/// revocable console sent with a CALL, taken by a RECV, a signal through
/// the received notification, the revocation, a RETURN moving the
/// notification back, and every cap released. True when each step gave
/// what it must.
fn ipc_cycle(rt: &'static Runtime, ipc: u64, console: u64) -> Option<()> {
    let ep = capos_rt::ipc::create_endpoint(rt, ipc).ok()?;
    let client = capos_rt::ipc::mint(rt, ep, schema::console::INTERFACE_ID, 3).ok()?;
    let note = IpcManagerClient::new(rt, ipc).create_notification().ok()?;
    let made =
        rt
            .call_sending(
                ipc,
                schema::ipc_manager::INTERFACE_ID,
                schema::ipc_manager::method::MAKE_REVOCABLE,
                &schema::wire::encode::<
                    schema::capos_capnp::ipc_manager::make_revocable_params::Owned,
                >(|_| Ok(()))
                .ok()?,
                &[(console, false)],
            )
            .ok()?;
    let (revoker, wrapped) = (made.cap(0).ok()?, made.cap(1).ok()?);
    let params = schema::wire::encode::<console::write_line_params::Owned>(|_| Ok(())).ok()?;
    let mut results = vec![0u8; 64];
    let descs = capos_rt::ipc::xfer_descs(&[(note, true), (wrapped, false)]);
    let call_ud = rt.next_user_data();
    let sqe = capos_rt::ipc::with_xfer(
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
    if !start(rt, &sqe) {
        return None;
    }
    let mut buf = vec![0u8; 512];
    let got = rt.call_raw(capos_rt::ipc::recv_sqe(ep, &mut buf, rt.next_user_data())).ok()?;
    if got.status != STATUS_OK || got.cap_count != 2 {
        return None;
    }
    let caps: Vec<u64> =
        capos_rt::abi::delivered_caps(&buf, got.result_len, got.cap_count)?.collect();
    NotificationClient::new(rt, caps[0]).signal(1).ok()?;
    RevokerClient::new(rt, revoker).revoke().ok()?;
    if ConsoleClient::new(rt, caps[1]).write_line("leak: revoked, must never appear").is_ok() {
        return None;
    }
    let reply = schema::wire::encode::<console::write_line_results::Owned>(|_| Ok(())).ok()?;
    let back = capos_rt::ipc::xfer_descs(&[(caps[0], true)]);
    let ret = capos_rt::ipc::with_xfer(
        capos_rt::ipc::return_sqe(ep, got.aux, STATUS_OK, &reply, rt.next_user_data()),
        &back,
    );
    let r = rt.call_raw(ret).ok()?;
    let answer = rt.wait_for(call_ud).ok()?;
    let returned = capos_rt::abi::delivered_caps(&results, answer.result_len, answer.cap_count)
        .map(|c| c.collect::<Vec<u64>>())
        .unwrap_or_default();
    let bits = returned.first().and_then(|n| NotificationClient::new(rt, *n).wait(1, 0).ok());
    for cap in returned.iter().chain(&[caps[1], wrapped, revoker, client, ep]) {
        rt.release(*cap).ok()?;
    }
    (r.status == STATUS_OK && answer.status == STATUS_OK && bits == Some(1)).then_some(())
}

/// Children that exit holding a shared mapping.
const MAPPER_CYCLES: u32 = 200;

/// One shared-buffer cycle (see the module comment); `revoke` picks the
/// ending. True when each step gave what it must.
fn shared_cycle(rt: &'static Runtime, vm: u64, revoke: bool) -> Option<()> {
    let buf = SharedBufferClient::new(
        rt,
        VirtualMemoryClient::new(rt, vm).create_shared_buffer(4 * 4096).ok()?,
    );
    let ro = SharedBufferClient::new(rt, buf.read_only().ok()?);
    let w = buf.map(true).ok()?;
    let r = ro.map(false).ok()?;
    capos_rt::probe::write_u64(w + 3 * 4096, 0xfeed);
    let seen = capos_rt::probe::read_u64(r + 3 * 4096);
    if revoke {
        buf.revoke().ok()?;
    } else {
        ro.unmap(r).ok()?;
        buf.unmap(w).ok()?;
    }
    rt.release(ro.cap_id()).ok()?;
    rt.release(buf.cap_id()).ok()?;
    (seen == 0xfeed).then_some(())
}

/// A child that exits holding a mapping of a read-only cap of a buffer.
fn mapper_cycle(
    rt: &'static Runtime,
    spawner: &ProcessSpawnerClient<&'static Runtime>,
    vm: u64,
    revoke: bool,
) -> Option<()> {
    let buf = SharedBufferClient::new(
        rt,
        VirtualMemoryClient::new(rt, vm).create_shared_buffer(4 * 4096).ok()?,
    );
    let w = buf.map(true).ok()?;
    capos_rt::probe::write_u64(w, 0xfeed);
    let ro = buf.read_only().ok()?;
    let grants = [Grant { name: "buffer".into(), cap: ro }];
    let ok = spawn_wait(rt, spawner, "leak", &["mapper"], &grants);
    rt.release(ro).ok()?;
    if revoke {
        buf.revoke().ok()?;
    } else {
        buf.unmap(w).ok()?;
    }
    rt.release(buf.cap_id()).ok()?;
    ok.then_some(())
}

/// The `mapper` child: maps `buffer`, checks the word, exits holding it.
fn mapper(rt: &'static Runtime) -> i64 {
    let Some(buffer) = rt.cap("buffer") else { return 2 };
    let Ok(addr) = SharedBufferClient::new(rt, buffer.cap).map(false) else { return 3 };
    if capos_rt::probe::read_u64(addr) == 0xfeed {
        0
    } else {
        4
    }
}

fn reading(info: &SystemDescription) -> (u64, u64) {
    (info.free_memory_bytes / 4096, info.kernel_heap_used_bytes)
}

fn thread_cycle() -> bool {
    matches!(capos_rt::thread::spawn(|| 7u32).map(|h| h.join()), Ok(Ok(7)))
}

/// Runs `cycle` 10 times to warm up, then `CYCLES` times, and compares the
/// free frames and kernel heap before and after; 0 if nothing was lost.
/// Touches most of this program's heap once. Its pages are demand-zero
/// (mapped on first touch), so a cycle that reaches heap memory for the
/// first time would otherwise show up as frames in use: this proof counts
/// what the kernel keeps, not what the program touches.
fn touch_heap() {
    for kib in [1792usize, 1536, 1024, 512] {
        let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
        if v.try_reserve_exact(kib * 1024).is_ok() {
            v.resize(kib * 1024, 1);
            core::hint::black_box(&v);
            return;
        }
    }
}

fn measure(
    rt: &'static Runtime,
    sysinfo: &SystemInfoClient<&'static Runtime>,
    timer: &TimerClient<&'static Runtime>,
    what: &str,
    cycles: u32,
    mut cycle: impl FnMut() -> bool,
) -> i64 {
    touch_heap();
    for _ in 0..10 {
        if !cycle() {
            return 3;
        }
    }
    let _ = timer.sleep(20_000_000);
    let Ok(before) = sysinfo.info() else { return 4 };
    let (frames0, heap0) = reading(&before);
    println!(rt, "leak: before: {frames0} free frames, kernel heap {heap0} bytes in use");
    for i in 0..cycles {
        if !cycle() {
            println!(rt, "leak: cycle {i} failed");
            return 5;
        }
    }
    let mut after = (0, 0);
    for _ in 0..100 {
        let Ok(info) = sysinfo.info() else { return 6 };
        after = reading(&info);
        if after == (frames0, heap0) {
            break;
        }
        let _ = timer.sleep(20_000_000);
    }
    println!(
        rt,
        "leak: after {cycles} {what} cycles: {} free frames, kernel heap {} bytes in use",
        after.0,
        after.1
    );
    if after == (frames0, heap0) {
        println!(rt, "leak: no frame and no heap byte lost");
        0
    } else {
        println!(
            rt,
            "leak: lost {} frame(s) and {} heap byte(s)",
            frames0 as i64 - after.0 as i64,
            after.1 as i64 - heap0 as i64
        );
        1
    }
}

fn main(rt: &'static Runtime) -> i64 {
    match rt.args().next() {
        Some("sleeper") => return sleeper(rt),
        Some("selfref") => return selfref(rt),
        Some("mapper") => return mapper(rt),
        Some(_) => return 2,
        None => {}
    }
    let (Some(spawner), Some(sysinfo), Some(timer)) =
        (rt.cap("spawner"), rt.cap("sysinfo"), rt.cap("timer"))
    else {
        return 2;
    };
    let timer_cap = timer.cap;
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let sysinfo = SystemInfoClient::new(rt, sysinfo.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let code = measure(rt, &sysinfo, &timer, "spawn/exit", CYCLES, || cycle(rt, &spawner));
    if code != 0 {
        return code;
    }
    if rt.cap("threads").is_some() {
        let code = measure(rt, &sysinfo, &timer, "thread spawn/join", CYCLES, thread_cycle);
        if code != 0 {
            return code;
        }
    }
    let (Some(ipc), Some(console)) = (rt.cap("ipc"), rt.cap("console")) else { return 0 };
    let Ok(note) = IpcManagerClient::new(rt, ipc.cap).create_notification() else { return 7 };
    let grants =
        [Grant { name: "timer".into(), cap: timer_cap }, Grant { name: "note".into(), cap: note }];
    let code = measure(rt, &sysinfo, &timer, "spawn/exit with pending sleeps", CYCLES, || {
        spawn_wait(rt, &spawner, "leak", &["sleeper"], &grants)
    });
    if code != 0 {
        return code;
    }
    let grants = [Grant { name: "ipc".into(), cap: ipc.cap }];
    let code = measure(
        rt,
        &sysinfo,
        &timer,
        "spawn/exit with a self-referencing endpoint",
        CYCLES,
        || spawn_wait(rt, &spawner, "leak", &["selfref"], &grants),
    );
    if code != 0 {
        return code;
    }
    let code = measure(
        rt,
        &sysinfo,
        &timer,
        "IPC, transfer, notification and revocation",
        IPC_CYCLES,
        || ipc_cycle(rt, ipc.cap, console.cap).is_some(),
    );
    if code != 0 {
        return code;
    }
    let Some(vm) = rt.cap("vm") else { return 0 };
    let mut i = 0u32;
    let code = measure(rt, &sysinfo, &timer, "shared-buffer map, unmap and revoke", CYCLES, || {
        i += 1;
        shared_cycle(rt, vm.cap, i.is_multiple_of(2)).is_some()
    });
    if code != 0 {
        return code;
    }
    let mut i = 0u32;
    measure(rt, &sysinfo, &timer, "spawn/exit holding a shared mapping", MAPPER_CYCLES, || {
        i += 1;
        mapper_cycle(rt, &spawner, vm.cap, i.is_multiple_of(2)).is_some()
    })
}
