//! `TerminalSession` on COM1: output, and line input through the line
//! discipline in `capos_lib::line_edit`, driven by the COM1 receive
//! interrupt. One read at a time.

use alloc::string::String;
use alloc::sync::Arc;
use core::cell::Cell;

use capos_lib::line_edit::{Event, LineEditor, MAX_LINE};
use capos_schema::capos_capnp::{terminal_session, ReadStatus};
use capos_schema::{dispatch_terminal_session_in, ServerError, TerminalSessionServer};

use super::{exception, failure, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::completion::PendingCall;
use crate::dev::serial::{COM1, COM1_RX};
use crate::proc::Process;
use crate::sync::IrqLock;

/// The console terminal object.
pub struct KernelTerminal;

struct Terminal {
    editor: LineEditor,
    reader: Option<(PendingCall, usize)>,
}

static TERMINAL: IrqLock<Terminal> =
    IrqLock::new(Terminal { editor: LineEditor::new(), reader: None });

fn echo(bytes: &[u8]) {
    COM1.lock().write_bytes(bytes);
}

fn encode(line: &str, status: ReadStatus) -> alloc::vec::Vec<u8> {
    capos_schema::wire::encode::<terminal_session::read_line_results::Owned>(|mut r| {
        r.set_line(line);
        r.set_status(status);
        Ok(())
    })
    .expect("a results message with one line encodes")
}

/// Feeds buffered COM1 input to the pending read, completing it when a line
/// ends. Called from the COM1 interrupt and when a read starts.
pub fn pump() {
    loop {
        let done = {
            let mut t = TERMINAL.lock();
            let Some((_, max)) = t.reader.as_ref().map(|(c, m)| (c.clone(), *m)) else { return };
            let Some(byte) = COM1_RX.lock().pop() else { return };
            match t.editor.feed(byte, &mut |b: &[u8]| echo(b)) {
                None => None,
                Some(event) => {
                    let (call, _) = t.reader.take().expect("a reader is waiting");
                    let results = match event {
                        Event::Line => match core::str::from_utf8(t.editor.line()) {
                            Ok(line) => encode(line, ReadStatus::Ok),
                            Err(_) => encode("", ReadStatus::InvalidUtf8),
                        },
                        Event::Cancelled => encode("", ReadStatus::Cancelled),
                        Event::TooLong => {
                            echo(
                                alloc::format!("(line too long: at most {max} bytes)\r\n")
                                    .as_bytes(),
                            );
                            encode("", ReadStatus::TooLong)
                        }
                    };
                    Some((call, results))
                }
            }
        };
        if let Some((call, results)) = done {
            crate::completion::complete(call, Ok(results));
        }
    }
}

struct Server<'a> {
    /// `readLine`: (prompt, echo, max) to start with once validated.
    read: Cell<Option<(bool, usize)>>,
    prompt: core::cell::RefCell<String>,
    /// The calling process (`cancelRead` touches only its own read).
    caller: &'a Arc<Process>,
}

impl TerminalSessionServer for Server<'_> {
    fn write(
        &mut self,
        params: terminal_session::write_params::Reader<'_>,
        _results: terminal_session::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        echo(params.get_text()?.to_str()?.as_bytes());
        Ok(())
    }

    fn read_line(
        &mut self,
        params: terminal_session::read_line_params::Reader<'_>,
        _results: terminal_session::read_line_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let max = params.get_max_bytes() as usize;
        if !(1..=MAX_LINE).contains(&max) {
            return Err(ServerError::exception(
                exception::INVALID_ARGUMENT,
                alloc::format!("maxBytes {max} is not in 1..={MAX_LINE}"),
            ));
        }
        *self.prompt.borrow_mut() = String::from(params.get_prompt()?.to_str()?);
        self.read.set(Some((params.get_echo(), max)));
        Ok(())
    }

    fn cancel_read(
        &mut self,
        _params: terminal_session::cancel_read_params::Reader<'_>,
        mut results: terminal_session::cancel_read_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let own = {
            let mut t = TERMINAL.lock();
            let mine = t.reader.as_ref().is_some_and(|(call, _)| {
                call.process.upgrade().is_some_and(|p| Arc::ptr_eq(&p, self.caller))
            });
            if mine {
                t.reader.take()
            } else {
                None
            }
        };
        results.set_cancelled(own.is_some());
        if let Some((call, _)) = own {
            crate::completion::complete(call, Ok(encode("", ReadStatus::Cancelled)));
        }
        Ok(())
    }
}

impl CapObject for KernelTerminal {
    fn interface_id(&self) -> u64 {
        capos_schema::terminal_session::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::terminal_session::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::terminal_session::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let mut server =
            Server { read: Cell::new(None), prompt: Default::default(), caller: ctx.caller };
        let () = match dispatch_terminal_session_in(&mut server, method, frame) {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
        let Some((echo_on, max)) = server.read.get() else { return CallOutcome::built() };
        {
            let mut t = TERMINAL.lock();
            // A read left by a process that has ended is dropped; one of a
            // live process keeps the terminal.
            if t.reader.as_ref().is_some_and(|(call, _)| call.is_live()) {
                let ex = capos_schema::CapException {
                    code: exception::BAD_STATE,
                    message: "another readLine is in progress".into(),
                };
                return CallOutcome::Exception(capos_schema::wire::encode_exception(&ex));
            }
            echo(server.prompt.borrow().as_bytes());
            t.editor.start(max, echo_on);
            t.reader = Some((ctx.pending(), max));
        }
        pump();
        CallOutcome::Pending
    }
}
