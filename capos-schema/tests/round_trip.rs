//! Generated clients talking to generated dispatchers over an in-memory
//! transport, and dispatchers fed hostile bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use capos_schema::capos_capnp;
use capos_schema::*;

// --- Servers ------------------------------------------------------------------

#[derive(Default)]
struct Console {
    written: String,
}

impl ConsoleServer for Console {
    fn write(
        &mut self,
        params: console::write_params::Reader<'_>,
        _results: console::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.written.push_str(params.get_text()?.to_str()?);
        Ok(())
    }

    fn write_line(
        &mut self,
        params: console::write_line_params::Reader<'_>,
        _results: console::write_line_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.written.push_str(params.get_text()?.to_str()?);
        self.written.push('\n');
        Ok(())
    }
}

fn description() -> SystemDescription {
    SystemDescription {
        os_name: "capOS".into(),
        version: "0.1.0".into(),
        hostname: "capos".into(),
        cpu_count: 2,
        total_memory_bytes: 512 << 20,
        free_memory_bytes: 300 << 20,
        uptime_ns: 1_500_000_000,
        kernel_heap_used_bytes: 64 * 1024,
        kernel_heap_allocations: 12345,
    }
}

struct SystemInfo;

impl SystemInfoServer for SystemInfo {
    fn info(
        &mut self,
        _params: system_info::info_params::Reader<'_>,
        results: system_info::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        description().write_to(results.init_info())?;
        Ok(())
    }
}

#[derive(Default)]
struct Timer {
    now: u64,
}

impl TimerServer for Timer {
    fn now(
        &mut self,
        _params: timer::now_params::Reader<'_>,
        mut results: timer::now_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_ns(self.now);
        Ok(())
    }

    fn sleep(
        &mut self,
        params: timer::sleep_params::Reader<'_>,
        _results: timer::sleep_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.now += params.get_ns();
        Ok(())
    }

    fn sleep_until(
        &mut self,
        params: timer::sleep_until_params::Reader<'_>,
        _results: timer::sleep_until_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.now = self.now.max(params.get_deadline_ns());
        Ok(())
    }
}

struct WallClock;

impl WallClockServer for WallClock {
    fn now(
        &mut self,
        _params: wall_clock::now_params::Reader<'_>,
        mut results: wall_clock::now_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_unix_seconds(1_790_000_000);
        results.set_nanos(250);
        Ok(())
    }
}

/// Both log interfaces over one log, as a log service would serve them.
#[derive(Default)]
struct Log {
    records: Vec<LogRecord>,
}

impl LogSinkServer for Log {
    fn write(
        &mut self,
        params: log_sink::write_params::Reader<'_>,
        _results: log_sink::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let seq = self.records.len() as u64;
        self.records.push(LogRecord {
            seq,
            time_ns: 1000 * seq,
            level: params.get_level()?,
            source: "test".into(),
            message: params.get_message()?.to_string()?,
        });
        Ok(())
    }
}

impl LogReaderServer for Log {
    fn read(
        &mut self,
        params: log_reader::read_params::Reader<'_>,
        mut results: log_reader::read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let from = params.get_from_seq() as usize;
        let max = params.get_max_records() as usize;
        let chosen: Vec<&LogRecord> = self.records.iter().skip(from).take(max).collect();
        let mut list = results.reborrow().init_records(chosen.len() as u32);
        for (i, record) in chosen.iter().enumerate() {
            record.write_to(list.reborrow().get(i as u32))?;
        }
        results.set_next_seq((from + chosen.len()) as u64);
        Ok(())
    }

    fn tail(
        &mut self,
        params: log_reader::tail_params::Reader<'_>,
        mut results: log_reader::tail_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let max = params.get_max_records() as usize;
        let skip = self.records.len().saturating_sub(max);
        let mut list = results.reborrow().init_records((self.records.len() - skip) as u32);
        for (i, record) in self.records.iter().skip(skip).enumerate() {
            record.write_to(list.reborrow().get(i as u32))?;
        }
        results.set_next_seq(self.records.len() as u64);
        Ok(())
    }
}

struct Entropy;

impl EntropySourceServer for Entropy {
    fn read(
        &mut self,
        params: entropy_source::read_params::Reader<'_>,
        mut results: entropy_source::read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let bytes = params.get_bytes();
        if bytes > 4096 {
            return Err(ServerError::exception(1, format!("{bytes} bytes is over the 4096 limit")));
        }
        let data: Vec<u8> = (0..bytes).map(|i| (i * 7) as u8).collect();
        results.set_data(&data);
        Ok(())
    }
}

/// A spawned child, as the spawner's table of processes holds it.
#[derive(Debug, Clone, PartialEq)]
struct Child {
    pid: u64,
    binary: String,
    args: Vec<String>,
    grants: Vec<Grant>,
    killed: bool,
    limits: Option<capos_schema::ResourceProfile>,
}

#[derive(Default)]
struct Spawner {
    children: Vec<Child>,
}

impl ProcessSpawnerServer for Spawner {
    /// A server-side cap is an index into `children`.
    type Cap = usize;

    fn spawn(
        &mut self,
        params: process_spawner::spawn_params::Reader<'_>,
        _results: process_spawner::spawn_results::Builder<'_>,
    ) -> Result<usize, ServerError> {
        let binary = params.get_binary()?.to_string()?;
        if binary.is_empty() {
            return Err(ServerError::exception(2, "spawn: empty binary name"));
        }
        let args = params
            .get_args()?
            .iter()
            .map(|a| Ok(a?.to_string()?))
            .collect::<Result<Vec<_>, ServerError>>()?;
        let grants = params
            .get_grants()?
            .iter()
            .map(Grant::read_from)
            .collect::<Result<Vec<_>, capnp::Error>>()?;
        self.children.push(Child {
            pid: 100 + self.children.len() as u64,
            binary,
            args,
            grants,
            killed: false,
            limits: None,
        });
        Ok(self.children.len() - 1)
    }

    fn spawn_limited(
        &mut self,
        params: process_spawner::spawn_limited_params::Reader<'_>,
        _results: process_spawner::spawn_limited_results::Builder<'_>,
    ) -> Result<usize, ServerError> {
        let limits = capos_schema::ResourceProfile::read_from(params.get_profile()?)?;
        if limits.threads > 32 {
            return Err(ServerError::exception(2, "threads over 32"));
        }
        self.children.push(Child {
            pid: 100 + self.children.len() as u64,
            binary: params.get_binary()?.to_string()?,
            args: Vec::new(),
            grants: Vec::new(),
            killed: false,
            limits: Some(limits),
        });
        Ok(self.children.len() - 1)
    }
}

struct Handle<'a> {
    child: &'a mut Child,
}

impl ProcessHandleServer for Handle<'_> {
    fn usage(
        &mut self,
        _params: process_handle::usage_params::Reader<'_>,
        mut results: process_handle::usage_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let limits = self.child.limits.clone().unwrap_or(capos_schema::ResourceProfile {
            frames: 0,
            kernel_bytes: 0,
            threads: 0,
            caps: 0,
            open_calls: 0,
        });
        let used = capos_schema::ResourceProfile { frames: limits.frames / 2, ..limits.clone() };
        used.write_to(results.reborrow().init_used())?;
        limits.write_to(results.init_limits())?;
        Ok(())
    }

    fn wait(
        &mut self,
        _params: process_handle::wait_params::Reader<'_>,
        mut results: process_handle::wait_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_exit_code(if self.child.killed { -9 } else { 0 });
        Ok(())
    }

    fn kill(
        &mut self,
        _params: process_handle::kill_params::Reader<'_>,
        _results: process_handle::kill_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.child.killed = true;
        Ok(())
    }

    fn id(
        &mut self,
        _params: process_handle::id_params::Reader<'_>,
        mut results: process_handle::id_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_pid(self.child.pid);
        Ok(())
    }

    fn status(
        &mut self,
        _params: process_handle::status_params::Reader<'_>,
        results: process_handle::status_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let status = capos_schema::ProcessStatus {
            exited: self.child.killed,
            exit_code: if self.child.killed { -9 } else { 0 },
            cause: if self.child.killed { "killed" } else { "running" }.into(),
            fault_rip: 0,
            fault_address: 0,
        };
        capos_schema::SchemaStruct::write_to(&status, results.init_status())?;
        Ok(())
    }
}

#[derive(Default)]
struct Memory {
    mapped: Vec<(u64, u64, bool)>,
}

impl VirtualMemoryServer for Memory {
    /// No shared buffers here: `createSharedBuffer` is refused.
    type Cap = ();

    fn map(
        &mut self,
        params: virtual_memory::map_params::Reader<'_>,
        mut results: virtual_memory::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let addr = if params.get_addr() == 0 { 0x4000_0000 } else { params.get_addr() };
        self.mapped.push((addr, params.get_bytes(), params.get_writable()));
        results.set_addr(addr);
        Ok(())
    }

    fn unmap(
        &mut self,
        params: virtual_memory::unmap_params::Reader<'_>,
        _results: virtual_memory::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let at = (params.get_addr(), params.get_bytes());
        self.mapped.retain(|(addr, bytes, _)| (*addr, *bytes) != at);
        Ok(())
    }

    fn create_shared_buffer(
        &mut self,
        _: virtual_memory::create_shared_buffer_params::Reader<'_>,
        _: virtual_memory::create_shared_buffer_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        Err(ServerError::exception(3, "no shared buffers in this test"))
    }
}

// --- Transport ----------------------------------------------------------------

/// What a cap in the test's cap table refers to.
#[derive(Debug, Clone, Copy)]
enum Object {
    Console,
    SystemInfo,
    Timer,
    WallClock,
    LogSink,
    LogReader,
    Entropy,
    Spawner,
    Child(usize),
    Memory,
}

#[derive(Default)]
struct World {
    console: Console,
    timer: Timer,
    log: Log,
    spawner: Spawner,
    memory: Memory,
    /// The cap table: CapId -> object (CapIds are indexes).
    caps: Vec<Object>,
    calls: usize,
}

/// An in-memory ring: a call goes straight to the generated dispatcher of the
/// object the cap names, as the kernel's cap table would route it.
#[derive(Default)]
struct Loopback {
    world: RefCell<World>,
}

impl Loopback {
    fn grant(&self, object: Object) -> u64 {
        let mut world = self.world.borrow_mut();
        world.caps.push(object);
        world.caps.len() as u64 - 1
    }
}

const STATUS_WRONG_INTERFACE: u32 = 3;
const STATUS_INVALID_CAP: u32 = 1;

fn status(e: DispatchError) -> CallError {
    match e {
        DispatchError::BadMethod(_) => CallError::Transport(4),
        DispatchError::Malformed(_) => CallError::Transport(6),
        DispatchError::Exception(e) => {
            // What crosses the ring is the encoded exception.
            CallError::Exception(wire::decode_exception(&wire::encode_exception(&e)).unwrap())
        }
    }
}

impl Transport for Loopback {
    fn call(
        &self,
        cap: u64,
        interface_id: u64,
        method: u16,
        params: &[u8],
    ) -> Result<CallReply, CallError> {
        let mut world = self.world.borrow_mut();
        world.calls += 1;
        let object =
            *world.caps.get(cap as usize).ok_or(CallError::Transport(STATUS_INVALID_CAP))?;
        let expected = match object {
            Object::Console => console::INTERFACE_ID,
            Object::SystemInfo => system_info::INTERFACE_ID,
            Object::Timer => timer::INTERFACE_ID,
            Object::WallClock => wall_clock::INTERFACE_ID,
            Object::LogSink => log_sink::INTERFACE_ID,
            Object::LogReader => log_reader::INTERFACE_ID,
            Object::Entropy => entropy_source::INTERFACE_ID,
            Object::Spawner => process_spawner::INTERFACE_ID,
            Object::Child(_) => process_handle::INTERFACE_ID,
            Object::Memory => virtual_memory::INTERFACE_ID,
        };
        if interface_id != expected {
            return Err(CallError::Transport(STATUS_WRONG_INTERFACE));
        }
        let w = &mut *world;
        let results = match object {
            Object::Console => dispatch_console(&mut w.console, method, params),
            Object::SystemInfo => dispatch_system_info(&mut SystemInfo, method, params),
            Object::Timer => dispatch_timer(&mut w.timer, method, params),
            Object::WallClock => dispatch_wall_clock(&mut WallClock, method, params),
            Object::LogSink => dispatch_log_sink(&mut w.log, method, params),
            Object::LogReader => dispatch_log_reader(&mut w.log, method, params),
            Object::Entropy => dispatch_entropy_source(&mut Entropy, method, params),
            Object::Memory => {
                dispatch_virtual_memory(&mut w.memory, method, params).map(|d| d.results)
            }
            Object::Child(index) => {
                let mut handle = Handle { child: &mut w.spawner.children[index] };
                dispatch_process_handle(&mut handle, method, params)
            }
            Object::Spawner => {
                let done =
                    dispatch_process_spawner(&mut w.spawner, method, params).map_err(status)?;
                // The ring turns the server's caps into CapIds in the caller's table.
                let mut caps = Vec::new();
                for index in done.caps {
                    w.caps.push(Object::Child(index));
                    caps.push(w.caps.len() as u64 - 1);
                }
                return Ok(CallReply { results: done.results, caps });
            }
        };
        Ok(CallReply { results: results.map_err(status)?, caps: Vec::new() })
    }
}

// --- Round trips ----------------------------------------------------------------

#[test]
fn console_write_and_write_line() {
    let ring = Loopback::default();
    let console = ConsoleClient::new(&ring, ring.grant(Object::Console));
    console.write("hello, ").unwrap();
    console.write_line("capOS").unwrap();
    console.write_line("").unwrap();
    assert_eq!(ring.world.borrow().console.written, "hello, capOS\n\n");
    assert_eq!(ring.world.borrow().calls, 3);
}

#[test]
fn system_info_returns_the_description() {
    let ring = Loopback::default();
    let info = SystemInfoClient::new(&ring, ring.grant(Object::SystemInfo));
    assert_eq!(info.info().unwrap(), description());
}

#[test]
fn timer_now_and_sleep() {
    let ring = Loopback::default();
    let timer = TimerClient::new(&ring, ring.grant(Object::Timer));
    assert_eq!(timer.now().unwrap(), 0);
    timer.sleep(1_000_000).unwrap();
    timer.sleep(u64::MAX - 1_000_000).unwrap();
    assert_eq!(timer.now().unwrap(), u64::MAX);
}

#[test]
fn wall_clock_returns_both_fields() {
    let ring = Loopback::default();
    let clock = WallClockClient::new(&ring, ring.grant(Object::WallClock));
    assert_eq!(
        clock.now().unwrap(),
        wall_clock::NowReply { unix_seconds: 1_790_000_000, nanos: 250 }
    );
}

#[test]
fn log_written_through_the_sink_reads_back_through_the_reader() {
    let ring = Loopback::default();
    let sink = LogSinkClient::new(&ring, ring.grant(Object::LogSink));
    let reader = LogReaderClient::new(&ring, ring.grant(Object::LogReader));
    sink.write(LogLevel::Info, "net: link up").unwrap();
    sink.write(LogLevel::Warn, "net: no DHCP answer").unwrap();
    sink.write(LogLevel::Error, "ünïcödé").unwrap();

    let page = reader.read(1, 10).unwrap();
    assert_eq!(page.next_seq, 3);
    let got: Vec<(LogLevel, &str)> =
        page.records.iter().map(|r| (r.level, r.message.as_str())).collect();
    assert_eq!(got, [(LogLevel::Warn, "net: no DHCP answer"), (LogLevel::Error, "ünïcödé")]);
    assert_eq!(page.records[0].seq, 1);
    assert_eq!(page.records[0].source, "test");

    let empty = reader.read(3, 10).unwrap();
    assert!(empty.records.is_empty());
    assert_eq!(empty.next_seq, 3);
}

#[test]
fn entropy_returns_data_and_exceptions_reach_the_client() {
    let ring = Loopback::default();
    let entropy = EntropySourceClient::new(&ring, ring.grant(Object::Entropy));
    let data = entropy.read(32).unwrap();
    assert_eq!(data.len(), 32);
    assert_eq!(data[3], 21);
    match entropy.read(5000) {
        Err(CallError::Exception(e)) => {
            assert_eq!(e.code, 1);
            assert_eq!(e.message, "5000 bytes is over the 4096 limit");
        }
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn spawn_returns_a_handle_cap_through_the_ring() {
    let ring = Loopback::default();
    let console = ring.grant(Object::Console);
    let spawner = ProcessSpawnerClient::new(&ring, ring.grant(Object::Spawner));
    let grants = [Grant { name: "console".into(), cap: console }];
    let handle_cap = spawner.spawn("hello", &["--greet", "wörld"], &grants).unwrap();

    let child = ring.world.borrow().spawner.children[0].clone();
    assert_eq!(child.binary, "hello");
    assert_eq!(child.args, ["--greet", "wörld"]);
    assert_eq!(child.grants, grants);

    let handle = ProcessHandleClient::new(&ring, handle_cap);
    assert_eq!(handle.id().unwrap(), 100);
    handle.kill().unwrap();
    assert_eq!(handle.wait().unwrap(), -9);

    let second = spawner.spawn("chat", &[], &[]).unwrap();
    assert_ne!(second, handle_cap);
    assert_eq!(ProcessHandleClient::new(&ring, second).id().unwrap(), 101);

    match spawner.spawn("", &[], &[]) {
        Err(CallError::Exception(e)) => assert_eq!(e.code, 2),
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn spawn_limited_carries_the_profile_and_usage_reads_it_back() {
    let ring = Loopback::default();
    let spawner = ProcessSpawnerClient::new(&ring, ring.grant(Object::Spawner));
    let profile = capos_schema::ResourceProfile {
        frames: 4096,
        kernel_bytes: 1 << 20,
        threads: 6,
        caps: 32,
        open_calls: 100,
    };
    let h = spawner.spawn_limited("hog", &[], &[], &profile).unwrap();
    assert_eq!(ring.world.borrow().spawner.children[0].limits, Some(profile.clone()));
    let usage = ProcessHandleClient::new(&ring, h).usage().unwrap();
    assert_eq!(usage.limits, profile);
    assert_eq!(usage.used.frames, 2048);
    let over = capos_schema::ResourceProfile { threads: 33, ..profile };
    match spawner.spawn_limited("hog", &[], &[], &over) {
        Err(CallError::Exception(e)) => assert_eq!(e.code, 2),
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn virtual_memory_map_and_unmap() {
    let ring = Loopback::default();
    let vm = VirtualMemoryClient::new(&ring, ring.grant(Object::Memory));
    assert_eq!(vm.map(0, 8192, true).unwrap(), 0x4000_0000);
    assert_eq!(vm.map(0x1000_0000, 4096, false).unwrap(), 0x1000_0000);
    vm.unmap(0x4000_0000, 8192).unwrap();
    assert_eq!(ring.world.borrow().memory.mapped, [(0x1000_0000, 4096, false)]);
}

#[test]
fn transport_errors_reach_the_client() {
    let ring = Loopback::default();
    let timer_cap = ring.grant(Object::Timer);
    // A Timer cap used as a Console: the interface id does not match.
    let wrong = ConsoleClient::new(&ring, timer_cap);
    assert!(matches!(wrong.write_line("x"), Err(CallError::Transport(STATUS_WRONG_INTERFACE))));
    let missing = TimerClient::new(&ring, 99);
    assert!(matches!(missing.now(), Err(CallError::Transport(STATUS_INVALID_CAP))));
}

// --- Replies a client must not trust ----------------------------------------------

/// A transport that answers every call with a fixed reply.
struct Canned(CallReply);

impl Transport for Canned {
    fn call(&self, _: u64, _: u64, _: u16, _: &[u8]) -> Result<CallReply, CallError> {
        Ok(self.0.clone())
    }
}

#[test]
fn malformed_results_are_decode_errors() {
    let garbage = Canned(CallReply { results: vec![0xff; 24], caps: vec![] });
    assert!(matches!(TimerClient::new(&garbage, 0).now(), Err(CallError::Decode(_))));
    let empty = Canned(CallReply::default());
    assert!(matches!(ConsoleClient::new(&empty, 0).write("x"), Err(CallError::Decode(_))));
}

#[test]
fn missing_result_caps_are_reported() {
    let results = wire::encode::<process_spawner::spawn_results::Owned>(|_| Ok(())).unwrap();
    let no_caps = Canned(CallReply { results, caps: vec![] });
    match ProcessSpawnerClient::new(&no_caps, 0).spawn("x", &[], &[]) {
        Err(CallError::MissingResultCap { index: 0, received: 0 }) => {}
        other => panic!("expected a missing result cap, got {other:?}"),
    }
}

// --- Hostile params at the dispatcher ---------------------------------------------

#[test]
fn unknown_ordinals_are_bad_method() {
    let params = wire::encode::<timer::now_params::Owned>(|_| Ok(())).unwrap();
    for method in [3, 4, 255, u16::MAX] {
        match dispatch_timer(&mut Timer::default(), method, &params) {
            Err(DispatchError::BadMethod(m)) => assert_eq!(m, method),
            other => panic!("method {method}: expected BadMethod, got {other:?}"),
        }
    }
    assert!(matches!(
        dispatch_process_spawner(&mut Spawner::default(), 2, &params),
        Err(DispatchError::BadMethod(2))
    ));
}

#[test]
fn garbage_params_are_malformed() {
    let cases: [&[u8]; 5] = [
        &[],
        &[1, 2, 3],
        &[0xff; 64],
        // One segment claiming 1000 words, holding none.
        &[0, 0, 0, 0, 0xe8, 0x03, 0, 0],
        // A valid empty message followed by a stray word.
        &[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9],
    ];
    for params in cases {
        assert!(
            matches!(
                dispatch_console(&mut Console::default(), console::method::WRITE, params),
                Err(DispatchError::Malformed(_))
            ),
            "params {params:?}"
        );
    }
}

#[test]
fn bad_fields_are_malformed() {
    // Root struct with one pointer whose target lies outside the message.
    let out_of_bounds: [u8; 24] = [
        0, 0, 0, 0, 2, 0, 0, 0, // one segment of two words
        0, 0, 0, 0, 0, 0, 1, 0, // root: struct at +0, no data, one pointer
        0x41, 0, 0, 0, 0x2a, 0, 0, 0, // text: a byte list 16 words ahead, 5 bytes
    ];
    assert!(matches!(
        dispatch_console(&mut Console::default(), console::method::WRITE_LINE, &out_of_bounds),
        Err(DispatchError::Malformed(_))
    ));

    let bad_utf8 = wire::encode::<console::write_params::Owned>(|p| {
        let text = p.init_text(2);
        text.as_bytes_mut().copy_from_slice(&[0xc3, 0x28]);
        Ok(())
    })
    .unwrap();
    assert!(matches!(
        dispatch_console(&mut Console::default(), console::method::WRITE, &bad_utf8),
        Err(DispatchError::Malformed(_))
    ));

    // LogLevel has five enumerants; 99 is not one of them. The level is the
    // first data word of the params struct, right after the root pointer.
    let mut bad_enum = wire::encode::<log_sink::write_params::Owned>(|mut p| {
        p.set_level(LogLevel::Info);
        p.set_message("m");
        Ok(())
    })
    .unwrap();
    assert_eq!(bad_enum[16..18], [2, 0]);
    bad_enum[16] = 99;
    assert!(matches!(
        dispatch_log_sink(&mut Log::default(), log_sink::method::WRITE, &bad_enum),
        Err(DispatchError::Malformed(_))
    ));
}

// --- Generated constants ---------------------------------------------------------

#[test]
fn interface_ids_match_capnpc() {
    use capnp::traits::HasTypeId;
    assert_eq!(console::INTERFACE_ID, capos_capnp::console::Client::TYPE_ID);
    assert_eq!(system_info::INTERFACE_ID, capos_capnp::system_info::Client::TYPE_ID);
    assert_eq!(process_spawner::INTERFACE_ID, capos_capnp::process_spawner::Client::TYPE_ID);
    assert_eq!(virtual_memory::INTERFACE_ID, capos_capnp::virtual_memory::Client::TYPE_ID);
}

#[test]
fn interface_and_method_names() {
    let mut ids = HashMap::new();
    for (id, name) in INTERFACES {
        assert!(ids.insert(*id, *name).is_none(), "duplicate id for {name}");
        assert_eq!(interface_name(*id), Some(*name));
    }
    let declared = include_str!("../../schema/capos.capnp")
        .lines()
        .filter(|l| l.starts_with("interface "))
        .count();
    assert_eq!(INTERFACES.len(), declared, "one entry per interface in the schema");
    assert_eq!(interface_name(0), None);
    assert_eq!(console::NAME, "Console");
    assert_eq!(console::method::WRITE_LINE, 1);
    assert_eq!(console::method::name(1), Some("writeLine"));
    assert_eq!(process_handle::method::ID, 2);
    assert_eq!(process_handle::method::name(3), Some("status"));
    assert_eq!(process_handle::method::name(99), None);
}
