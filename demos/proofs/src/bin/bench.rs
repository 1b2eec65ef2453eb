//! bench: cycles per ring operation, measured with the TSC inside the guest.
//!
//! Figures: a NOP SQE and a null CALL (`Timer.now`, params encoded once),
//! each one per `cap_enter` and 64 per `cap_enter`; and spawn+wait of the
//! minimal process `nop`; and an IPC round trip between two processes on one
//! CPU (the peer is this program started with the argument `server`). `make bench` runs it under QEMU with
//! `-icount shift=0,sleep=off`, where the TSC advances one tick per guest
//! instruction, so the figures are repeatable.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use capos_rt::abi::{Sqe, OP_CALL, OP_NOP};
use capos_rt::ipc;
use capos_rt::schema::{echo, timer, Grant, ProcessHandleClient, ProcessSpawnerClient};
use capos_rt::syscall::cycles;
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const ROUNDS: u64 = 2048;
const BATCH: u64 = 64;

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
/// empty results message, answering and receiving in one `cap_enter`.
fn serve(rt: &'static Runtime) -> i64 {
    let Some(endpoint) = rt.cap("endpoint") else { return 2 };
    let results = capos_rt::schema::wire::encode::<echo::echo_results::Owned>(|_| Ok(()))
        .expect("an empty results message encodes");
    let mut buf = alloc::vec![0u8; 4096];
    let ring = rt.ring();
    let mut pending_return: Option<u64> = None;
    loop {
        if let Some(call_id) = pending_return.take() {
            let _ = ring.push(&ipc::return_sqe(endpoint.cap, call_id, 0, &results, 1));
        }
        let _ = ring.push(&ipc::recv_sqe(endpoint.cap, &mut buf, 2));
        ring.publish();
        loop {
            if ring.enter(1, u64::MAX).is_err() {
                return 3;
            }
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

/// Cycles per IPC round trip: CALL through a minted Echo cap, the peer's
/// RECV and RETURN, the caller's completion.
fn ipc_round_trip(
    rt: &'static Runtime,
    spawner: &ProcessSpawnerClient<&'static Runtime>,
) -> Option<u64> {
    let ipc_cap = rt.cap("ipc")?;
    let endpoint = ipc::create_endpoint(rt, ipc_cap.cap).ok()?;
    let client = ipc::mint(rt, endpoint, echo::INTERFACE_ID, 1).ok()?;
    let peer = spawner
        .spawn("bench", &["server"], &[Grant { name: "endpoint".into(), cap: endpoint }])
        .ok()?;
    let params = capos_rt::schema::wire::encode::<echo::echo_params::Owned>(|_| Ok(())).ok()?;
    let mut results = [0u8; 256];
    let results_addr = results.as_mut_ptr() as u64;
    let call = |i: u64| Sqe {
        opcode: OP_CALL,
        cap: client,
        interface_id: echo::INTERFACE_ID,
        method: echo::method::ECHO,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr,
        results_len: results.len() as u32,
        user_data: i,
        ..Sqe::default()
    };
    // Warm up (the peer starts), then measure.
    run_batched(rt, call, 1)?;
    let cycles = run_batched(rt, call, 1)?;
    let peer_handle = ProcessHandleClient::new(rt, peer);
    let _ = peer_handle.kill();
    let _ = peer_handle.wait();
    let _ = rt.release(peer);
    let _ = rt.release(endpoint);
    core::hint::black_box(&mut results);
    Some(cycles)
}

fn main(rt: &'static Runtime) -> i64 {
    if rt.args().next() == Some("server") {
        return serve(rt);
    }
    let (Some(timer_cap), Some(spawner)) = (rt.cap("timer"), rt.cap("spawner")) else { return 2 };
    let params = capos_rt::schema::wire::encode::<timer::now_params::Owned>(|_| Ok(()))
        .expect("an empty params message encodes");
    let mut results = [0u8; 256];
    let results_addr = results.as_mut_ptr() as u64;
    let nop = |i: u64| Sqe { opcode: OP_NOP, user_data: i, ..Sqe::default() };
    let call = |i: u64| Sqe {
        opcode: OP_CALL,
        cap: timer_cap.cap,
        interface_id: timer::INTERFACE_ID,
        method: timer::method::NOW,
        params_addr: params.as_ptr() as u64,
        params_len: params.len() as u32,
        results_addr,
        results_len: results.len() as u32,
        user_data: i,
        ..Sqe::default()
    };
    let figures = (|| {
        let nop1 = run_batched(rt, nop, 1)?;
        let nop64 = run_batched(rt, nop, BATCH)?;
        let call1 = run_batched(rt, call, 1)?;
        let call64 = run_batched(rt, call, BATCH)?;
        Some((nop1, nop64, call1, call64))
    })();
    let Some((nop1, nop64, call1, call64)) = figures else {
        println!(rt, "bench: a ring operation failed");
        return 3;
    };
    // Where a call's cycles go: the same CALL stopped at successive checks.
    // A wrong interface id stops after the cap lookup; an unmapped results
    // buffer after the method and limit checks, the params copy and the
    // results check (before any decoding).
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
    let spawner = ProcessSpawnerClient::new(rt, spawner.cap);
    match ipc_round_trip(rt, &spawner) {
        Some(c) => println!(
            rt,
            "bench: IPC round trip (CALL, peer RECV+RETURN, completion), 1 CPU: {c} cycles"
        ),
        None => {
            println!(rt, "bench: the IPC round trip failed");
            return 6;
        }
    }
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
