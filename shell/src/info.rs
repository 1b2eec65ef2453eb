//! Commands that read and show: help, caps, session, whoami, ps, date,
//! hostname, uptime, log and audit.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use capos_lib::shell::{
    format_cpu, format_duration, format_log_time, format_table, help_entry, sanitize, COMMANDS,
};
use capos_lib::time::DateTime;
use capos_rt::schema::{
    audit_reader, device_manager, log_reader, process_table, system_info, timer, user_session,
    wall_clock, AuditReaderClient, AuditRecord, AuthStrength, CallError, DeviceManagerClient,
    LogLevel, LogReaderClient, LogRecord, ProcessTableClient, SessionInfo, SystemInfoClient,
    TimerClient, UserSessionClient, WallClockClient,
};

use capos_rt::Runtime;

use crate::access::{failed, interface_label, need};
use crate::terminal::say;
use crate::Shell;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Prints rows laid out by [`format_table`].
fn print_table(shell: &mut Shell, rows: &[Vec<String>], right: &[bool]) {
    for line in format_table(rows, right) {
        say!(shell.term, "{line}");
    }
}

/// `help [command]`.
pub fn help(shell: &mut Shell, topic: Option<&str>) -> Result<(), String> {
    let Some(topic) = topic else {
        let rows: Vec<Vec<String>> =
            COMMANDS.iter().map(|h| vec![h.name.to_string(), h.summary.to_string()]).collect();
        print_table(shell, &rows, &[]);
        say!(shell.term, "`help <command>` explains one; `help run` shows how to grant caps.");
        return Ok(());
    };
    let h = help_entry(topic).ok_or_else(|| format!("help: no command named {topic}"))?;
    say!(shell.term, "usage: {}", h.usage);
    say!(shell.term, "{}", h.summary);
    for line in h.details {
        say!(shell.term, "{line}");
    }
    match h.caps {
        [] => say!(shell.term, "caps: none"),
        caps => say!(shell.term, "caps: {}", caps.join(", ")),
    }
    Ok(())
}

/// `caps`: every cap held, by name.
pub fn caps(shell: &mut Shell) -> Result<(), String> {
    let mut held: Vec<(String, u64)> =
        shell.rt.caps().map(|(name, c)| (name, c.interface_id)).collect();
    held.sort();
    let rows: Vec<Vec<String>> = held
        .iter()
        .map(|(name, id)| vec![sanitize(name).into_owned(), interface_label(*id)])
        .collect();
    print_table(shell, &rows, &[]);
    Ok(())
}

/// This session's record, from the `session` cap.
pub fn session_info(shell: &Shell, command: &str) -> Result<SessionInfo, String> {
    let cap = need(shell.rt, command, "session", user_session::INTERFACE_ID)?;
    UserSessionClient::new(shell.rt, cap).info().map_err(|e| failed(command, &e))
}

/// `session`.
pub fn session(shell: &mut Shell) -> Result<(), String> {
    let info = session_info(shell, "session")?;
    let auth = match info.auth_strength {
        AuthStrength::None => "none (anonymous)",
        AuthStrength::Password => "password",
    };
    let rows = [
        ["session", &info.id.to_string()],
        ["principal", &sanitize(&info.principal)],
        ["profile", &sanitize(&info.profile)],
        ["auth", auth],
        ["login", &DateTime::from_unix(info.start_unix_seconds).to_string()],
        ["duration", &session_duration(shell, &info)],
    ]
    .map(|row| row.map(String::from).to_vec());
    print_table(shell, &rows, &[]);
    Ok(())
}

/// How long the session has lasted: by the timer, else by the uptime, else
/// by the wall clock; `?` with none of them.
fn session_duration(shell: &Shell, info: &SessionInfo) -> String {
    let rt = shell.rt;
    let since_boot = rt
        .cap("timer")
        .filter(|c| c.interface_id == timer::INTERFACE_ID)
        .and_then(|c| TimerClient::new(rt, c.cap).now().ok())
        .or_else(|| uptime_ns(shell));
    if let Some(now) = since_boot {
        return format_duration(now.saturating_sub(info.start_ns));
    }
    match rt.cap("clock").filter(|c| c.interface_id == wall_clock::INTERFACE_ID) {
        Some(c) => match WallClockClient::new(rt, c.cap).now() {
            Ok(now) => {
                let secs = now.unix_seconds.saturating_sub(info.start_unix_seconds).max(0);
                format_duration((secs as u64).saturating_mul(NS_PER_SEC))
            }
            Err(_) => "?".to_string(),
        },
        None => "?".to_string(),
    }
}

/// The uptime from `sysinfo`, if the session holds it.
fn uptime_ns(shell: &Shell) -> Option<u64> {
    let c = shell.rt.cap("sysinfo").filter(|c| c.interface_id == system_info::INTERFACE_ID)?;
    SystemInfoClient::new(shell.rt, c.cap).info().ok().map(|i| i.uptime_ns)
}

/// `whoami`.
pub fn whoami(shell: &mut Shell) -> Result<(), String> {
    let info = session_info(shell, "whoami")?;
    say!(shell.term, "{} (profile {})", sanitize(&info.principal), sanitize(&info.profile));
    Ok(())
}

/// `ps`: the process table.
pub fn ps(shell: &mut Shell) -> Result<(), String> {
    let cap = need(shell.rt, "ps", "processes", process_table::INTERFACE_ID)?;
    let mut list = ProcessTableClient::new(shell.rt, cap).list().map_err(|e| failed("ps", &e))?;
    list.sort_by_key(|p| p.pid);
    let mut rows = vec![["PID", "PPID", "STATE", "CPU", "NAME"].map(String::from).to_vec()];
    rows.extend(list.iter().map(|p| {
        vec![
            p.pid.to_string(),
            p.parent.to_string(),
            sanitize(&p.state).into_owned(),
            format_cpu(p.cpu_ns),
            sanitize(&p.name).into_owned(),
        ]
    }));
    print_table(shell, &rows, &[true, true, false, true, false]);
    Ok(())
}

/// `devices`: the PCI functions the device manager lists.
pub fn devices(shell: &mut Shell) -> Result<(), String> {
    let cap = need(shell.rt, "devices", "devices", device_manager::INTERFACE_ID)?;
    let list = DeviceManagerClient::new(shell.rt, cap).list().map_err(|e| failed("devices", &e))?;
    let mut rows =
        vec![["ADDRESS", "ID", "CLASS", "BARS", "IRQ", "CLAIMED"].map(String::from).to_vec()];
    rows.extend(list.iter().map(|d| {
        let bars: Vec<String> = d
            .bars
            .iter()
            .map(|b| {
                let kind = match b.kind {
                    0 => "io",
                    1 => "mem32",
                    _ => "mem64",
                };
                format!("{}:{kind}:{:#x}", b.index, b.size)
            })
            .collect();
        let irq = if d.msix_table_size > 0 {
            format!("msix({})", d.msix_table_size)
        } else if d.msi_vectors > 0 {
            format!("msi({})", d.msi_vectors)
        } else {
            "-".to_string()
        };
        vec![
            format!("{:02x}:{:02x}.{}", d.bus, d.device, d.function),
            format!("{:04x}:{:04x}", d.vendor_id, d.device_id),
            format!("{:02x}{:02x}{:02x}", d.class_code, d.subclass, d.prog_if),
            if bars.is_empty() { "-".to_string() } else { bars.join(",") },
            irq,
            if d.claimed { "yes" } else { "no" }.to_string(),
        ]
    }));
    print_table(shell, &rows, &[false, false, false, false, false, false]);
    Ok(())
}

/// `date`: the wall clock, UTC.
pub fn date(shell: &mut Shell) -> Result<(), String> {
    let cap = need(shell.rt, "date", "clock", wall_clock::INTERFACE_ID)?;
    let now = WallClockClient::new(shell.rt, cap).now().map_err(|e| failed("date", &e))?;
    say!(shell.term, "{}", DateTime::from_unix(now.unix_seconds));
    Ok(())
}

/// The host name from `sysinfo`, for `command`.
pub fn host_name(shell: &Shell, command: &str) -> Result<String, String> {
    let cap = need(shell.rt, command, "sysinfo", system_info::INTERFACE_ID)?;
    let info = SystemInfoClient::new(shell.rt, cap).info().map_err(|e| failed(command, &e))?;
    Ok(sanitize(&info.hostname).into_owned())
}

/// `hostname`.
pub fn hostname(shell: &mut Shell) -> Result<(), String> {
    let name = host_name(shell, "hostname")?;
    say!(shell.term, "{name}");
    Ok(())
}

/// `uptime`.
pub fn uptime(shell: &mut Shell) -> Result<(), String> {
    let cap = need(shell.rt, "uptime", "sysinfo", system_info::INTERFACE_ID)?;
    let info = SystemInfoClient::new(shell.rt, cap).info().map_err(|e| failed("uptime", &e))?;
    say!(shell.term, "up {}", format_duration(info.uptime_ns));
    Ok(())
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

fn log_line(r: &LogRecord) -> String {
    format!(
        "[{}] {} {}: {}",
        format_log_time(r.time_ns),
        level_name(r.level),
        sanitize(&r.source),
        sanitize(&r.message)
    )
}

/// Records asked for per `LogReader` call: within the kernel's limit of
/// 64 per read, and small enough that 32 records of the longest message
/// (1,024 bytes) fit the 64 KiB results buffer.
const LOG_CHUNK: u32 = 32;

/// The newest `count` log records, oldest first: one `tail` when it asks
/// for at most [`LOG_CHUNK`], else `read`s of [`LOG_CHUNK`] from where the
/// newest `count` start up to the newest record `tail` saw.
fn log_records(
    client: &LogReaderClient<&'static Runtime>,
    count: u32,
) -> Result<Vec<LogRecord>, CallError> {
    let newest = client.tail(count.min(LOG_CHUNK))?;
    if count <= LOG_CHUNK {
        return Ok(newest.records);
    }
    let end = newest.next_seq;
    let mut from = end.saturating_sub(u64::from(count));
    let mut records = Vec::new();
    while from < end {
        let chunk = client.read(from, LOG_CHUNK)?;
        if chunk.records.is_empty() || chunk.next_seq <= from {
            break;
        }
        records.extend(chunk.records.into_iter().filter(|r| r.seq < end));
        from = chunk.next_seq;
    }
    Ok(records)
}

/// `log [n]`: the newest records of the system log.
pub fn log(shell: &mut Shell, count: u32) -> Result<(), String> {
    let cap = need(shell.rt, "log", "log_reader", log_reader::INTERFACE_ID)?;
    let client = LogReaderClient::new(shell.rt, cap);
    let records = log_records(&client, count).map_err(|e| failed("log", &e))?;
    if records.is_empty() {
        say!(shell.term, "(the log is empty)");
    }
    for r in &records {
        say!(shell.term, "{}", log_line(r));
    }
    Ok(())
}

fn audit_line(r: &AuditRecord) -> String {
    let mut line = format!(
        "#{} {} {} {}",
        r.seq,
        DateTime::from_unix(r.unix_seconds),
        sanitize(&r.event),
        sanitize(&r.principal)
    );
    if r.session_id != 0 {
        line.push_str(&format!(" (session {})", r.session_id));
    }
    if !r.detail.is_empty() {
        line.push_str(&format!(": {}", sanitize(&r.detail)));
    }
    line
}

/// `audit [n]`: the newest records of the audit trail.
pub fn audit(shell: &mut Shell, count: u32) -> Result<(), String> {
    let cap = need(shell.rt, "audit", "audit", audit_reader::INTERFACE_ID)?;
    let records =
        AuditReaderClient::new(shell.rt, cap).tail(count).map_err(|e| failed("audit", &e))?;
    if records.is_empty() {
        say!(shell.term, "(the audit trail is empty)");
    }
    for r in &records {
        say!(shell.term, "{}", audit_line(r));
    }
    Ok(())
}
