//! `Console`: text to the operator console (COM1).
//!
//! A program cannot make its text pass for the kernel's or another
//! program's (docs/src/testing.md, "Which lines are trusted"): control
//! characters are escaped ([`capos_lib::escape`]), so a write never starts a
//! line of its own; a line a program starts begins with the program's name
//! (the kernel writes `name: ` first unless the text already starts with that
//! word); and neither another program's text nor a kernel line continues a
//! line a program left open (`Uart::end_program_line`).

use core::fmt::Write;

use capos_lib::escape;
use capos_schema::capos_capnp::console;
use capos_schema::{dispatch_console_in, ConsoleServer, ServerError};

use super::{outcome, CallContext, CallOutcome, CapObject, KernelFrame};
use crate::dev::serial::COM1;

/// The kernel console object.
pub struct KernelConsole;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
}

impl Server<'_> {
    fn emit(&self, text: &str, newline: bool) {
        let caller = &self.ctx.caller;
        {
            let mut com1 = COM1.lock();
            if com1.line_owner() != caller.pid {
                com1.end_program_line();
            }
            if com1.at_line_start()
                && !text.is_empty()
                && !escape::starts_with_name(text, &caller.name)
            {
                let _ = write!(com1, "{}: ", caller.name);
            }
            let _ = escape::write_escaped(&mut *com1, text);
            if newline {
                com1.write_bytes(b"\r\n");
            }
            com1.set_line_owner(caller.pid);
        }
        crate::kdebug!(
            "console",
            "{} (pid {}): {}",
            self.ctx.caller.name,
            self.ctx.caller.pid,
            text
        );
    }
}

impl ConsoleServer for Server<'_> {
    fn write(
        &mut self,
        params: console::write_params::Reader<'_>,
        _results: console::write_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.emit(params.get_text()?.to_str()?, false);
        Ok(())
    }

    fn write_line(
        &mut self,
        params: console::write_line_params::Reader<'_>,
        _results: console::write_line_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.emit(params.get_text()?.to_str()?, true);
        Ok(())
    }
}

impl CapObject for KernelConsole {
    fn interface_id(&self) -> u64 {
        capos_schema::console::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::console::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::console::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        outcome(dispatch_console_in(&mut Server { ctx }, method, frame))
    }
}
