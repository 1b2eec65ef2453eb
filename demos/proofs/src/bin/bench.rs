//! bench: cycles per ring operation, measured with the TSC inside the guest.
//!
//! Figures: a NOP SQE and a null CALL (`Timer.now`, params encoded once,
//! results into a 64 KiB buffer as the runtime's), each one per `cap_enter`
//! and 64 per `cap_enter`, with where a batched CALL's cycles go; the same
//! call made through `capos-rt`'s typed client, as an application makes it;
//! the kernel heap allocations a null CALL and an IPC round trip make
//! (`SystemInfo.kernelHeapAllocations` before and after); an IPC round trip
//! between two processes on one CPU with empty and 4 KiB params (the peer is
//! this program started with the argument `server`); and spawn+wait of the
//! minimal process `nop`. `make bench` runs it under QEMU with
//! `-icount shift=0,sleep=off`, where the TSC advances one tick per guest
//! instruction, so the figures are repeatable.
//!
//! Granted only `console`, `spawner` and `timer` (no `ipc`), it measures
//! instead ring calls per second of guest time: batched null CALLs from one
//! process, then from two at once (copies of this program started with the
//! argument `caller`), on as many CPUs as the machine has.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use capos_rt::abi::{Sqe, OP_CALL, OP_NOP};
use capos_rt::ipc;
use capos_rt::schema::{
    echo, timer, EchoClient, Grant, ProcessHandleClient, ProcessSpawnerClient, SystemInfoClient,
    TimerClient,
};
use capos_rt::syscall::cycles;
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const ROUNDS: u64 = 2048;
const BATCH: u64 = 64;
/// The results buffer of the raw CALLs: the size the runtime's is.
const RESULTS_BYTES: usize = 64 * 1024;

/// The raw `Timer.now` CALL on `cap`: `params` encoded once, results into
/// the [`RESULTS_BYTES`] buffer at `results_addr`.
fn now_sqe(cap: u64, params: &[u8], results_addr: u64, user_data: u64) -> Sqe {
    Sqe {
        opcode: OP_CALL,
        cap,
        interface_id: timer::INTERFACE_ID,
        method: timer::method::NOW,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr,
        results_len: RESULTS_BYTES as u32,
        user_data,
        ..Sqe::default()
    }
}

/// Kernel heap allocations since boot, as `SystemInfo` reports them.
fn heap_allocations(sysinfo: &SystemInfoClient<&'static Runtime>) -> Option<u64> {
    sysinfo.info().ok().map(|i| i.kernel_heap_allocations)
}

/// Kernel heap allocations per operation over `n` runs of `work`, net of
/// the `SystemInfo.info` calls that read the counter.
fn allocations_per(
    sysinfo: &SystemInfoClient<&'static Runtime>,
    n: u64,
    work: impl FnOnce() -> Option<()>,
) -> Option<(u64, u64)> {
    let a = heap_allocations(sysinfo)?;
    let b = heap_allocations(sysinfo)?;
    work()?;
    let c = heap_allocations(sysinfo)?;
    let per_read = b - a;
    let total = (c - b).saturating_sub(per_read);
    Some((total / n, total % n))
}

/// Cycles per SQE over `ROUNDS` SQEs made by `make`, `batch` per
/// `cap_enter`; `None` if any completes with a status other than `status`.
fn run_expecting(
    rt: &'static Runtime,
    make: impl Fn(u64) -> Sqe,
    batch: u64,
    status: u32,
) -> Option<u64> {
    let ring = rt.ring();
    let start = cycles();
    for round in 0..ROUNDS / batch {
        for i in 0..batch {
            ring.push(&make(round * batch + i)).ok()?;
        }
        ring.publish();
        let mut got = 0;
        while got < batch {
            ring.enter((batch - got) as u32, u64::MAX).ok()?;
            while let Some(c) = ring.pop() {
                if c.status != status {
                    return None;
                }
                got += 1;
            }
        }
    }
    Some((cycles() - start) / ROUNDS)
}

/// [`run_expecting`] for operations that succeed.
fn run_batched(rt: &'static Runtime, make: impl Fn(u64) -> Sqe, batch: u64) -> Option<u64> {
    run_expecting(rt, make, batch, 0)
}

/// The IPC peer: answers every call on the serving cap `endpoint` with an
/// empty results message, answering and receiving in one `cap_enter` that
/// waits for both completions (the RETURN's at once, the RECV's when the
/// next call arrives), so each round trip costs it one kernel entry.
fn serve(rt: &'static Runtime) -> i64 {
    let Some(endpoint) = rt.cap("endpoint") else { return 2 };
    let results = capos_rt::schema::wire::encode::<echo::echo_results::Owned>(|_| Ok(()))
        .expect("an empty results message encodes");
    let mut buf = alloc::vec![0u8; RESULTS_BYTES];
    let ring = rt.ring();
    let mut pending_return: Option<u64> = None;
    loop {
        let mut want = 1;
        if let Some(call_id) = pending_return.take() {
            let _ = ring.push(&ipc::return_sqe(endpoint.cap, call_id, 0, &results, 1));
            want = 2;
        }
        let _ = ring.push(&ipc::recv_sqe(endpoint.cap, &mut buf, 2));
        ring.publish();
        loop {
            if ring.enter(want, u64::MAX).is_err() {
                return 3;
            }
            want = 1;
            let mut got = None;
            while let Some(c) = ring.pop() {
                if c.user_data == 2 {
                    got = Some(c);
                }
            }
            if let Some(c) = got {
                if c.status != 0 {
                    return 0;
                }
                pending_return = Some(c.aux);
                break;
            }
        }
    }
}

/// IPC figures: cycles per round trip (CALL through a minted Echo cap, the
/// peer's RECV and RETURN, the caller's completion) with empty params and
/// with 4 KiB of data, heap allocations per empty round trip, and the
/// round trip through `capos-rt`'s typed client.
struct IpcFigures {
    empty: u64,
    four_k: u64,
    allocations: (u64, u64),
    client: u64,
}

fn ipc_figures(
    rt: &'static Runtime,
    spawner: &ProcessSpawnerClient<&'static Runtime>,
    sysinfo: &SystemInfoClient<&'static Runtime>,
) -> Option<IpcFigures> {
    let ipc_cap = rt.cap("ipc")?;
    let endpoint = ipc::create_endpoint(rt, ipc_cap.cap).ok()?;
    let client = ipc::mint(rt, endpoint, echo::INTERFACE_ID, 1).ok()?;
    let peer = spawner
        .spawn("bench", &["server"], &[Grant { name: "endpoint".into(), cap: endpoint }])
        .ok()?;
    let empty = capos_rt::schema::wire::encode::<echo::echo_params::Owned>(|_| Ok(())).ok()?;
    let data = alloc::vec![0x5au8; 4096];
    let four_k = capos_rt::schema::wire::encode::<echo::echo_params::Owned>(|mut p| {
        p.set_data(&data);
        Ok(())
    })
    .ok()?;
    let mut results = alloc::vec![0u8; RESULTS_BYTES];
    let results_addr = results.as_mut_ptr() as u64;
    let call = |params: &[u8], i: u64| Sqe {
        opcode: OP_CALL,
        cap: client,
        interface_id: echo::INTERFACE_ID,
        method: echo::method::ECHO,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr,
        results_len: RESULTS_BYTES as u32,
        user_data: i,
        ..Sqe::default()
    };
    // Warm up (the peer starts), then measure.
    run_batched(rt, |i| call(&empty, i), 1)?;
    let empty_cycles = run_batched(rt, |i| call(&empty, i), 1)?;
    let four_k_cycles = run_batched(rt, |i| call(&four_k, i), 1)?;
    let allocations =
        allocations_per(sysinfo, ROUNDS, || run_batched(rt, |i| call(&empty, i), 1).map(drop))?;
    let echo_client = EchoClient::new(rt, client);
    let start = cycles();
    for _ in 0..ROUNDS {
        echo_client.echo(&[]).ok()?;
    }
    let client_cycles = (cycles() - start) / ROUNDS;
    let peer_handle = ProcessHandleClient::new(rt, peer);
    let _ = peer_handle.kill();
    let _ = peer_handle.wait();
    let _ = rt.release(peer);
    let _ = rt.release(endpoint);
    core::hint::black_box(&mut results);
    Some(IpcFigures {
        empty: empty_cycles,
        four_k: four_k_cycles,
        allocations,
        client: client_cycles,
    })
}

/// Batched null CALLs made by one `caller` process (`rate` mode).
const RATE_CALLS: u64 = 64 * 1024;

/// `caller`: makes [`RATE_CALLS`] batched null CALLs and exits.
fn caller(rt: &'static Runtime) -> i64 {
    let Some(timer_cap) = rt.cap("timer") else { return 2 };
    let params = capos_rt::schema::wire::encode::<timer::now_params::Owned>(|_| Ok(()))
        .expect("an empty params message encodes");
    let mut results = alloc::vec![0u8; RESULTS_BYTES];
    let results_addr = results.as_mut_ptr() as u64;
    let call = |i: u64| now_sqe(timer_cap.cap, &params, results_addr, i);
    for _ in 0..RATE_CALLS / ROUNDS {
        if run_batched(rt, call, BATCH).is_none() {
            return 3;
        }
    }
    core::hint::black_box(&mut results);
    0
}

/// `rate`: ring calls per second of guest time from one caller process,
/// then from two at once.
fn rate(rt: &'static Runtime) -> i64 {
    let (Some(timer_cap), Some(spawner)) = (rt.cap("timer"), rt.cap("spawner")) else { return 2 };
    let timer = TimerClient::new(rt, timer_cap.cap);
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let grants = [Grant { name: "timer".into(), cap: timer_cap.cap }];
    let mut per_second = [0u64; 2];
    for (n, out) in per_second.iter_mut().enumerate() {
        let callers = n as u64 + 1;
        let Ok(start) = timer.now() else { return 3 };
        let mut handles = alloc::vec::Vec::new();
        for _ in 0..callers {
            let Ok(h) = spawner.spawn("bench", &["caller"], &grants) else { return 4 };
            handles.push(h);
        }
        for h in handles {
            if !matches!(ProcessHandleClient::new(rt, h).wait(), Ok(0)) {
                return 5;
            }
            let _ = rt.release(h);
        }
        let Ok(end) = timer.now() else { return 3 };
        *out = callers * RATE_CALLS * 1_000_000_000 / (end - start).max(1);
    }
    println!(
        rt,
        "bench: ring calls per second (batched null CALLs, guest time): 1 process {}, 2 processes {} ({}.{}x)",
        per_second[0],
        per_second[1],
        per_second[1] / per_second[0].max(1),
        (per_second[1] * 10 / per_second[0].max(1)) % 10
    );
    0
}

fn main(rt: &'static Runtime) -> i64 {
    match rt.args().next() {
        Some("server") => return serve(rt),
        Some("caller") => return caller(rt),
        _ if rt.cap("ipc").is_none() => return rate(rt),
        _ => {}
    }
    let (Some(timer_cap), Some(spawner), Some(sysinfo)) =
        (rt.cap("timer"), rt.cap("spawner"), rt.cap("sysinfo"))
    else {
        return 2;
    };
    let sysinfo = SystemInfoClient::new(rt, sysinfo.cap);
    let params = capos_rt::schema::wire::encode::<timer::now_params::Owned>(|_| Ok(()))
        .expect("an empty params message encodes");
    let mut results = alloc::vec![0u8; RESULTS_BYTES];
    let results_addr = results.as_mut_ptr() as u64;
    let nop = |i: u64| Sqe { opcode: OP_NOP, user_data: i, ..Sqe::default() };
    let call = |i: u64| now_sqe(timer_cap.cap, &params, results_addr, i);
    let timer = TimerClient::new(rt, timer_cap.cap);
    let figures = (|| {
        let nop1 = run_batched(rt, nop, 1)?;
        let nop64 = run_batched(rt, nop, BATCH)?;
        let call1 = run_batched(rt, call, 1)?;
        let call64 = run_batched(rt, call, BATCH)?;
        let start = cycles();
        for _ in 0..ROUNDS {
            timer.now().ok()?;
        }
        let client = (cycles() - start) / ROUNDS;
        let allocations =
            allocations_per(&sysinfo, ROUNDS, || run_batched(rt, call, BATCH).map(drop))?;
        Some((nop1, nop64, call1, call64, client, allocations))
    })();
    let Some((nop1, nop64, call1, call64, client, allocations)) = figures else {
        println!(rt, "bench: a ring operation failed");
        return 3;
    };
    // Where a call's cycles go: the same CALL stopped at successive checks.
    // A wrong interface id stops after the cap lookup; an unmapped results
    // buffer after the method and limit checks, the params copy and the
    // check of the results buffer's first page (before any decoding).
    let wrong_iface = run_expecting(rt, |i| Sqe { interface_id: 0, ..call(i) }, BATCH, 3);
    let bad_results = run_expecting(rt, |i| Sqe { results_addr: 0x1_0000, ..call(i) }, BATCH, 5);
    let (Some(wrong_iface), Some(bad_results)) = (wrong_iface, bad_results) else {
        println!(rt, "bench: a ring operation failed");
        return 3;
    };
    println!(rt, "bench: NOP, 1 per cap_enter: {nop1} cycles/op");
    println!(rt, "bench: NOP, {BATCH} per cap_enter: {nop64} cycles/op");
    println!(rt, "bench: null CALL (Timer.now), 1 per cap_enter: {call1} cycles/call");
    println!(
        rt,
        "bench: null CALL (Timer.now), {BATCH} per cap_enter: {call64} cycles/call ({}.{}x cheaper)",
        call1 / call64.max(1),
        (call1 * 10 / call64.max(1)) % 10
    );
    println!(
        rt,
        "bench: where a batched CALL goes: ring {nop64}, cap lookup {}, checks and params copy {}, decode/dispatch/encode/deliver {}",
        wrong_iface.saturating_sub(nop64),
        bad_results.saturating_sub(wrong_iface),
        call64.saturating_sub(bad_results)
    );
    println!(
        rt,
        "bench: null CALL through capos-rt (TimerClient::now: encode, ring, decode): {client} cycles/call"
    );
    println!(
        rt,
        "bench: kernel heap allocations per null CALL: {} (+{}/{ROUNDS})",
        allocations.0,
        allocations.1
    );
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    let Some(ipc) = ipc_figures(rt, &spawner, &sysinfo) else {
        println!(rt, "bench: the IPC round trip failed");
        return 6;
    };
    println!(
        rt,
        "bench: IPC round trip (CALL, peer RECV+RETURN, completion), 1 CPU: {} cycles", ipc.empty
    );
    println!(rt, "bench: IPC round trip with 4 KiB params: {} cycles", ipc.four_k);
    println!(
        rt,
        "bench: IPC round trip through capos-rt (EchoClient::echo): {} cycles", ipc.client
    );
    println!(
        rt,
        "bench: kernel heap allocations per IPC round trip: {} (+{}/{ROUNDS})",
        ipc.allocations.0,
        ipc.allocations.1
    );
    const SPAWNS: u64 = 32;
    let start = cycles();
    for _ in 0..SPAWNS {
        let Ok(h) = spawner.spawn("nop", &[], &[]) else { return 4 };
        if !matches!(ProcessHandleClient::new(rt, h).wait(), Ok(0)) {
            return 5;
        }
        let _ = rt.release(h);
    }
    println!(rt, "bench: spawn+wait of nop: {} cycles", (cycles() - start) / SPAWNS);
    // Keep the results buffer alive until every call completed.
    core::hint::black_box(&mut results);
    0
}
