//! `Console`: text to the operator console (COM1).

use capos_schema::capos_capnp::console;
use capos_schema::{dispatch_console, ConsoleServer, ServerError};

use super::{outcome, CallContext, CallOutcome, CapObject};
use crate::dev::serial::COM1;

/// The kernel console object.
pub struct KernelConsole;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
}

impl Server<'_> {
    fn emit(&self, text: &str, newline: bool) {
        {
            let mut com1 = COM1.lock();
            com1.write_bytes(text.as_bytes());
            if newline {
                com1.write_bytes(b"\r\n");
            }
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

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        outcome(dispatch_console(&mut Server { ctx }, method, params))
    }
}
