//! `VirtualMemory`: map and unmap anonymous memory in the caller's own
//! address space, inside the window reserved for it. An unmap shoots down
//! the TLBs of the other CPUs running the caller's threads before the
//! frames are freed.
//!
//! The mappings made here are kept as a sorted list of regions, so finding
//! a free range (`addr` 0) or an overlap costs a search of that list, not a
//! walk of the page tables. Every frame is charged to the caller's account:
//! a request the account cannot hold fails with `QuotaExceeded` before any
//! frame moves; one the machine cannot hold (the kernel's reserve reached)
//! fails with `NoMemory`, and what it mapped is given back first.
//!
//! `createSharedBuffer` makes a [`super::shared_buffer`] buffer charged the
//! same way; its mappings live in a window of their own above this one.

use capos_schema::capos_capnp::virtual_memory;
use capos_schema::{dispatch_virtual_memory_in, ServerError, VirtualMemoryServer};

use capos_abi::TransportError;

use super::{exception, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame, Refusal};
use crate::mem::address_space::table_frames_bound;
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
    refusal: &'a Refusal,
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

/// Frames freed per TLB shootdown when unmapping (a stack buffer: unmap
/// and rollback allocate nothing).
const UNMAP_CHUNK: usize = 256;

/// Unmaps `pages` pages at `addr` from the caller's space, a chunk at a
/// time: each chunk's frames are freed once the other CPUs running the
/// caller's threads have flushed their TLBs.
fn unmap_shared(ctx: &CallContext<'_>, addr: u64, pages: u64) {
    let mut frames = [0u64; UNMAP_CHUNK];
    let mut done = 0;
    while done < pages {
        let (walked, n) = {
            let mut space = ctx.caller.space.lock();
            let Some(space) = space.as_mut() else { return };
            space.unmap_into(addr + done * PAGE_SIZE, pages - done, &mut frames)
        };
        if n > 0 {
            crate::arch::x86_64::tlb::shootdown(crate::sched::cpus_running(ctx.caller));
        }
        for &f in &frames[..n] {
            let _ = crate::mem::frames::free(f);
        }
        done += walked;
    }
}

impl VirtualMemoryServer for Server<'_> {
    type Cap = CapEntry;

    fn map(
        &mut self,
        params: virtual_memory::map_params::Reader<'_>,
        mut results: virtual_memory::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let bytes = params.get_bytes();
        let writable = params.get_writable();
        let requested = params.get_addr();
        let ctx = self.ctx;
        let mut guard = ctx.caller.space.lock();
        let space = guard
            .as_mut()
            .ok_or_else(|| ServerError::exception(exception::BAD_STATE, "process is exiting"))?;
        let addr = match requested {
            0 => {
                check(WINDOW_START, bytes)?;
                space
                    .vm_find_free(bytes, WINDOW_START, WINDOW_END)
                    .ok_or_else(|| ServerError::exception(exception::EXHAUSTED, "window full"))?
            }
            a => a,
        };
        let pages = check(addr, bytes)?;
        if space.vm_overlaps(addr, bytes) {
            return Err(invalid(alloc::format!(
                "range {addr:#x}+{bytes:#x} overlaps an existing mapping"
            )));
        }
        // Refuse at once what the account could never hold, before any
        // frame moves.
        let worst = pages + table_frames_bound(addr, pages);
        if space.account().left().frames < worst {
            drop(guard);
            return Err(self.refusal.refuse(TransportError::QuotaExceeded));
        }
        if let Err(e) = space.vm_insert(addr, bytes) {
            drop(guard);
            return Err(self.refusal.refuse(e.into()));
        }
        match space.map_new_partial(addr, pages, writable, false) {
            Ok(()) => {
                results.set_addr(addr);
                Ok(())
            }
            Err((e, mapped)) => {
                // The region goes first (a split cannot be needed: it is
                // removed whole), then the pages mapped so far.
                let _ = space.vm_remove(addr, bytes);
                drop(guard);
                unmap_shared(ctx, addr, mapped);
                Err(self.refusal.refuse(e.into()))
            }
        }
    }

    fn unmap(
        &mut self,
        params: virtual_memory::unmap_params::Reader<'_>,
        _results: virtual_memory::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let (addr, bytes) = (params.get_addr(), params.get_bytes());
        let pages = check(addr, bytes)?;
        let removed = {
            let mut guard = self.ctx.caller.space.lock();
            let space = guard.as_mut().ok_or_else(|| {
                ServerError::exception(exception::BAD_STATE, "process is exiting")
            })?;
            space.vm_remove(addr, bytes)
        };
        if let Err(e) = removed {
            return Err(self.refusal.refuse(e.into()));
        }
        // Other threads of the caller may run on other CPUs with the old
        // translations cached: they flush before the frames are reused.
        unmap_shared(self.ctx, addr, pages);
        Ok(())
    }

    fn create_shared_buffer(
        &mut self,
        params: virtual_memory::create_shared_buffer_params::Reader<'_>,
        _results: virtual_memory::create_shared_buffer_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        super::shared_buffer::create(self.ctx.caller, params.get_bytes())
            .map_err(|e| super::shared_buffer::server_error(e, self.refusal))
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

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_virtual_memory_in(&mut Server { ctx, refusal: &refusal }, method, frame);
        refusal.or(|| super::outcome_caps(r))
    }
}
