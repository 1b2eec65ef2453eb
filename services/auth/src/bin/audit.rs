//! audit: the append-only audit trail of identity decisions.
//!
//! Serves two caps on one endpoint, exported to init: `audit` (AuditLog:
//! append only) for the services that decide, and `reader` (AuditReader)
//! for operators. Records are kept in memory, the newest
//! [`MAX_RECORDS`]; each is also written to the system log (so it reaches
//! the kernel log on COM2) with source `audit`. Nothing can change or remove
//! a record; an append with an over-long field is refused, not cut.
//!
//! Caps from the manifest: ipc, exporter, timer, clock, log.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;

use capos_rt::schema::capos_capnp::{audit_log, audit_reader};
use capos_rt::schema::{
    dispatch_audit_log, dispatch_audit_reader, AuditLogServer, AuditReaderServer, AuditRecord,
    LogLevel, LogSinkClient, SchemaStruct, ServerError, TimerClient, WallClockClient,
};
use capos_rt::{ipc, println, Runtime};

capos_rt::entry!(main);

/// Records kept.
pub const MAX_RECORDS: usize = 1024;
/// Records one `tail` returns at most.
pub const MAX_TAIL: u32 = 200;
/// Longest event, principal or detail, in bytes.
pub const MAX_FIELD: usize = 256;

const COOKIE_WRITER: u64 = 1;
const COOKIE_READER: u64 = 2;

struct Trail<'a> {
    rt: &'a Runtime,
    records: VecDeque<AuditRecord>,
    next_seq: u64,
}

fn field(value: &str, what: &str) -> Result<String, ServerError> {
    if value.len() > MAX_FIELD {
        return Err(ServerError::exception(
            1,
            format!("{what} has {} bytes (at most {MAX_FIELD})", value.len()),
        ));
    }
    Ok(value.chars().map(|c| if c.is_control() { '?' } else { c }).collect())
}

impl AuditLogServer for Trail<'_> {
    fn append(
        &mut self,
        params: audit_log::append_params::Reader<'_>,
        mut results: audit_log::append_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let event = field(params.get_event()?.to_str()?, "event")?;
        let principal = field(params.get_principal()?.to_str()?, "principal")?;
        let detail = field(params.get_detail()?.to_str()?, "detail")?;
        let rt = self.rt;
        let time_ns = rt.cap("timer").and_then(|t| TimerClient::new(rt, t.cap).now().ok());
        let unix = rt.cap("clock").and_then(|c| WallClockClient::new(rt, c.cap).now().ok());
        let record = AuditRecord {
            seq: self.next_seq,
            time_ns: time_ns.unwrap_or(0),
            unix_seconds: unix.map_or(0, |u| u.unix_seconds),
            event,
            principal,
            session_id: params.get_session_id(),
            detail,
        };
        self.next_seq += 1;
        if let Some(log) = rt.cap("log") {
            let line = format!(
                "#{} {} principal={} session={} {}",
                record.seq, record.event, record.principal, record.session_id, record.detail
            );
            let _ = LogSinkClient::new(rt, log.cap).write(LogLevel::Info, &line);
        }
        results.set_seq(record.seq);
        if self.records.len() == MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(record);
        Ok(())
    }
}

impl AuditReaderServer for Trail<'_> {
    fn tail(
        &mut self,
        params: audit_reader::tail_params::Reader<'_>,
        mut results: audit_reader::tail_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let max = params.get_max_records();
        if max > MAX_TAIL {
            return Err(ServerError::exception(1, format!("maxRecords {max} is over {MAX_TAIL}")));
        }
        let skip = self.records.len().saturating_sub(max as usize);
        let picked = self.records.iter().skip(skip);
        let mut list = results.reborrow().init_records(picked.len() as u32);
        for (i, r) in picked.enumerate() {
            r.write_to(list.reborrow().get(i as u32))?;
        }
        Ok(())
    }
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(ipc_cap), Some(exporter)) = (rt.cap("ipc"), rt.cap("exporter")) else {
        println!(rt, "audit: needs the ipc and exporter caps");
        return 2;
    };
    let Ok(endpoint) = ipc::create_endpoint(rt, ipc_cap.cap) else { return 3 };
    let writer = ipc::mint(rt, endpoint, capos_rt::schema::audit_log::INTERFACE_ID, COOKIE_WRITER);
    let reader =
        ipc::mint(rt, endpoint, capos_rt::schema::audit_reader::INTERFACE_ID, COOKIE_READER);
    let (Ok(writer), Ok(reader)) = (writer, reader) else { return 4 };
    for (name, cap) in [("audit", writer), ("reader", reader)] {
        if let Err(e) = ipc::export(rt, exporter.cap, name, cap) {
            println!(rt, "audit: export of {name} failed: {e}");
            return 5;
        }
    }
    let mut trail = Trail { rt, records: VecDeque::new(), next_seq: 1 };
    let end = ipc::serve(rt, endpoint, |request| match request.header.cookie {
        COOKIE_WRITER => dispatch_audit_log(&mut trail, request.header.method, &request.params),
        COOKIE_READER => dispatch_audit_reader(&mut trail, request.header.method, &request.params),
        _ => Err(capos_rt::schema::DispatchError::BadMethod(request.header.method)),
    });
    println!(rt, "audit: stopped serving: {end}");
    1
}
