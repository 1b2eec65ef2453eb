//! Runs a proof against a real QEMU: sockets for the serial ports, reader threads, logs and
//! the event loop that feeds [`Proof`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::cli::{ProofConfig, Stream};
use super::machine::{elapsed, Action, Event, FailReason, Outcome, Proof};
use super::qemu::{firmware_path, qemu_args, shell_line, QemuProcess, QEMU_BINARY};
use super::status::QemuStatus;

/// Lines of each port shown after a failure.
pub const TAIL_LINES: usize = 20;
/// How long QEMU may take to connect both serial ports.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop looks at the QEMU process and the clock.
const POLL: Duration = Duration::from_millis(20);
/// After QEMU exits, how long to wait for the last lines of the ports.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// A line longer than this is cut into pieces.
const MAX_LINE: usize = 64 * 1024;
/// Longest socket path used as is (`sun_path` holds 108 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// Splits the bytes of a serial port into lines, cleaned by [`clean_line`].
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                lines.push(clean_line(&std::mem::take(&mut self.pending)));
            } else {
                self.pending.push(byte);
                if self.pending.len() >= MAX_LINE {
                    lines.push(clean_line(&std::mem::take(&mut self.pending)));
                }
            }
        }
        lines
    }

    /// The incomplete last line, at end of stream.
    pub fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            Some(clean_line(&std::mem::take(&mut self.pending)))
        }
    }
}

/// The text of one line as the proof sees it: invalid UTF-8 replaced by U+FFFD, ANSI
/// escape sequences (colours, cursor movement, screen clearing) removed, then carriage
/// returns at the start and whitespace (carriage returns included) at the end removed.
pub fn clean_line(bytes: &[u8]) -> String {
    let raw = String::from_utf8_lossy(bytes);
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            text.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates up to a final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST (ESC \\).
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        chars.next_if_eq(&'\\');
                        break;
                    }
                }
            }
            // Character set selection and the like: ESC, intermediates, one final character.
            Some(' '..='/') => {
                while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                chars.next();
            }
            // Any other escape is two characters long.
            _ => {}
        }
    }
    text.trim_start_matches('\r').trim_end().to_string()
}

/// The result of [`run`].
#[derive(Debug)]
pub struct RunReport {
    pub name: String,
    pub outcome: Outcome,
    /// The last [`TAIL_LINES`] lines of COM1 and COM2.
    pub tails: [Vec<String>; 2],
    /// The last lines QEMU wrote to stdout/stderr.
    pub qemu_tail: Vec<String>,
    pub out_dir: PathBuf,
}

impl RunReport {
    /// The final line: `proof NAME: PASS (2.3s)` or `proof NAME: FAIL: reason`.
    pub fn verdict(&self) -> String {
        match &self.outcome {
            Outcome::Pass { elapsed: t } => format!("proof {}: PASS ({})", self.name, elapsed(*t)),
            Outcome::Fail { reason, .. } => format!("proof {}: FAIL: {reason}", self.name),
        }
    }

    /// Whether the proof passed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Pass { .. })
    }

    /// The lines printed to stderr after a failure: the port tails, then QEMU's own output.
    pub fn failure_details(&self) -> Vec<String> {
        let mut out = vec![format!("proof {}: logs in {}", self.name, self.out_dir.display())];
        for stream in Stream::ALL {
            let tail = &self.tails[stream.index()];
            if tail.is_empty() {
                out.push(format!("{stream}| (no output)"));
            }
            out.extend(tail.iter().map(|line| format!("{stream}| {line}")));
        }
        out.extend(self.qemu_tail.iter().map(|line| format!("qemu| {line}")));
        out
    }
}

/// Boots QEMU and runs the proof; progress lines go to `progress`. QEMU is always stopped
/// before this returns.
pub fn run(config: &ProofConfig, progress: &mut dyn FnMut(&str)) -> RunReport {
    progress(&format!(
        "proof {}: boot ({}, smp {}, {})",
        config.name, config.firmware, config.smp, config.mem
    ));
    let mut proof = Proof::new(config);
    if let Err(reason) = run_qemu(config, &mut proof, progress) {
        proof.abort(reason, Duration::ZERO);
    }
    let outcome = proof.outcome().cloned().unwrap_or_else(|| Outcome::Fail {
        reason: FailReason::Io("the proof ended without a verdict".to_string()),
        at: Duration::ZERO,
    });
    let tail = |stream: Stream| {
        let history = proof.history(stream);
        history[history.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|line| line.text.clone())
            .collect::<Vec<_>>()
    };
    RunReport {
        name: config.name.clone(),
        outcome,
        tails: [tail(Stream::Com1), tail(Stream::Com2)],
        qemu_tail: qemu_log_tail(&config.out_dir.join("qemu.log")),
        out_dir: config.out_dir.clone(),
    }
}

/// The last lines of `qemu.log`, without the command line at its top.
fn qemu_log_tail(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].iter().map(|l| l.to_string()).collect()
}

/// Messages of the reader threads.
enum Msg {
    Line { stream: Stream, text: String, at: Duration },
    Closed(Stream),
}

/// Socket files, removed when dropped (with their directory if it was made for them).
struct SocketFiles {
    paths: [PathBuf; 2],
    own_dir: Option<PathBuf>,
}

impl SocketFiles {
    fn new(config: &ProofConfig) -> io::Result<SocketFiles> {
        let in_out_dir = config.out_dir.join("com1.sock");
        let (dir, own_dir) = if in_out_dir.as_os_str().len() <= MAX_SOCKET_PATH {
            (config.out_dir.clone(), None)
        } else {
            let dir = std::env::temp_dir().join(format!(
                "capos-proof-{}-{}",
                std::process::id(),
                config.name
            ));
            fs::create_dir_all(&dir)?;
            (dir.clone(), Some(dir))
        };
        Ok(SocketFiles { paths: [dir.join("com1.sock"), dir.join("com2.sock")], own_dir })
    }

    fn remove_files(&self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
    }
}

impl Drop for SocketFiles {
    fn drop(&mut self) {
        self.remove_files();
        if let Some(dir) = &self.own_dir {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn create(path: &Path) -> Result<File, FailReason> {
    File::create(path).map_err(|e| FailReason::Startup(format!("{}: {e}", path.display())))
}

/// Sets everything up, runs the event loop and stops QEMU. Errors are startup failures;
/// later failures are recorded in `proof`.
fn run_qemu(
    config: &ProofConfig,
    proof: &mut Proof,
    progress: &mut dyn FnMut(&str),
) -> Result<(), FailReason> {
    let startup = FailReason::Startup;
    let out = &config.out_dir;
    fs::create_dir_all(out).map_err(|e| startup(format!("{}: {e}", out.display())))?;
    let qemu_log_path = out.join("qemu.log");
    let mut qemu_log = create(&qemu_log_path)?;
    let logs = [create(&out.join("com1.log"))?, create(&out.join("com2.log"))?];
    fs::metadata(&config.image)
        .map_err(|e| startup(format!("image {}: {e}", config.image.display())))?;
    let firmware = firmware_path(config.firmware).map_err(startup)?;

    let sockets =
        SocketFiles::new(config).map_err(|e| startup(format!("socket directory: {e}")))?;
    // Stale sockets of an earlier run would make bind() fail.
    sockets.remove_files();
    // COM2: QEMU connects to the harness. COM1: QEMU is the (telnet) server and waits
    // for the harness to connect before it starts the guest.
    let com2_listener = UnixListener::bind(&sockets.paths[1])
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| startup(format!("socket {}: {e}", sockets.paths[1].display())))?;

    let args = qemu_args(config, &sockets.paths[0], &sockets.paths[1], firmware.as_deref());
    let log_error = |e: io::Error| startup(format!("{}: {e}", qemu_log_path.display()));
    writeln!(qemu_log, "# {}", shell_line(QEMU_BINARY, &args)).map_err(log_error)?;
    let stdout = qemu_log.try_clone().map_err(log_error)?;
    let child = Command::new(QEMU_BINARY)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(qemu_log)
        .spawn()
        .map_err(|e| startup(format!("{QEMU_BINARY}: {e}")))?;
    let t0 = Instant::now();
    let mut qemu = QemuProcess::new(child);

    let com1 = connect(&sockets.paths[0], &mut qemu, t0, &qemu_log_path)?;
    let com2 = accept(&com2_listener, Stream::Com2, &mut qemu, t0, &qemu_log_path)?;
    let ports = vec![com1, com2];
    drop(com2_listener);
    drop(sockets);

    let com1_writer = ports[0]
        .try_clone()
        .and_then(|w| w.set_write_timeout(Some(Duration::from_secs(5))).map(|()| w))
        .map_err(|e| startup(format!("com1 socket: {e}")))?;
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    for ((port, log), stream) in ports.into_iter().zip(logs).zip(Stream::ALL) {
        match spawn_reader(stream, port, log, tx.clone(), t0) {
            Ok(handle) => readers.push(handle),
            Err(e) => return Err(startup(format!("reader thread: {e}"))),
        }
    }
    drop(tx);

    Loop {
        proof: &mut *proof,
        qemu: &mut qemu,
        rx: &rx,
        com1: com1_writer,
        t0,
        closed: [false; 2],
        progress: &mut *progress,
    }
    .run();

    qemu.stop();
    for reader in readers {
        let _ = reader.join();
    }
    // Lines that arrived after the verdict still belong in the tails.
    for msg in rx.try_iter() {
        if let Msg::Line { stream, text, at } = msg {
            proof.feed(Event::Line { stream, text, at });
        }
    }
    Ok(())
}

/// Connects to QEMU's COM1 socket once QEMU has made it.
fn connect(
    path: &Path,
    qemu: &mut QemuProcess,
    t0: Instant,
    qemu_log: &Path,
) -> Result<UnixStream, FailReason> {
    loop {
        match UnixStream::connect(path) {
            Ok(port) => return Ok(port),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(FailReason::Startup(format!("com1 socket: {e}"))),
        }
        check_qemu(Stream::Com1, qemu, t0, qemu_log)?;
        thread::sleep(Duration::from_millis(10));
    }
}

/// Fails the startup when QEMU has exited or took too long to connect `stream`.
fn check_qemu(
    stream: Stream,
    qemu: &mut QemuProcess,
    t0: Instant,
    qemu_log: &Path,
) -> Result<(), FailReason> {
    if let Some(status) = qemu.try_wait() {
        // No guest ran yet: the status is QEMU's own.
        let status = match status {
            QemuStatus::Code(code) => format!("exited with status {code}"),
            QemuStatus::Signal(signal) => format!("was killed by signal {signal}"),
        };
        return Err(FailReason::Startup(format!(
            "it {status} before connecting {stream} (see {})",
            qemu_log.display()
        )));
    }
    if t0.elapsed() > CONNECT_TIMEOUT {
        return Err(FailReason::Startup(format!(
            "it did not connect {stream} within {}s",
            CONNECT_TIMEOUT.as_secs()
        )));
    }
    Ok(())
}

/// Waits for QEMU to connect one serial port.
fn accept(
    listener: &UnixListener,
    stream: Stream,
    qemu: &mut QemuProcess,
    t0: Instant,
    qemu_log: &Path,
) -> Result<UnixStream, FailReason> {
    loop {
        match listener.accept() {
            Ok((port, _)) => {
                port.set_nonblocking(false)
                    .map_err(|e| FailReason::Startup(format!("{stream} socket: {e}")))?;
                return Ok(port);
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) => return Err(FailReason::Startup(format!("{stream} socket: {e}"))),
        }
        check_qemu(stream, qemu, t0, qemu_log)?;
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads one port until end of stream: each line goes to the log file (flushed) and to the
/// event loop.
fn spawn_reader(
    stream: Stream,
    mut port: UnixStream,
    mut log: File,
    tx: Sender<Msg>,
    t0: Instant,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(format!("{stream}-reader")).spawn(move || {
        let mut emit = |text: String| {
            let mut record = text.clone().into_bytes();
            record.push(b'\n');
            let _ = log.write_all(&record).and_then(|()| log.flush());
            // The receiver is gone only once the run is over; keep logging regardless.
            let _ = tx.send(Msg::Line { stream, text, at: t0.elapsed() });
        };
        let mut splitter = LineSplitter::default();
        let mut negotiation =
            if stream == Stream::Com1 { TelnetNegotiation::Start } else { TelnetNegotiation::Done };
        let mut buf = [0u8; 4096];
        loop {
            match port.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let data = negotiation.strip(&buf[..n]);
                    splitter.push(data).into_iter().for_each(&mut emit)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if let Some(text) = splitter.finish() {
            emit(text);
        }
        let _ = tx.send(Msg::Closed(stream));
    })
}

/// The telnet option negotiation QEMU sends first on a `telnet=on` port: three-byte
/// `IAC <command> <option>` sequences, dropped until the first data byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TelnetNegotiation {
    /// Before any data: an IAC starts a sequence.
    Start,
    /// Inside a sequence, with this many bytes of it still to drop.
    Skip(u8),
    /// Data flows; nothing is dropped any more.
    Done,
}

impl TelnetNegotiation {
    /// The data bytes of `chunk`.
    fn strip<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let mut i = 0;
        while i < chunk.len() {
            match *self {
                TelnetNegotiation::Done => break,
                TelnetNegotiation::Skip(n) => {
                    *self = if n > 1 {
                        TelnetNegotiation::Skip(n - 1)
                    } else {
                        TelnetNegotiation::Start
                    };
                    i += 1;
                }
                TelnetNegotiation::Start if chunk[i] == 0xff => {
                    *self = TelnetNegotiation::Skip(2);
                    i += 1;
                }
                TelnetNegotiation::Start => *self = TelnetNegotiation::Done,
            }
        }
        &chunk[i..]
    }
}

/// The event loop: feeds lines, QEMU's exit and ticks to the proof until it has an outcome.
struct Loop<'a> {
    proof: &'a mut Proof,
    qemu: &'a mut QemuProcess,
    rx: &'a Receiver<Msg>,
    com1: UnixStream,
    t0: Instant,
    closed: [bool; 2],
    progress: &'a mut dyn FnMut(&str),
}

impl Loop<'_> {
    fn run(&mut self) {
        let actions = self.proof.start(self.t0.elapsed());
        self.apply(actions);
        let mut exit_seen = false;
        while self.proof.outcome().is_none() {
            let now = self.t0.elapsed();
            let wait = match self.proof.deadline() {
                Some(deadline) => deadline.saturating_sub(now).min(POLL),
                None => POLL,
            };
            match self.rx.recv_timeout(wait) {
                Ok(msg) => self.deliver(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(wait),
            }
            if !exit_seen {
                if let Some(status) = self.qemu.try_wait() {
                    exit_seen = true;
                    let at = self.t0.elapsed();
                    self.drain();
                    let actions = self.proof.feed(Event::Exited { status, at });
                    self.apply(actions);
                }
            }
            let now = self.t0.elapsed();
            let actions = self.proof.feed(Event::Tick { now });
            self.apply(actions);
        }
    }

    /// After QEMU's exit: delivers the lines still in flight, until both ports are closed.
    fn drain(&mut self) {
        let until = Instant::now() + DRAIN_TIMEOUT;
        while !self.closed.iter().all(|&c| c) {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(msg) => self.deliver(msg),
                Err(_) => break,
            }
        }
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Line { stream, text, at } => {
                let actions = self.proof.feed(Event::Line { stream, text, at });
                self.apply(actions);
            }
            Msg::Closed(stream) => self.closed[stream.index()] = true,
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Report(line) => (self.progress)(&line),
                Action::Send(bytes) => {
                    if let Err(e) = self.com1.write_all(&bytes).and_then(|()| self.com1.flush()) {
                        let reason = FailReason::Io(format!("could not write to com1: {e}"));
                        self.proof.abort(reason, self.t0.elapsed());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnet_negotiation_is_dropped_once() {
        let mut t = TelnetNegotiation::Start;
        assert_eq!(t.strip(&[0xff, 0xfb, 0x01, 0xff, 0xfb]), b"");
        assert_eq!(t.strip(&[0x03, 0xff, 0xfd, 0x00, b'h', b'i']), b"hi");
        // Data later may hold 0xff: it is kept.
        assert_eq!(t.strip(&[0xff, 0xfe, b'\r']), [0xff, 0xfe, b'\r']);
        let mut com2 = TelnetNegotiation::Done;
        assert_eq!(com2.strip(&[0xff, 1, 2]), [0xff, 1, 2]);
    }

    #[test]
    fn splitter_joins_chunks_and_trims() {
        let mut s = LineSplitter::default();
        assert!(s.push(b"capOS ker").is_empty());
        assert_eq!(s.push(b"nel ready\r\nsecond  \n\nthi"), ["capOS kernel ready", "second", ""]);
        assert_eq!(s.push(b"rd\r\n"), ["third"]);
        assert_eq!(s.finish(), None);
        s.push(b"partial \r");
        assert_eq!(s.finish(), Some("partial".to_string()));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_keeps_leading_space_and_replaces_bad_utf8() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"  indented\n"), ["  indented"]);
        assert_eq!(s.push(b"\rgrub line\n"), ["grub line"]);
        assert_eq!(s.push(b"a\xffb\n"), ["a\u{fffd}b"]);
        // A multi-byte character split across reads survives.
        assert!(s.push(&"é".as_bytes()[..1]).is_empty());
        assert_eq!(s.push(&[&"é".as_bytes()[1..], b"\n"].concat()), ["é"]);
    }

    #[test]
    fn escape_sequences_and_carriage_returns_are_removed() {
        assert_eq!(clean_line(b"\x1b[H\x1b[J\x1b[1;1HcapOS kernel ready"), "capOS kernel ready");
        assert_eq!(clean_line(b"\x1b[31mred\x1b[0m text"), "red text");
        assert_eq!(clean_line(b"\x1b]0;title\x07after"), "after");
        assert_eq!(clean_line(b"\x1b]0;title\x1b\\after"), "after");
        assert_eq!(clean_line(b"\x1bcreset"), "reset");
        assert_eq!(clean_line(b"\x1b(Bascii"), "ascii");
        assert_eq!(clean_line(b"cut\x1b[1"), "cut");
        assert_eq!(clean_line(b"\r\rcpu 1 online\r"), "cpu 1 online");
        assert_eq!(clean_line(b"a\rb"), "a\rb");
        assert_eq!(clean_line(b"tab\tkept \t "), "tab\tkept");
    }

    #[test]
    fn splitter_cuts_huge_lines() {
        let mut s = LineSplitter::default();
        let lines = s.push(&vec![b'x'; MAX_LINE + 10]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(s.finish().map(|l| l.len()), Some(10));
    }

    fn report(outcome: Outcome) -> RunReport {
        RunReport {
            name: "boot".to_string(),
            outcome,
            tails: [vec!["a".to_string(), "b".to_string()], Vec::new()],
            qemu_tail: vec!["qemu-system-x86_64: warning".to_string()],
            out_dir: PathBuf::from("target/proofs/boot"),
        }
    }

    #[test]
    fn verdicts() {
        let pass = report(Outcome::Pass { elapsed: Duration::from_millis(2300) });
        assert!(pass.passed());
        assert_eq!(pass.verdict(), "proof boot: PASS (2.3s)");
        let fail = report(Outcome::Fail {
            reason: FailReason::Timeout {
                stream: Some(Stream::Com1),
                pattern: "capOS kernel ready".to_string(),
                after: Duration::from_secs(30),
            },
            at: Duration::from_secs(30),
        });
        assert!(!fail.passed());
        assert_eq!(
            fail.verdict(),
            "proof boot: FAIL: timed out waiting for com1 line \"capOS kernel ready\" after 30s"
        );
        assert_eq!(
            fail.failure_details(),
            [
                "proof boot: logs in target/proofs/boot",
                "com1| a",
                "com1| b",
                "com2| (no output)",
                "qemu| qemu-system-x86_64: warning",
            ]
        );
    }

    #[test]
    fn missing_image_fails_before_qemu_starts() {
        let dir = std::env::temp_dir().join(format!("capos-proof-test-{}", std::process::id()));
        let args = [
            "--name",
            "missing",
            "--image",
            "/nonexistent/capos.iso",
            "--out",
            dir.to_str().unwrap(),
        ];
        let Ok(super::super::cli::Command::Run(config)) =
            super::super::cli::parse_args(args.iter().map(|s| s.to_string()))
        else {
            panic!("bad arguments");
        };
        let mut lines = Vec::new();
        let report = run(&config, &mut |l| lines.push(l.to_string()));
        assert_eq!(lines, ["proof missing: boot (bios, smp 1, 128M)"]);
        assert_eq!(
            report.verdict(),
            "proof missing: FAIL: could not start QEMU: image /nonexistent/capos.iso: No such \
             file or directory (os error 2)"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
