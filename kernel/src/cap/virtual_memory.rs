//! `VirtualMemory`: map and unmap anonymous memory in the caller's own
//! address space, inside the window reserved for it. An unmap shoots down
//! the TLBs of the other CPUs running the caller's threads before the
//! frames are freed.

use capos_schema::capos_capnp::virtual_memory;
use capos_schema::{dispatch_virtual_memory, ServerError, VirtualMemoryServer};

use super::{exception, outcome, CallContext, CallOutcome, CapObject};
use crate::mem::PAGE_SIZE;

/// Start of the anonymous-memory window.
pub const WINDOW_START: u64 = 0x0000_1000_0000_0000;
/// End of the window (exclusive).
pub const WINDOW_END: u64 = 0x0000_2000_0000_0000;
/// Largest single mapping.
pub const MAX_MAP: u64 = 256 * 1024 * 1024;

/// The kernel's virtual-memory object (acts on whichever process calls).
pub struct KernelVirtualMemory;

struct Server<'a> {
    ctx: &'a CallContext<'a>,
}

fn invalid(msg: alloc::string::String) -> ServerError {
    ServerError::exception(exception::INVALID_ARGUMENT, msg)
}

fn check(addr: u64, bytes: u64) -> Result<u64, ServerError> {
    if bytes == 0 || bytes > MAX_MAP || !bytes.is_multiple_of(PAGE_SIZE) {
        return Err(invalid(alloc::format!(
            "length {bytes:#x} is not a page multiple in 1..={MAX_MAP:#x}"
        )));
    }
    if !addr.is_multiple_of(PAGE_SIZE)
        || addr < WINDOW_START
        || addr.checked_add(bytes).is_none_or(|e| e > WINDOW_END)
    {
        return Err(invalid(alloc::format!(
            "range {addr:#x}+{bytes:#x} is not page aligned inside {WINDOW_START:#x}..{WINDOW_END:#x}"
        )));
    }
    Ok(bytes / PAGE_SIZE)
}

impl VirtualMemoryServer for Server<'_> {
    fn map(
        &mut self,
        params: virtual_memory::map_params::Reader<'_>,
        mut results: virtual_memory::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let bytes = params.get_bytes();
        let writable = params.get_writable();
        let mut space = self.ctx.caller.space.lock();
        let space = space
            .as_mut()
            .ok_or_else(|| ServerError::exception(exception::BAD_STATE, "process is exiting"))?;
        let addr = match params.get_addr() {
            0 => {
                // First free run in the window, scanning in steps of the size.
                let pages = check(WINDOW_START, bytes)?;
                let mut at = WINDOW_START;
                loop {
                    if at + bytes > WINDOW_END {
                        return Err(ServerError::exception(exception::EXHAUSTED, "window full"));
                    }
                    if !space.any_mapped(at, pages) {
                        break at;
                    }
                    at += bytes;
                }
            }
            a => a,
        };
        let pages = check(addr, bytes)?;
        if space.any_mapped(addr, pages) {
            return Err(invalid(alloc::format!(
                "range {addr:#x}+{bytes:#x} overlaps an existing mapping"
            )));
        }
        space
            .map_new(addr, pages, writable, false)
            .map_err(|e| ServerError::exception(exception::EXHAUSTED, alloc::format!("{e}")))?;
        results.set_addr(addr);
        Ok(())
    }

    fn unmap(
        &mut self,
        params: virtual_memory::unmap_params::Reader<'_>,
        _results: virtual_memory::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let (addr, bytes) = (params.get_addr(), params.get_bytes());
        let pages = check(addr, bytes)?;
        let freed = {
            let mut space = self.ctx.caller.space.lock();
            let space = space.as_mut().ok_or_else(|| {
                ServerError::exception(exception::BAD_STATE, "process is exiting")
            })?;
            space.unmap_keep_frames(addr, pages)
        };
        // Other threads of the caller may run on other CPUs with the old
        // translations cached: they flush before the frames are reused.
        if !freed.is_empty() {
            crate::arch::x86_64::tlb::shootdown(&crate::sched::cpus_running(self.ctx.caller));
        }
        for frame in freed {
            let _ = crate::mem::frames::free(frame);
        }
        Ok(())
    }
}

impl CapObject for KernelVirtualMemory {
    fn interface_id(&self) -> u64 {
        capos_schema::virtual_memory::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::virtual_memory::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::virtual_memory::method::name(method).is_some()
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, params: &[u8]) -> CallOutcome {
        outcome(dispatch_virtual_memory(&mut Server { ctx }, method, params))
    }
}
