//! devices: proves the device manager and the caps of a claimed PCI
//! function on a q35 machine with a modern virtio-rng (1af4:1044) and a
//! transitional one (1af4:1005, with an I/O BAR): the list, a claim, the
//! common configuration of the virtio device read through its mapped BAR,
//! DMA buffers and their device addresses, an MSI-X vector waited on, and
//! the refused cases, each a named error: a second claim, a BAR index out
//! of range, port I/O outside the BAR, DMA sizes 0 and 2^63 and over the
//! pool's budget, a freed DMA buffer, a wait after the Device was released.
//! Last, a child driver claims the device, allocates DMA, maps the BAR and
//! is killed by a page fault: the claim is released (claiming again works)
//! and free memory is back to what it was.
//!
//! Caps: `console`, `devices`, `spawner`, `timer`, `sysinfo`.
//!
//! Output: one `devices: <case>: <result>` line per check (a wrong result
//! is printed as `devices: FAILED ...`), then `devices: all <n> checks
//! passed` (exit code 0) or `devices: <m> of <n> checks FAILED` (exit 1).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use cap_programs::Checks;
use capos_rt::abi::TransportError;
use capos_rt::schema::{
    CallError, DeviceClient, DeviceManagerClient, DeviceMmioClient, DmaBufferClient, DmaPoolClient,
    Grant, InterruptClient, ProcessHandleClient, ProcessSpawnerClient, SystemInfoClient,
    TimerClient,
};
use capos_rt::{println, Runtime};

capos_rt::entry!(main);

const VIRTIO: u16 = 0x1af4;
const RNG_MODERN: u16 = 0x1044;
const RNG_TRANSITIONAL: u16 = 0x1005;
const NOT_FOUND: u32 = 1;
const INVALID_ARGUMENT: u32 = 2;
const UNSUPPORTED: u32 = 3;
const EXHAUSTED: u32 = 4;
const BAD_STATE: u32 = 5;

fn main(rt: &'static Runtime) -> i64 {
    let args: Vec<&str> = rt.args().collect();
    if args.as_slice() == ["child"] {
        return child(rt);
    }
    parent(rt)
}

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

fn outcome<T>(r: &Result<T, CallError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => name(e),
    }
}

fn is_app<T>(r: &Result<T, CallError>, code: u32) -> bool {
    matches!(r, Err(CallError::Exception(e)) if e.code == code)
}

fn is_transport<T>(r: &Result<T, CallError>, err: TransportError) -> bool {
    matches!(r, Err(CallError::Transport(s)) if *s == err.code())
}

fn free_bytes(sysinfo: &SystemInfoClient<&Runtime>) -> u64 {
    sysinfo.info().map(|i| i.free_memory_bytes).unwrap_or(0)
}

/// Free memory once two reads 10 ms apart agree (at most 100 tries).
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

fn parent(rt: &'static Runtime) -> i64 {
    let (Some(_), Some(devices), Some(spawner), Some(timer), Some(sysinfo)) = (
        rt.cap("console"),
        rt.cap("devices"),
        rt.cap("spawner"),
        rt.cap("timer"),
        rt.cap("sysinfo"),
    ) else {
        println!(rt, "devices: needs console, devices, spawner, timer and sysinfo caps");
        return 1;
    };
    let mut checks = Checks::new(rt, "devices");
    let mgr = DeviceManagerClient::new(rt, devices.cap);
    let timer = TimerClient::new(rt, timer.cap);
    let sysinfo = SystemInfoClient::new(rt, sysinfo.cap);

    let list = mgr.list();
    let rng = list.as_ref().ok().and_then(|l| {
        l.iter().find(|d| d.vendor_id == VIRTIO && d.device_id == RNG_MODERN).cloned()
    });
    checks.check(
        rng.as_ref().is_some_and(|d| d.msix_table_size > 0 && !d.claimed),
        format!(
            "list: {} function(s), virtio-rng {}",
            list.as_ref().map_or(0, |l| l.len()),
            rng.as_ref().map_or("missing".to_string(), |d| format!(
                "at {:02x}:{:02x}.{} with {} MSI-X entries, {} virtio structures",
                d.bus,
                d.device,
                d.function,
                d.msix_table_size,
                d.virtio.len()
            ))
        ),
    );
    let Some(rng) = rng else { return 1 };

    let dev = mgr.claim_match(VIRTIO, RNG_MODERN).map(|c| DeviceClient::new(rt, c));
    let again = mgr.claim_match(VIRTIO, RNG_MODERN);
    let by_addr = mgr.claim(rng.segment, rng.bus, rng.device, rng.function);
    let nowhere = mgr.claim(0, 0xfe, 31, 7);
    let host_bridge = mgr.claim(0, 0, 0, 0);
    checks.check(
        dev.is_ok()
            && is_app(&again, BAD_STATE)
            && is_app(&by_addr, BAD_STATE)
            && is_app(&nowhere, NOT_FOUND)
            && is_app(&host_bridge, UNSUPPORTED),
        format!(
            "claim: {}; second claimMatch {}, claim by address {}, claim of an empty slot {}, of the host bridge {}",
            outcome(&dev),
            outcome(&again),
            outcome(&by_addr),
            outcome(&nowhere),
            outcome(&host_bridge)
        ),
    );
    let Ok(dev) = dev else { return 1 };
    let listed_claimed = mgr.list().ok().and_then(|l| {
        l.iter().find(|d| d.vendor_id == VIRTIO && d.device_id == RNG_MODERN).map(|d| d.claimed)
    });
    checks.check(
        listed_claimed == Some(true),
        format!("list after the claim shows it claimed: {listed_claimed:?}"),
    );

    // The common configuration through the BAR its vendor capability names.
    let common = rng.virtio.iter().find(|v| v.cfg_type == 1).map(|v| (v.bar, v.offset));
    let mut mmio_line = "no common configuration structure".to_string();
    let mut ok = false;
    if let Some((bar, offset)) = common {
        let mmio = dev.mmio(bar).map(|c| DeviceMmioClient::new(rt, c));
        if let Ok(m) = &mmio {
            match m.map() {
                Ok(r) => {
                    // msix_config (16 bits at 0x10), num_queues (0x12).
                    let msix_config = capos_rt::probe::read_u16(r.addr + offset + 0x10);
                    let num_queues = capos_rt::probe::read_u16(r.addr + offset + 0x12);
                    ok = num_queues == 1 && msix_config == 0xffff;
                    mmio_line = format!(
                        "BAR {bar} mapped ({} KiB); common config at {offset:#x}: num_queues {num_queues}, msix_config {msix_config:#x}",
                        r.size / 1024
                    );
                    let twice = m.map();
                    let unmapped = m.unmap();
                    let unmapped_again = m.unmap();
                    ok &= is_app(&twice, BAD_STATE)
                        && unmapped.is_ok()
                        && is_app(&unmapped_again, NOT_FOUND);
                    mmio_line = format!(
                        "{mmio_line}; map again {}, unmap {}, unmap again {}",
                        outcome(&twice),
                        outcome(&unmapped),
                        outcome(&unmapped_again)
                    );
                }
                Err(e) => mmio_line = format!("map: {}", name(&e)),
            }
        } else {
            mmio_line = format!("mmio: {}", outcome(&mmio));
        }
    }
    checks.check(ok, format!("mmio: {mmio_line}"));
    let bad_bar = dev.mmio(9);
    let empty_bar = dev.mmio(0);
    checks.check(
        is_app(&bad_bar, INVALID_ARGUMENT) && is_app(&empty_bar, INVALID_ARGUMENT),
        format!(
            "mmio of BAR 9: {}, of the unimplemented BAR 0: {}",
            outcome(&bad_bar),
            outcome(&empty_bar)
        ),
    );

    // Port I/O: the transitional device has an I/O BAR 0 of 0x20 ports.
    let legacy = mgr.claim_match(VIRTIO, RNG_TRANSITIONAL).map(|c| DeviceClient::new(rt, c));
    let (inside, past, wide, not_io) = match &legacy {
        Ok(l) => (
            l.port_read(0, 0x12, 2),
            l.port_read(0, 0x20, 1),
            l.port_read(0, 0x1e, 4),
            dev.port_read(4, 0, 4),
        ),
        Err(_) => return 1,
    };
    let write_past = legacy.as_ref().map(|l| l.port_write(0, 0x40, 1, 0)).unwrap_or(Ok(()));
    checks.check(
        inside.is_ok()
            && is_app(&past, INVALID_ARGUMENT)
            && is_app(&wide, INVALID_ARGUMENT)
            && is_app(&write_past, INVALID_ARGUMENT)
            && is_app(&not_io, INVALID_ARGUMENT),
        format!(
            "port I/O: read inside the I/O BAR {}, at its end {}, 4 bytes over its end {}, write past it {}, on a memory BAR {}",
            outcome(&inside),
            outcome(&past),
            outcome(&wide),
            outcome(&write_past),
            outcome(&not_io)
        ),
    );
    if let Ok(l) = legacy {
        let _ = rt.release(l.cap_id());
    }

    // MSI: the ICH9 SATA controller has MSI (one vector) and no MSI-X.
    let ahci = mgr.claim_match(0x8086, 0x2922).map(|c| DeviceClient::new(rt, c));
    if let Ok(a) = &ahci {
        let irq = a.interrupt(0).map(|c| InterruptClient::new(rt, c));
        let second = a.interrupt(1);
        let none = || CallError::Transport(TransportError::InvalidCap.code());
        let (unmask, wait, mask) = match &irq {
            Ok(i) => (i.unmask(), i.wait(5_000_000), i.mask()),
            Err(_) => (Err(none()), Err(none()), Err(none())),
        };
        checks.check(
            irq.is_ok()
                && is_app(&second, INVALID_ARGUMENT)
                && unmask.is_ok()
                && is_transport(&wait, TransportError::Timeout)
                && mask.is_ok(),
            format!(
                "msi: vector 0 of the SATA controller {}, vector 1 {}; unmask {}, wait 5 ms {}, mask {}",
                outcome(&irq),
                outcome(&second),
                outcome(&unmask),
                outcome(&wait),
                outcome(&mask)
            ),
        );
        if let Ok(i) = irq {
            let _ = rt.release(i.cap_id());
        }
        let _ = rt.release(a.cap_id());
    } else {
        checks.check(false, format!("msi: claim of the SATA controller {}", outcome(&ahci)));
    }

    // DMA.
    let pool = dev.dma_pool(8192).map(|c| DmaPoolClient::new(rt, c));
    let zero_budget = dev.dma_pool(0);
    let Ok(pool) = pool else { return 1 };
    let zero = pool.alloc(0);
    let huge = pool.alloc(1 << 63);
    let a = pool.alloc(4096).map(|c| DmaBufferClient::new(rt, c));
    let b = pool.alloc(100).map(|c| DmaBufferClient::new(rt, c));
    let over = pool.alloc(4096);
    checks.check(
        is_app(&zero_budget, INVALID_ARGUMENT)
            && is_app(&zero, INVALID_ARGUMENT)
            && is_app(&huge, INVALID_ARGUMENT)
            && a.is_ok()
            && b.is_ok()
            && is_app(&over, EXHAUSTED),
        format!(
            "dma: pool of 0 bytes {}; in a pool of 8 KiB: alloc 0 {}, 2^63 {}, 4096 {}, 100 {}, then 4096 more {}",
            outcome(&zero_budget),
            outcome(&zero),
            outcome(&huge),
            outcome(&a),
            outcome(&b),
            outcome(&over)
        ),
    );
    let (Ok(a), Ok(b)) = (a, b) else { return 1 };
    let ia = a.info();
    let ib = b.info();
    let ok = match (&ia, &ib) {
        (Ok(x), Ok(y)) => {
            capos_rt::probe::write_u64(x.addr, 0xd0a_d0a);
            x.device_addr != 0
                && x.device_addr.is_multiple_of(4096)
                && y.device_addr.is_multiple_of(4096)
                && x.device_addr != y.device_addr
                && x.size == 4096
                && y.size == 100
                && capos_rt::probe::read_u64(x.addr) == 0xd0a_d0a
        }
        _ => false,
    };
    checks.check(
        ok,
        format!(
            "dma buffers: sizes {} and {}, device addresses page aligned and distinct, written and read back through the mapping: {ok}",
            ia.as_ref().map_or(0, |x| x.size),
            ib.as_ref().map_or(0, |x| x.size)
        ),
    );
    let freed = a.free();
    let info_after = a.info();
    let free_after = a.free();
    let c = pool.alloc(4096);
    checks.check(
        freed.is_ok()
            && is_transport(&info_after, TransportError::Revoked)
            && is_transport(&free_after, TransportError::Revoked)
            && c.is_ok(),
        format!(
            "free: {}; then info {}, free {}; the budget is back: alloc 4096 {}",
            outcome(&freed),
            outcome(&info_after),
            outcome(&free_after),
            outcome(&c)
        ),
    );

    // MSI-X vector 0.
    let irq = dev.interrupt(0).map(|c| InterruptClient::new(rt, c));
    let twice = dev.interrupt(0);
    let past = dev.interrupt(rng.msix_table_size);
    let Ok(irq) = irq else { return 1 };
    let unmasked = irq.unmask();
    let waited = irq.wait(20_000_000);
    let masked = irq.mask();
    checks.check(
        unmasked.is_ok()
            && (waited.is_ok() || is_transport(&waited, TransportError::Timeout))
            && masked.is_ok()
            && is_app(&twice, BAD_STATE)
            && is_app(&past, INVALID_ARGUMENT),
        format!(
            "interrupt: MSI-X entry 0 unmasked, wait 20 ms {}, masked {}; entry 0 again {}, entry {} {}",
            match &waited {
                Ok(n) => format!("{n} interrupt(s)"),
                Err(e) => name(e),
            },
            outcome(&masked),
            outcome(&twice),
            rng.msix_table_size,
            outcome(&past)
        ),
    );

    let (ok, line) = virtqueue_request(rt, &dev, &rng, &irq);
    checks.check(ok, format!("virtqueue: {line}"));

    // Release the Device: everything derived from it is Revoked.
    let released = rt.release(dev.cap_id());
    let wait_after = irq.wait(1_000_000);
    let alloc_after = pool.alloc(64);
    let info_after = b.info();
    checks.check(
        released.is_ok()
            && is_transport(&wait_after, TransportError::Revoked)
            && is_transport(&alloc_after, TransportError::Revoked)
            && is_transport(&info_after, TransportError::Revoked),
        format!(
            "after the Device was released: Interrupt wait {}, DmaPool alloc {}, DmaBuffer info {}",
            outcome(&wait_after),
            outcome(&alloc_after),
            outcome(&info_after)
        ),
    );
    for cap in [irq.cap_id(), pool.cap_id(), b.cap_id()] {
        let _ = rt.release(cap);
    }
    if let Ok(c) = c {
        let _ = rt.release(c);
    }

    // A driver killed with its claim, DMA and mapping.
    let before = settled_free_bytes(&sysinfo, &timer);
    let grants = [
        Grant { name: "console".into(), cap: rt.cap("console").map_or(0, |c| c.cap) },
        Grant { name: "devices".into(), cap: devices.cap },
    ];
    let child =
        match ProcessSpawnerClient::new(rt, spawner.cap).spawn("devices", &["child"], &grants) {
            Ok(h) => ProcessHandleClient::new(rt, h),
            Err(e) => {
                checks.check(false, format!("child: spawn: {}", name(&e)));
                return 1;
            }
        };
    let code = child.wait();
    let cause = child.status().map(|s| s.cause);
    let _ = rt.release(child.cap_id());
    let after = settled_free_bytes(&sysinfo, &timer);
    let reclaim = mgr.claim_match(VIRTIO, RNG_MODERN);
    checks.check(
        matches!(cause.as_deref(), Ok("page fault")) && reclaim.is_ok() && after == before,
        format!(
            "a child driver killed by {} (exit code {}): claim again {}, free memory back to the value before: {}",
            cause.as_deref().unwrap_or("?"),
            code.map_or_else(|e| name(&e), |c| c.to_string()),
            outcome(&reclaim),
            after == before
        ),
    );
    if after != before {
        println!(rt, "devices: free bytes before {before}, after {after}");
    }
    if let Ok(c) = reclaim {
        let _ = rt.release(c);
    }

    let total = checks.passed + checks.failed;
    if checks.failed == 0 {
        println!(rt, "devices: all {total} checks passed");
        0
    } else {
        println!(rt, "devices: {} of {total} checks FAILED", checks.failed);
        1
    }
}

/// Sets the virtio-rng up far enough for one request on queue 0 (virtio
/// 1.x over the modern PCI transport), with the queue's MSI-X vector 0:
/// a 64-byte write-only buffer posted, the queue notified, the Interrupt
/// waited on; then the used ring must hold the buffer, filled.
fn virtqueue_request(
    rt: &'static Runtime,
    dev: &DeviceClient<&'static Runtime>,
    rng: &capos_rt::schema::PciDevice,
    irq: &InterruptClient<&'static Runtime>,
) -> (bool, String) {
    use capos_rt::probe::{read_u16, read_u32, read_u8, write_u16, write_u32, write_u64, write_u8};
    let find = |t: u8| rng.virtio.iter().find(|v| v.cfg_type == t);
    let (Some(common), Some(notify)) = (find(1), find(2)) else {
        return (false, "no common or notify structure".to_string());
    };
    if common.bar != notify.bar {
        return (false, "common and notify structures in different BARs".to_string());
    }
    let Ok(mmio) = dev.mmio(common.bar).map(|c| DeviceMmioClient::new(rt, c)) else {
        return (false, "mmio failed".to_string());
    };
    let Ok(bar) = mmio.map() else { return (false, "map failed".to_string()) };
    let Ok(pool) = dev.dma_pool(8192).map(|c| DmaPoolClient::new(rt, c)) else {
        return (false, "dmaPool failed".to_string());
    };
    let (Ok(ring), Ok(data)) = (
        pool.alloc(4096).map(|c| DmaBufferClient::new(rt, c)),
        pool.alloc(64).map(|c| DmaBufferClient::new(rt, c)),
    ) else {
        return (false, "alloc failed".to_string());
    };
    let (Ok(ring_info), Ok(data_info)) = (ring.info(), data.info()) else {
        return (false, "info failed".to_string());
    };
    let c = bar.addr + common.offset;
    // Reset, ACKNOWLEDGE | DRIVER, VIRTIO_F_VERSION_1 (bit 32), FEATURES_OK.
    write_u8(c + 0x14, 0);
    write_u8(c + 0x14, 1 | 2);
    write_u32(c + 0x08, 1);
    write_u32(c + 0x0c, 1);
    write_u8(c + 0x14, 1 | 2 | 8);
    if read_u8(c + 0x14) & 8 == 0 {
        return (false, "FEATURES_OK not kept".to_string());
    }
    // Queue 0: 8 entries; descriptors at 0, driver ring at 0x100, device
    // ring at 0x200 of the ring frame.
    write_u16(c + 0x16, 0);
    let max = read_u16(c + 0x18);
    let size = max.min(8);
    write_u16(c + 0x18, size);
    write_u16(c + 0x1a, 0);
    let vector = read_u16(c + 0x1a);
    let (r, dr) = (ring_info.addr, ring_info.device_addr);
    for (off, value) in [(0x20, dr), (0x28, dr + 0x100), (0x30, dr + 0x200)] {
        write_u32(c + off, value as u32);
        write_u32(c + off + 4, (value >> 32) as u32);
    }
    write_u16(c + 0x1c, 1);
    let notify_off = read_u16(c + 0x1e);
    write_u8(c + 0x14, 1 | 2 | 8 | 4);
    // Descriptor 0: the data buffer, device-writable.
    write_u64(r, data_info.device_addr);
    write_u32(r + 8, 64);
    write_u16(r + 12, 2);
    write_u16(r + 14, 0);
    // Driver ring: flags 0, ring[0] = 0, idx 1.
    write_u16(r + 0x100, 0);
    write_u16(r + 0x104, 0);
    write_u16(r + 0x102, 1);
    let doorbell =
        bar.addr + notify.offset + u64::from(notify_off) * u64::from(notify.notify_off_multiplier);
    let unmasked = irq.unmask();
    write_u16(doorbell, 0);
    let waited = irq.wait(1_000_000_000);
    let used_idx = read_u16(r + 0x202);
    let used_len = read_u32(r + 0x208);
    let filled = capos_rt::probe::read_u64(data_info.addr) != 0;
    // Reset the device again before the buffers go.
    write_u8(c + 0x14, 0);
    let _ = irq.mask();
    let ok = vector == 0
        && unmasked.is_ok()
        && matches!(waited, Ok(n) if n >= 1)
        && used_idx == 1
        && used_len == 64
        && filled;
    let line = format!(
        "queue 0 of {max} entries set to {size} with MSI-X vector {vector}; a 64-byte buffer posted and notified: wait {}, used index {used_idx}, {used_len} bytes written, filled {filled}",
        match &waited {
            Ok(n) => format!("{n} interrupt(s)"),
            Err(e) => name(e),
        }
    );
    for cap in [data.cap_id(), ring.cap_id(), pool.cap_id(), mmio.cap_id()] {
        let _ = rt.release(cap);
    }
    (ok, line)
}

/// The child driver: claims the virtio-rng, allocates two DMA buffers,
/// maps the common configuration's BAR and unmasks a vector, then reads
/// address 8: the page fault ends it with everything held.
fn child(rt: &'static Runtime) -> i64 {
    let Some(devices) = rt.cap("devices") else { return 1 };
    let mgr = DeviceManagerClient::new(rt, devices.cap);
    let Ok(dev) = mgr.claim_match(VIRTIO, RNG_MODERN).map(|c| DeviceClient::new(rt, c)) else {
        println!(rt, "devices: child: claim failed");
        return 1;
    };
    let pool = dev.dma_pool(16384).map(|c| DmaPoolClient::new(rt, c));
    let bufs = pool.as_ref().map(|p| (p.alloc(4096).is_ok(), p.alloc(4096).is_ok()));
    let mapped = dev.mmio(4).map(|c| DeviceMmioClient::new(rt, c).map().is_ok());
    let irq = dev.interrupt(0).map(|c| InterruptClient::new(rt, c).unmask().is_ok());
    println!(
        rt,
        "devices: child: claimed; DMA buffers {:?}, BAR 4 mapped {:?}, vector 0 {:?}",
        bufs.ok(),
        mapped.ok(),
        irq.ok()
    );
    capos_rt::probe::read_u64(8) as i64
}
