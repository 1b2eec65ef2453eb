//! `SharedBuffer`: memory shared between processes. Made by
//! `VirtualMemory.createSharedBuffer`; each holder maps the whole buffer
//! into its own address space (the shared-buffer window of
//! [`crate::mem::address_space`]).
//!
//! One [`Buffer`] per buffer holds its frames ([`SharedFrames`], charged to
//! the creator) and the list of its mappings, (process, address) pairs, at
//! most [`MAX_MAPPINGS`]. Caps are [`SharedBufferCap`]s: the creator's is
//! writable and may revoke; `readOnly` makes one that can do neither.
//! Every mapping's record in its address space holds the frames too, so
//! they are freed when the buffer is revoked, or when the last cap is gone
//! and the last mapping unmapped (a process's exit unmaps its own).
//!
//! Revocation takes the frames and the mapping list out of the buffer (so
//! every later call fails with `Revoked`), then unmaps each mapping from
//! its holder's address space and shoots down the TLBs of the CPUs running
//! that holder before letting the frames go.
//!
//! Locks: the buffer's state, then an address space; TLB shootdowns happen
//! with neither held.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use capos_abi::TransportError;
use capos_schema::capos_capnp::shared_buffer;
use capos_schema::{dispatch_shared_buffer_in, ServerError, SharedBufferServer};

use super::{exception, CallContext, CallOutcome, CapEntry, CapObject, KernelFrame, Refusal};
use crate::mem::paging::PagingError;
use crate::mem::shared::SharedFrames;
use crate::mem::PAGE_SIZE;
use crate::proc::Process;
use crate::sync::IrqLock;

/// Largest buffer.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Most mappings of one buffer, over every holder.
pub const MAX_MAPPINGS: usize = 16;

/// Application error code: the cap lacks the authority (a writable map or
/// a revoke through a read-only cap).
pub const DENIED: u32 = 6;

/// Kernel bytes charged to the creator for the buffer's record and its
/// mapping list.
const RECORD_BYTES: u64 =
    (core::mem::size_of::<Buffer>() + MAX_MAPPINGS * core::mem::size_of::<Holder>()) as u64;

/// One mapping: who mapped the buffer, and where.
struct Holder {
    process: Weak<Process>,
    addr: u64,
}

struct State {
    /// The frames; `None` once revoked.
    frames: Option<Arc<SharedFrames>>,
    /// Live mappings (entries of ended processes are pruned when room is
    /// needed); capacity [`MAX_MAPPINGS`], reserved at creation.
    maps: Vec<Holder>,
}

/// One shared buffer, whichever caps refer to it.
pub struct Buffer {
    bytes: u64,
    revoked: AtomicBool,
    state: IrqLock<State>,
    /// Charged with [`RECORD_BYTES`].
    account: Arc<crate::mem::account::Account>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.account.uncharge_bytes(RECORD_BYTES);
    }
}

/// A cap to a buffer.
pub struct SharedBufferCap {
    buffer: Arc<Buffer>,
    /// The creator's cap: may map writable and revoke.
    writable: bool,
}

/// Why a buffer operation was refused.
#[derive(Debug, Clone, Copy)]
pub enum BufferError {
    /// Size 0, not a page multiple, or over [`MAX_BYTES`].
    BadSize(u64),
    /// The cap is read-only.
    Denied,
    /// The buffer was revoked.
    Revoked,
    /// [`MAX_MAPPINGS`] mappings exist.
    TooManyMappings,
    /// The caller has no mapping of this buffer at that address.
    NotMapped(u64),
    /// The caller is exiting.
    Exiting,
    /// The shared-buffer window of the caller has no room.
    WindowFull,
    /// Frames, or kernel memory, over the caller's quota or the machine's.
    Paging(PagingError),
}

/// A new buffer of `bytes` charged to `caller`'s account; the creator's cap.
pub fn create(caller: &Arc<Process>, bytes: u64) -> Result<CapEntry, BufferError> {
    if bytes == 0 || bytes > MAX_BYTES || !bytes.is_multiple_of(PAGE_SIZE) {
        return Err(BufferError::BadSize(bytes));
    }
    let account = {
        let guard = caller.space.lock();
        guard.as_ref().ok_or(BufferError::Exiting)?.account().clone()
    };
    account.charge_bytes(RECORD_BYTES).map_err(|q| BufferError::Paging(PagingError::Quota(q)))?;
    let mut maps = Vec::new();
    if maps.try_reserve_exact(MAX_MAPPINGS).is_err() {
        account.uncharge_bytes(RECORD_BYTES);
        return Err(BufferError::Paging(PagingError::OutOfFrames));
    }
    let frames = match SharedFrames::new(&account, bytes / PAGE_SIZE) {
        Ok(f) => f,
        Err(e) => {
            account.uncharge_bytes(RECORD_BYTES);
            return Err(BufferError::Paging(e));
        }
    };
    let buffer = Arc::new(Buffer {
        bytes,
        revoked: AtomicBool::new(false),
        state: IrqLock::new(State { frames: Some(frames), maps }),
        account,
    });
    Ok(CapEntry::new(Arc::new(SharedBufferCap { buffer, writable: true })))
}

impl SharedBufferCap {
    /// Size, writability of this cap, live mappings.
    pub fn info(&self) -> Result<(u64, bool, u32), BufferError> {
        let mut st = self.buffer.state.lock();
        if st.frames.is_none() {
            return Err(BufferError::Revoked);
        }
        prune(&mut st.maps);
        Ok((self.buffer.bytes, self.writable, st.maps.len() as u32))
    }

    /// Maps the buffer into `caller`'s space; returns the address.
    pub fn map(&self, caller: &Arc<Process>, writable: bool) -> Result<u64, BufferError> {
        if writable && !self.writable {
            return Err(BufferError::Denied);
        }
        let mut st = self.buffer.state.lock();
        let frames = st.frames.clone().ok_or(BufferError::Revoked)?;
        if st.maps.len() >= MAX_MAPPINGS {
            prune(&mut st.maps);
            if st.maps.len() >= MAX_MAPPINGS {
                return Err(BufferError::TooManyMappings);
            }
        }
        let mapped = {
            let mut guard = caller.space.lock();
            let space = guard.as_mut().ok_or(BufferError::Exiting)?;
            space.map_shared(&frames, writable)
        };
        match mapped {
            Ok(addr) => {
                // Capacity for MAX_MAPPINGS was reserved at creation.
                st.maps.push(Holder { process: Arc::downgrade(caller), addr });
                Ok(addr)
            }
            Err((e, touched)) => {
                drop(st);
                if touched {
                    crate::arch::x86_64::tlb::shootdown(crate::sched::cpus_running(caller));
                }
                drop(frames);
                Err(match e {
                    PagingError::WindowFull => BufferError::WindowFull,
                    e => BufferError::Paging(e),
                })
            }
        }
    }

    /// Unmaps `caller`'s mapping at `addr`.
    pub fn unmap(&self, caller: &Arc<Process>, addr: u64) -> Result<(), BufferError> {
        let mut st = self.buffer.state.lock();
        let frames = st.frames.clone().ok_or(BufferError::Revoked)?;
        let i = st
            .maps
            .iter()
            .position(|h| h.addr == addr && core::ptr::eq(h.process.as_ptr(), Arc::as_ptr(caller)))
            .ok_or(BufferError::NotMapped(addr))?;
        st.maps.swap_remove(i);
        let record = {
            let mut guard = caller.space.lock();
            guard.as_mut().and_then(|space| space.unmap_shared(addr, &frames))
        };
        drop(st);
        // Other threads of the caller may run on other CPUs with the old
        // translations cached: they flush before the frames can be freed.
        crate::arch::x86_64::tlb::shootdown(crate::sched::cpus_running(caller));
        drop(record);
        drop(frames);
        Ok(())
    }

    /// A read-only cap to the same buffer.
    pub fn read_only(&self) -> Result<CapEntry, BufferError> {
        if self.buffer.revoked.load(Ordering::Acquire) {
            return Err(BufferError::Revoked);
        }
        Ok(CapEntry::new(Arc::new(SharedBufferCap {
            buffer: self.buffer.clone(),
            writable: false,
        })))
    }

    /// Revokes the buffer: unmaps it everywhere and frees its frames once
    /// nothing maps them.
    pub fn revoke(&self) -> Result<u64, BufferError> {
        if !self.writable {
            return Err(BufferError::Denied);
        }
        let (frames, maps) = {
            let mut st = self.buffer.state.lock();
            let frames = st.frames.take().ok_or(BufferError::Revoked)?;
            self.buffer.revoked.store(true, Ordering::Release);
            (frames, core::mem::take(&mut st.maps))
        };
        let mut unmapped = 0;
        for h in &maps {
            let Some(process) = h.process.upgrade() else { continue };
            let record = {
                let mut guard = process.space.lock();
                guard.as_mut().and_then(|space| space.unmap_shared(h.addr, &frames))
            };
            if record.is_some() {
                crate::arch::x86_64::tlb::shootdown(crate::sched::cpus_running(&process));
                unmapped += 1;
            }
            drop(record);
        }
        drop(maps);
        crate::kdebug!(
            "cap",
            "shared buffer of {} pages revoked: {unmapped} mapping(s) unmapped",
            frames.pages()
        );
        // The last reference but for address spaces being torn down: the
        // frames go back now.
        drop(frames);
        Ok(unmapped)
    }
}

/// Drops the entries of processes that have ended (their address spaces
/// let go of the frames themselves). Allocates nothing.
fn prune(maps: &mut Vec<Holder>) {
    maps.retain(|h| h.process.upgrade().is_some_and(|p| !p.ended.load(Ordering::Acquire)));
}

/// The named error a refused operation ends the call with.
pub fn server_error(e: BufferError, refusal: &Refusal) -> ServerError {
    match e {
        BufferError::BadSize(b) => ServerError::exception(
            exception::INVALID_ARGUMENT,
            alloc::format!("size {b:#x} is not a page multiple in 1..={MAX_BYTES:#x}"),
        ),
        BufferError::Denied => {
            ServerError::exception(DENIED, "a read-only SharedBuffer cap may not do that")
        }
        BufferError::Revoked => refusal.refuse(TransportError::Revoked),
        BufferError::TooManyMappings => ServerError::exception(
            exception::EXHAUSTED,
            alloc::format!("the buffer is mapped {MAX_MAPPINGS} times (the most)"),
        ),
        BufferError::NotMapped(a) => ServerError::exception(
            exception::NOT_FOUND,
            alloc::format!("no mapping of this buffer at {a:#x} in the caller"),
        ),
        BufferError::Exiting => ServerError::exception(exception::BAD_STATE, "process is exiting"),
        BufferError::WindowFull => {
            ServerError::exception(exception::EXHAUSTED, "shared-buffer window full")
        }
        BufferError::Paging(e) => refusal.refuse(e.into()),
    }
}

struct Server<'a> {
    cap: &'a SharedBufferCap,
    ctx: &'a CallContext<'a>,
    refusal: &'a Refusal,
}

impl SharedBufferServer for Server<'_> {
    type Cap = CapEntry;

    fn info(
        &mut self,
        _params: shared_buffer::info_params::Reader<'_>,
        mut results: shared_buffer::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let (bytes, writable, mappings) =
            self.cap.info().map_err(|e| server_error(e, self.refusal))?;
        results.set_bytes(bytes);
        results.set_writable(writable);
        results.set_mappings(mappings);
        Ok(())
    }

    fn map(
        &mut self,
        params: shared_buffer::map_params::Reader<'_>,
        mut results: shared_buffer::map_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let addr = self
            .cap
            .map(self.ctx.caller, params.get_writable())
            .map_err(|e| server_error(e, self.refusal))?;
        results.set_addr(addr);
        Ok(())
    }

    fn unmap(
        &mut self,
        params: shared_buffer::unmap_params::Reader<'_>,
        _results: shared_buffer::unmap_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap
            .unmap(self.ctx.caller, params.get_addr())
            .map_err(|e| server_error(e, self.refusal))
    }

    fn read_only(
        &mut self,
        _params: shared_buffer::read_only_params::Reader<'_>,
        _results: shared_buffer::read_only_results::Builder<'_>,
    ) -> Result<CapEntry, ServerError> {
        self.cap.read_only().map_err(|e| server_error(e, self.refusal))
    }

    fn revoke(
        &mut self,
        _params: shared_buffer::revoke_params::Reader<'_>,
        _results: shared_buffer::revoke_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        self.cap.revoke().map(|_| ()).map_err(|e| server_error(e, self.refusal))
    }
}

impl CapObject for SharedBufferCap {
    fn interface_id(&self) -> u64 {
        capos_schema::shared_buffer::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::shared_buffer::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::shared_buffer::method::name(method).is_some()
    }

    fn revoked(&self) -> bool {
        self.buffer.revoked.load(Ordering::Acquire)
    }

    fn call(&self, ctx: &CallContext<'_>, method: u16, frame: &mut KernelFrame<'_>) -> CallOutcome {
        let refusal = Refusal::default();
        let r = dispatch_shared_buffer_in(
            &mut Server { cap: self, ctx, refusal: &refusal },
            method,
            frame,
        );
        refusal.or(|| super::outcome_caps(r))
    }

    fn describe(&self) -> alloc::string::String {
        alloc::format!(
            "SharedBuffer ({} KiB, {})",
            self.buffer.bytes / 1024,
            if self.writable { "writable" } else { "read-only" }
        )
    }
}
