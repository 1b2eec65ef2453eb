//! The shell's terminal: buffered output and line input on the
//! `TerminalSession` cap.
//!
//! Output is collected and written in one `write` call per command (or
//! whenever [`FLUSH_AT`] bytes have gathered). A failed write is kept as
//! [`Terminal::take_failure`]; later output is dropped, and the shell ends.

use alloc::string::String;
use core::fmt::{self, Write};

use capos_lib::shell::MAX_LINE;
use capos_rt::schema::capos_capnp::ReadStatus;
use capos_rt::schema::{CallError, TerminalSessionClient};
use capos_rt::Runtime;

/// Buffered output is written once it reaches this many bytes.
const FLUSH_AT: usize = 8 * 1024;

/// What one `readLine` gave.
pub enum Input {
    /// A line (without its line end).
    Line(String),
    /// Ctrl-C.
    Cancelled,
    /// More than [`MAX_LINE`] bytes were typed.
    TooLong,
    /// The bytes typed were not UTF-8.
    InvalidUtf8,
    /// The terminal refused the read (another program is reading it); the
    /// exception message.
    Busy(String),
    /// The terminal failed: the shell cannot go on.
    Gone(CallError),
}

/// The terminal the shell runs on.
pub struct Terminal {
    client: TerminalSessionClient<&'static Runtime>,
    buf: String,
    failure: Option<CallError>,
}

/// Writes into a string, turning each `\n` into `\r\n` (the terminal
/// writes bytes as they are).
struct CrLf<'a>(&'a mut String);

impl Write for CrLf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                self.0.push_str("\r\n");
            }
            self.0.push_str(part);
        }
        Ok(())
    }
}

impl Terminal {
    /// The terminal behind the `TerminalSession` cap `cap`.
    pub fn new(rt: &'static Runtime, cap: u64) -> Terminal {
        Terminal { client: TerminalSessionClient::new(rt, cap), buf: String::new(), failure: None }
    }

    /// Queues one line of output.
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        let _ = CrLf(&mut self.buf).write_fmt(args);
        self.buf.push_str("\r\n");
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Queues `text` exactly as it is.
    pub fn raw(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// Writes what is queued.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.failure.is_none() {
            if let Err(e) = self.client.write(&self.buf) {
                self.failure = Some(e);
            }
        }
        self.buf.clear();
    }

    /// The `TerminalSession` cap.
    pub fn cap(&self) -> u64 {
        self.client.cap_id()
    }

    /// The error of the first write that failed, if one did.
    pub fn take_failure(&mut self) -> Option<CallError> {
        self.failure.take()
    }

    /// Writes what is queued, then reads one line after `prompt`, echoed.
    pub fn read_line(&mut self, prompt: &str) -> Input {
        self.flush();
        if let Some(e) = self.failure.take() {
            return Input::Gone(e);
        }
        match self.client.read_line(prompt, true, MAX_LINE) {
            Ok(reply) => match reply.status {
                ReadStatus::Ok => Input::Line(reply.line),
                ReadStatus::Cancelled => Input::Cancelled,
                ReadStatus::TooLong => Input::TooLong,
                ReadStatus::InvalidUtf8 => Input::InvalidUtf8,
            },
            Err(CallError::Exception(e)) => Input::Busy(e.message),
            Err(e) => Input::Gone(e),
        }
    }
}

/// Queues one formatted line on a [`Terminal`].
macro_rules! say {
    ($term:expr, $($arg:tt)*) => {
        $term.line(format_args!($($arg)*))
    };
}
pub(crate) use say;
