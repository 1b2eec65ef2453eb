//! Running the manifest's service graph: start services in dependency
//! order, hand each exactly its grants (and its resource limits, when the
//! manifest sets any), collect the caps services export, restart failed
//! services per their policy, and log every decision.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use capos_rt::abi::{Cqe, RecvHeader, Sqe, OP_CALL, RECV_HEADER_SIZE};
use capos_rt::ipc;
use capos_rt::schema::capos_capnp::{process_handle, service_exporter};
use capos_rt::schema::{
    wire, Grant as CapGrant, ProcessHandleClient, ProcessSpawnerClient, ResourceProfile,
    TimerClient,
};
use capos_rt::{println, Runtime};

use capos_config::{GrantSource, LimitsText, Manifest, RestartMode};

// User data of init's own SQEs, far above the runtime's counter (which
// numbers the blocking calls from 1 up).
const UD_RECV: u64 = 1 << 48;
const UD_WAIT: u64 = 1 << 49;

/// A started service.
struct Running {
    handle: u64,
    /// Results buffer of its outstanding `wait` CALL (kept in place).
    wait_buf: Box<[u8; 128]>,
    waiting: bool,
}

/// State of the whole graph.
pub struct Supervisor<'a> {
    rt: &'static Runtime,
    manifest: &'a Manifest,
    spawner: ProcessSpawnerClient<&'static Runtime>,
    timer: Option<TimerClient<&'static Runtime>>,
    endpoint: u64,
    recv_buf: Vec<u8>,
    recv_posted: bool,
    /// (service index, export name) -> CapId in init's table.
    exports: BTreeMap<(usize, String), u64>,
    running: BTreeMap<usize, Running>,
    restarts: Vec<u32>,
    failed: Vec<bool>,
    wait_params: Vec<u8>,
    ok_results: Vec<u8>,
}

impl<'a> Supervisor<'a> {
    /// A supervisor for `manifest` (already validated).
    pub fn new(rt: &'static Runtime, manifest: &'a Manifest) -> Result<Self, String> {
        let spawner = rt.cap("spawner").ok_or("init holds no `spawner` cap")?;
        let ipc_cap = rt.cap("ipc").ok_or("init holds no `ipc` cap")?;
        let endpoint = ipc::create_endpoint(rt, ipc_cap.cap).map_err(|e| alloc::format!("{e}"))?;
        let n = manifest.services.len();
        Ok(Supervisor {
            rt,
            manifest,
            spawner: ProcessSpawnerClient::new(rt, spawner.cap),
            timer: rt.cap("timer").map(|t| TimerClient::new(rt, t.cap)),
            endpoint,
            recv_buf: alloc::vec![0; 4096],
            recv_posted: false,
            exports: BTreeMap::new(),
            running: BTreeMap::new(),
            restarts: alloc::vec![0; n],
            failed: alloc::vec![false; n],
            wait_params: wire::encode::<process_handle::wait_params::Owned>(|_| Ok(()))
                .expect("an empty message encodes"),
            ok_results: wire::encode::<service_exporter::export_results::Owned>(|_| Ok(()))
                .expect("an empty message encodes"),
        })
    }

    /// Starts everything in `order`, then supervises until no service is
    /// left running. Returns init's exit code.
    pub fn run(mut self, order: &[usize]) -> i64 {
        for &i in order {
            self.start(i);
        }
        while !self.running.is_empty() {
            self.step();
        }
        let failures = self.failed.iter().filter(|f| **f).count();
        println!(self.rt, "init: all services ended ({failures} failed)");
        i64::from(failures != 0)
    }

    fn name(&self, i: usize) -> &str {
        &self.manifest.services[i].name
    }

    /// Starts service `i` and waits until it exported everything it
    /// declares (or ended).
    fn start(&mut self, i: usize) {
        let s = &self.manifest.services[i];
        let mut grants = Vec::new();
        for g in &s.grants {
            let cap = match &g.source {
                GrantSource::Kernel(k) => self.rt.cap(k).map(|c| c.cap),
                GrantSource::Service(r) => {
                    let p = self.manifest.services.iter().position(|o| o.name == r.service);
                    p.and_then(|p| self.exports.get(&(p, r.export.clone())).copied())
                }
            };
            let Some(cap) = cap else {
                println!(
                    self.rt,
                    "init: cannot start {}: grant `{}` is not available", s.name, g.name
                );
                self.failed[i] = true;
                return;
            };
            grants.push(CapGrant { name: g.name.clone(), cap });
        }
        if !s.exports.is_empty() {
            match ipc::mint(
                self.rt,
                self.endpoint,
                capos_rt::schema::service_exporter::INTERFACE_ID,
                i as u64,
            ) {
                Ok(cap) => grants.push(CapGrant { name: "exporter".into(), cap }),
                Err(e) => {
                    println!(self.rt, "init: cannot start {}: no exporter cap ({e})", s.name);
                    self.failed[i] = true;
                    return;
                }
            }
        }
        let names: Vec<&str> = grants.iter().map(|g| g.name.as_str()).collect();
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        let caps = if names.is_empty() {
            String::from("no caps")
        } else {
            alloc::format!("caps {}", names.join(", "))
        };
        // With resources set, the service's limits are those fields and the
        // service defaults for the rest; without, the spawner's defaults.
        let spawned = match s.resources.spawn_limits() {
            None => {
                println!(self.rt, "init: starting {} (binary {}) with {caps}", s.name, s.binary);
                self.spawner.spawn(&s.binary, &args, &grants)
            }
            Some(l) => {
                println!(
                    self.rt,
                    "init: starting {} (binary {}) with {caps}; limits {}",
                    s.name,
                    s.binary,
                    LimitsText(l)
                );
                let profile = ResourceProfile {
                    frames: l.frames,
                    kernel_bytes: l.kernel_bytes,
                    threads: l.threads,
                    caps: l.caps,
                    open_calls: l.open_calls,
                };
                self.spawner.spawn_limited(&s.binary, &args, &grants, &profile)
            }
        };
        // The exporter cap was copied into the child (or not at all); init's
        // copy can go either way.
        if let Some(g) = grants.iter().find(|g| g.name == "exporter") {
            let _ = self.rt.release(g.cap);
        }
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                // Refused (QuotaExceeded when the limits are more than init
                // has left): a failure like an exit, under the restart policy.
                println!(self.rt, "init: cannot start {}: {}", s.name, crate::reason(&e));
                self.after_failure(i);
                return;
            }
        };
        self.running.insert(i, Running { handle, wait_buf: Box::new([0; 128]), waiting: false });
        while self.running.contains_key(&i)
            && s.exports.iter().any(|e| !self.exports.contains_key(&(i, e.clone())))
        {
            self.step();
        }
    }

    /// Posts what is missing (a RECV, a wait per service), then handles one
    /// batch of completions.
    fn step(&mut self) {
        let ring = self.rt.ring();
        if !self.recv_posted {
            let sqe = ipc::recv_sqe(self.endpoint, &mut self.recv_buf, UD_RECV);
            if ring.push(&sqe).is_ok() {
                self.recv_posted = true;
            }
        }
        for (&i, r) in self.running.iter_mut() {
            if !r.waiting {
                let sqe = Sqe {
                    opcode: OP_CALL,
                    cap: r.handle,
                    interface_id: capos_rt::schema::process_handle::INTERFACE_ID,
                    method: capos_rt::schema::process_handle::method::WAIT,
                    params_addr: self.wait_params.as_ptr() as u64,
                    params_len: self.wait_params.len() as u32,
                    results_addr: r.wait_buf.as_mut_ptr() as u64,
                    results_len: r.wait_buf.len() as u32,
                    user_data: UD_WAIT + i as u64,
                    ..Sqe::default()
                };
                if ring.push(&sqe).is_ok() {
                    r.waiting = true;
                }
            }
        }
        ring.publish();
        // Completions that arrived while init was in a blocking call (the
        // runtime set them aside) come first; wait only when there are none.
        let mut batch = Vec::new();
        while let Some(c) = self.rt.next_completion() {
            batch.push(c);
        }
        if batch.is_empty() {
            if ring.enter(1, u64::MAX).is_err() {
                return;
            }
            while let Some(c) = self.rt.next_completion() {
                batch.push(c);
            }
        }
        for c in batch {
            if c.user_data == UD_RECV {
                self.recv_posted = false;
                self.export_request(&c);
            } else if c.user_data >= UD_WAIT {
                self.exited((c.user_data - UD_WAIT) as usize, &c);
            }
        }
    }

    /// A service called `ServiceExporter.export(name)` with one cap.
    fn export_request(&mut self, c: &Cqe) {
        if c.status != 0 {
            return;
        }
        let len = c.result_len as usize;
        let Some(header) = RecvHeader::from_bytes(&self.recv_buf) else { return };
        let params = &self.recv_buf[RECV_HEADER_SIZE..len];
        let caps: Vec<u64> =
            capos_rt::abi::delivered_caps(&self.recv_buf, c.result_len, c.cap_count)
                .map(Iterator::collect)
                .unwrap_or_default();
        let i = header.cookie as usize;
        let name = wire::decode(params).ok().and_then(|m| {
            let p = m.get_root::<service_exporter::export_params::Reader<'_>>().ok()?;
            p.get_name().ok()?.to_str().ok().map(String::from)
        });
        let verdict = match (&name, caps.as_slice(), self.manifest.services.get(i)) {
            (Some(n), [cap], Some(s)) if s.exports.contains(n) => {
                println!(self.rt, "init: {} exported {n}", s.name);
                if let Some(old) = self.exports.insert((i, n.clone()), *cap) {
                    let _ = self.rt.release(old);
                }
                Ok(())
            }
            _ => {
                for cap in &caps {
                    let _ = self.rt.release(*cap);
                }
                Err(())
            }
        };
        let (status, bytes) = match verdict {
            Ok(()) => (0, self.ok_results.clone()),
            Err(()) => {
                let ex = capos_rt::schema::CapException {
                    code: 2,
                    message: "export is not declared in the manifest or carries no single cap"
                        .into(),
                };
                (capos_rt::abi::TransportError::AppError as u32, wire::encode_exception(&ex))
            }
        };
        let _ = ipc::reply(self.rt, self.endpoint, header.call_id, status, &bytes);
    }

    /// Service `i`'s `wait` completed: it ended.
    fn exited(&mut self, i: usize, c: &Cqe) {
        let Some(r) = self.running.remove(&i) else { return };
        let code = if c.status == 0 {
            wire::decode(&r.wait_buf[..c.result_len as usize])
                .ok()
                .and_then(|m| {
                    m.get_root::<process_handle::wait_results::Reader<'_>>()
                        .ok()
                        .map(|w| w.get_exit_code())
                })
                .unwrap_or(-1)
        } else {
            -1
        };
        let cause = ProcessHandleClient::new(self.rt, r.handle)
            .status()
            .map(|s| s.cause)
            .unwrap_or_else(|_| String::from("cause unknown"));
        let _ = self.rt.release(r.handle);
        let name = String::from(self.name(i));
        if code == 0 {
            println!(self.rt, "init: {name} exited with code 0");
            return;
        }
        println!(self.rt, "init: {name} failed: exit code {code} ({cause})");
        self.after_failure(i);
    }

    /// Service `i` failed (ended with a non-zero code, or its spawn was
    /// refused): restart it or leave it stopped, per its policy.
    fn after_failure(&mut self, i: usize) {
        let name = String::from(self.name(i));
        let policy = self.manifest.services[i].restart;
        if policy.mode != RestartMode::OnFailure {
            println!(self.rt, "init: {name} has restart policy never; leaving it stopped");
            self.failed[i] = true;
            return;
        }
        if self.restarts[i] >= policy.max_restarts {
            println!(
                self.rt,
                "init: {name} failed {} time(s), restart limit {} reached; giving up",
                self.restarts[i] + 1,
                policy.max_restarts
            );
            self.failed[i] = true;
            return;
        }
        self.restarts[i] += 1;
        // Doubling, but never more than the largest first delay allowed.
        let delay = (u64::from(policy.backoff_ms) << (self.restarts[i] - 1).min(16))
            .min(u64::from(capos_config::MAX_BACKOFF_MS));
        println!(
            self.rt,
            "init: restarting {name} in {delay} ms (restart {} of {})",
            self.restarts[i],
            policy.max_restarts
        );
        if let Some(t) = &self.timer {
            let _ = t.sleep(delay * 1_000_000);
        }
        self.start(i);
    }
}
