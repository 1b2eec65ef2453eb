//! `LogSink` and `LogReader`: a bounded, sequence-numbered log of records
//! written by processes. The source of each record is the writer's process
//! name, set by the kernel, never by the writer.
//!
//! A record's text is bounded to [`MAX_MESSAGE`] bytes (the rest is dropped
//! and the record ends `…(N bytes cut)`) and has its control characters
//! escaped ([`capos_lib::escape`]), so the store, `LogReader` and the COM2
//! line `log: #N Level source: text` all hold the same one-line text.

use alloc::collections::VecDeque;
use alloc::string::String;

use capos_schema::capos_capnp::{log_reader, log_sink, LogLevel};
use capos_schema::{
    dispatch_log_reader_in, dispatch_log_sink_in, LogReaderServer, LogRecord, LogSinkServer,
    SchemaStruct, ServerError,
};

use super::{exception, outcome, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::sync::IrqLock;

/// Records kept; older ones are dropped first.
pub const CAPACITY: usize = 256;
/// Longest record text kept, escaped, before the cut marker (longer text is
/// cut at a character boundary).
pub const MAX_MESSAGE: usize = 512;
/// Most records one `read` returns.
pub const MAX_READ: u32 = 64;

struct Log {
    records: VecDeque<LogRecord>,
    next_seq: u64,
}

static LOG: IrqLock<Log> = IrqLock::new(Log { records: VecDeque::new(), next_seq: 1 });

/// Appends a record of `message` bounded and escaped; returns its sequence
/// number and the text as kept.
pub fn append(level: LogLevel, source: &str, message: &str) -> (u64, String) {
    let mut text = String::new();
    let _ = capos_lib::escape::write_record(&mut text, message, MAX_MESSAGE);
    let record = LogRecord {
        seq: 0,
        time_ns: crate::time::monotonic_ns(),
        level,
        source: String::from(source),
        message: text.clone(),
    };
    let mut log = LOG.lock();
    let seq = log.next_seq;
    log.next_seq += 1;
    if log.records.len() == CAPACITY {
        log.records.pop_front();
    }
    log.records.push_back(LogRecord { seq, ..record });
    (seq, text)
}

/// The writing side.
pub struct KernelLogSink;
/// The reading side.
pub struct KernelLogReader;

struct Sink<'a> {
    ctx: &'a CallContext<'a>,
}

impl LogSinkServer for Sink<'_> {
    fn write(
        &mut self,
        params: log_sink::write_params::Reader<'_>,
        _results: log_sink::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let level = params.get_level()?;
        let message = params.get_message()?.to_str()?;
        let source = &self.ctx.caller.name;
        let (seq, text) = append(level, source, message);
        crate::kinfo!("log", "#{} {:?} {}: {}", seq, level, source, text);
        Ok(())
    }
}

struct Reader;

impl LogReaderServer for Reader {
    fn read(
        &mut self,
        params: log_reader::read_params::Reader<'_>,
        mut results: log_reader::read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let from = params.get_from_seq();
        let max = params.get_max_records();
        if max > MAX_READ {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("maxRecords {max} exceeds {MAX_READ}"),
            ));
        }
        let log = LOG.lock();
        let picked: alloc::vec::Vec<&LogRecord> =
            log.records.iter().filter(|r| r.seq >= from).take(max as usize).collect();
        let next = picked.last().map(|r| r.seq + 1).unwrap_or(from.min(log.next_seq));
        let mut list = results.reborrow().init_records(picked.len() as u32);
        for (i, r) in picked.iter().enumerate() {
            r.write_to(list.reborrow().get(i as u32))?;
        }
        results.set_next_seq(next);
        Ok(())
    }

    fn tail(
        &mut self,
        params: log_reader::tail_params::Reader<'_>,
        mut results: log_reader::tail_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let max = params.get_max_records();
        if max > MAX_READ {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("maxRecords {max} exceeds {MAX_READ}"),
            ));
        }
        let log = LOG.lock();
        let skip = log.records.len().saturating_sub(max as usize);
        let picked: alloc::vec::Vec<&LogRecord> = log.records.iter().skip(skip).collect();
        let mut list = results.reborrow().init_records(picked.len() as u32);
        for (i, r) in picked.iter().enumerate() {
            r.write_to(list.reborrow().get(i as u32))?;
        }
        results.set_next_seq(log.next_seq);
        Ok(())
    }
}

impl CapObject for KernelLogSink {
    fn interface_id(&self) -> u64 {
        capos_schema::log_sink::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::log_sink::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::log_sink::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        outcome(dispatch_log_sink_in(&mut Sink { ctx }, method, frame))
    }
}

impl CapObject for KernelLogReader {
    fn interface_id(&self) -> u64 {
        capos_schema::log_reader::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::log_reader::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::log_reader::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_log_reader_in(&mut Reader, method, frame))
    }
}
