//! Property tests: whatever bytes arrive as params or results, generated
//! dispatchers and clients return an error or a value, never panic.

use capos_schema::*;
use proptest::prelude::*;

/// A server for every interface that reads every params field, so hostile
/// params get decoded as deep as a real server would go.
#[derive(Default)]
struct Everything;

impl ConsoleServer for Everything {
    fn write(
        &mut self,
        params: console::write_params::Reader<'_>,
        _: console::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        params.get_text()?.to_str()?;
        Ok(())
    }

    fn write_line(
        &mut self,
        params: console::write_line_params::Reader<'_>,
        _: console::write_line_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        params.get_text()?.to_str()?;
        Ok(())
    }
}

impl LogSinkServer for Everything {
    fn write(
        &mut self,
        params: log_sink::write_params::Reader<'_>,
        _: log_sink::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        params.get_level()?;
        params.get_message()?.to_str()?;
        Ok(())
    }
}

impl ProcessSpawnerServer for Everything {
    type Cap = ();

    fn spawn(
        &mut self,
        params: process_spawner::spawn_params::Reader<'_>,
        _: process_spawner::spawn_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        params.get_binary()?.to_str()?;
        for arg in params.get_args()? {
            arg?.to_str()?;
        }
        for grant in params.get_grants()? {
            Grant::read_from(grant)?;
        }
        Ok(())
    }

    fn spawn_limited(
        &mut self,
        params: process_spawner::spawn_limited_params::Reader<'_>,
        _: process_spawner::spawn_limited_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        params.get_binary()?.to_str()?;
        for arg in params.get_args()? {
            arg?.to_str()?;
        }
        for grant in params.get_grants()? {
            Grant::read_from(grant)?;
        }
        capos_schema::ResourceProfile::read_from(params.get_profile()?)?;
        Ok(())
    }
}

impl VirtualMemoryServer for Everything {
    type Cap = ();

    fn map(
        &mut self,
        params: virtual_memory::map_params::Reader<'_>,
        mut results: virtual_memory::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_addr(params.get_addr() ^ params.get_bytes());
        Ok(())
    }

    fn unmap(
        &mut self,
        _: virtual_memory::unmap_params::Reader<'_>,
        _: virtual_memory::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        Ok(())
    }

    fn create_shared_buffer(
        &mut self,
        _: virtual_memory::create_shared_buffer_params::Reader<'_>,
        _: virtual_memory::create_shared_buffer_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        Ok(())
    }
}

/// Feeds `params` to every dispatcher above with `method`.
fn dispatch_all(method: u16, params: &[u8]) {
    let _ = dispatch_console(&mut Everything, method, params);
    let _ = dispatch_log_sink(&mut Everything, method, params);
    let _ = dispatch_process_spawner(&mut Everything, method, params);
    let _ = dispatch_virtual_memory(&mut Everything, method, params);
}

fn spawn_params() -> Vec<u8> {
    wire::encode::<process_spawner::spawn_params::Owned>(|mut p| {
        p.set_binary("hello");
        let mut args = p.reborrow().init_args(2);
        args.set(0, "a");
        args.set(1, "bc");
        let mut grants = p.init_grants(1);
        Grant { name: "console".into(), cap: 3 }.write_to(grants.reborrow().get(0))?;
        Ok(())
    })
    .unwrap()
}

fn log_page() -> Vec<u8> {
    wire::encode::<log_reader::read_results::Owned>(|mut r| {
        let mut records = r.reborrow().init_records(2);
        for i in 0..2 {
            LogRecord {
                seq: i.into(),
                time_ns: 5,
                level: LogLevel::Debug,
                source: "s".into(),
                message: "m".into(),
            }
            .write_to(records.reborrow().get(i))?;
        }
        r.set_next_seq(2);
        Ok(())
    })
    .unwrap()
}

/// A transport answering every call with fixed results.
struct Canned(Vec<u8>);

impl Transport for Canned {
    fn call(&self, _: u64, _: u64, _: u16, _: &[u8]) -> Result<CallReply, CallError> {
        Ok(CallReply { results: self.0.clone(), caps: vec![7] })
    }
}

/// Random words behind a correct one-segment table, so decoding gets past
/// the framing into pointer traversal.
fn framed(words: &[u64]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 0];
    bytes.extend_from_slice(&(words.len() as u32).to_le_bytes());
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(method in 0u16..4, params in proptest::collection::vec(any::<u8>(), 0..256)) {
        dispatch_all(method, &params);
    }

    #[test]
    fn random_framed_words_never_panic(method in 0u16..3, words in proptest::collection::vec(any::<u64>(), 0..48)) {
        dispatch_all(method, &framed(&words));
    }

    #[test]
    fn corrupted_params_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut params = spawn_params();
        for (at, value) in edits {
            let i = at.index(params.len());
            params[i] = value;
        }
        let _ = dispatch_process_spawner(&mut Everything, process_spawner::method::SPAWN, &params);
    }

    #[test]
    fn corrupted_results_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut results = log_page();
        for (at, value) in edits {
            let i = at.index(results.len());
            results[i] = value;
        }
        let _ = LogReaderClient::new(Canned(results.clone()), 0).read(0, 10);
        let _ = SystemInfoClient::new(Canned(results.clone()), 0).info();
        let _ = ProcessSpawnerClient::new(Canned(results), 0).spawn("x", &[], &[]);
    }
}

#[test]
fn uncorrupted_inputs_decode() {
    assert!(dispatch_process_spawner(
        &mut Everything,
        process_spawner::method::SPAWN,
        &spawn_params()
    )
    .is_ok());
    let page = LogReaderClient::new(Canned(log_page()), 0).read(0, 10).unwrap();
    assert_eq!(page.records.len(), 2);
    assert_eq!(page.next_seq, 2);
}
