//! Threads of a process: creation, their rings, their end.
//!
//! Every thread of a process shares its address space and cap table and has
//! a ring of its own, so a completion always reaches the thread whose SQE
//! made the call (the thread blocked in `cap_enter` on that ring). The first
//! thread (slot 0) uses the ring at `RING_ADDR`; thread slot `n` uses the
//! ring at `THREAD_RING_BASE + (n - 1) * THREAD_RING_STRIDE`, mapped when
//! the slot is first used and reset when it is reused. At most
//! `MAX_THREADS` threads live at once.
//!
//! A thread ends by `thread_exit` (its value), by a fault, or because its
//! process is ending. Its ring closes and its slot is given back at once;
//! its kernel stack is freed when the scheduler reaps it, after it left its
//! CPU; the reaper of the last thread tears the process down.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, Ordering};

use capos_abi::{
    ring_layout, RingHeader, TransportError, MAX_THREADS, RING_ADDR, THREAD_RING_BASE,
    THREAD_RING_STRIDE, USER_TOP,
};

use super::{teardown, ExitCause, Process};
use crate::completion::{PendingCall, RingState, MAX_RING_PAGES};
use crate::mem::account::{Account, Charge, QuotaExceeded, Resource};
use crate::mem::address_space::AddressSpace;
use crate::mem::paging::PagingError;
use crate::mem::stacks::KERNEL_STACK_PAGES;
use crate::mem::{phys_to_virt, PAGE_SIZE};
use crate::sched::{self, Thread, UserStart};
use crate::sync::IrqLock;

/// Submission queue entries per thread ring.
pub const SQ_ENTRIES: u32 = 64;
/// Completion queue entries per thread ring.
pub const CQ_ENTRIES: u32 = 128;

/// The live threads of a process and the ring slots they use.
pub struct ThreadSet {
    /// Threads not yet reaped.
    pub live: Vec<Arc<Thread>>,
    /// Bit `n` set: slot `n` (and its ring) belongs to a live thread.
    slots: u32,
}

const _: () = assert!(MAX_THREADS <= 32, "slots fit the bitmap");

impl ThreadSet {
    /// No threads yet; slot 0 reserved for the first.
    pub fn new() -> Self {
        Self { live: Vec::new(), slots: 1 }
    }
}

/// How a thread ended, and the `join` calls waiting for it.
#[derive(Default)]
pub struct EndState {
    /// Set once the thread ended.
    pub cause: Option<ExitCause>,
    /// `ThreadHandle.join` calls to complete when it ends.
    pub joiners: Vec<PendingCall>,
    /// Whether a `join` was accepted (a second one fails with `BadState`).
    pub joined: bool,
}

/// What a thread costs its process's account while it exists: one thread,
/// its kernel stack's frames and its record's bytes.
pub struct ThreadCharge {
    account: Arc<Account>,
    _memory: Charge,
}

impl ThreadCharge {
    /// Charges one more thread to `account`.
    pub fn new(account: &Arc<Account>) -> Result<Self, QuotaExceeded> {
        account.charge_count(Resource::Threads, 1)?;
        // The thread and its user part (which holds the ring state).
        let bytes = (core::mem::size_of::<Thread>() + core::mem::size_of::<UserThread>()) as u64;
        match Charge::new(account, KERNEL_STACK_PAGES, bytes) {
            Ok(memory) => Ok(Self { account: account.clone(), _memory: memory }),
            Err(e) => {
                account.uncharge_count(Resource::Threads, 1);
                Err(e)
            }
        }
    }
}

impl Drop for ThreadCharge {
    fn drop(&mut self) {
        self.account.uncharge_count(Resource::Threads, 1);
    }
}

/// The user-thread part of a [`Thread`].
pub struct UserThread {
    /// Ring slot.
    pub slot: u32,
    /// Kernel side of the thread's ring.
    pub ring: IrqLock<RingState>,
    /// Set while the thread waits in `cap_enter` for completions.
    pub waiting: AtomicBool,
    /// How the thread ended.
    pub end: IrqLock<EndState>,
    /// Its cost, charged to the process's account until it is dropped.
    _charge: ThreadCharge,
}

impl UserThread {
    /// A thread part using `ring` of `slot`.
    pub fn new(slot: u32, ring: RingState, charge: ThreadCharge) -> Self {
        Self {
            slot,
            ring: IrqLock::new(ring),
            waiting: AtomicBool::new(false),
            end: IrqLock::new(EndState::default()),
            _charge: charge,
        }
    }
}

/// The user part of `thread` (`None` for an idle thread).
pub fn user_of(thread: &Thread) -> Option<&UserThread> {
    thread.user.as_deref().and_then(|u| u.downcast_ref::<UserThread>())
}

/// Where the ring of `slot` lives.
pub fn ring_addr(slot: u32) -> u64 {
    match slot {
        0 => RING_ADDR,
        n => THREAD_RING_BASE + (n as u64 - 1) * THREAD_RING_STRIDE,
    }
}

/// Maps a ring at `addr` in `space` (or reuses the one already there) and
/// gives it a fresh header.
pub fn make_ring(space: &mut AddressSpace, addr: u64) -> Result<RingState, PagingError> {
    let layout = ring_layout(SQ_ENTRIES, CQ_ENTRIES).expect("ring geometry constants are valid");
    let pages = layout.total_bytes as u64 / PAGE_SIZE;
    assert!(pages as usize <= MAX_RING_PAGES, "ring fits MAX_RING_PAGES");
    assert!(layout.total_bytes as u64 + PAGE_SIZE <= THREAD_RING_STRIDE, "ring fits its slot");
    if !space.any_mapped(addr, pages) {
        space.map_new(addr, pages, true, false)?;
    }
    let mut frames = [0u64; MAX_RING_PAGES];
    for (i, f) in frames.iter_mut().take(pages as usize).enumerate() {
        *f = space.translate_any(addr + i as u64 * PAGE_SIZE).expect("ring page mapped above");
    }
    let frames = &frames[..pages as usize];
    let header = RingHeader {
        sq_head: 0,
        sq_tail: 0,
        cq_head: 0,
        cq_tail: 0,
        sq_entries: SQ_ENTRIES,
        cq_entries: CQ_ENTRIES,
        sq_mask: SQ_ENTRIES - 1,
        cq_mask: CQ_ENTRIES - 1,
        flags: 0,
        cq_overflow: 0,
        sqe_offset: layout.sqe_offset,
        cqe_offset: layout.cqe_offset,
        reserved: [0; 4],
    };
    write_phys(frames[0], 0, &header_bytes(&header));
    Ok(RingState::new(frames, SQ_ENTRIES, CQ_ENTRIES, layout.sqe_offset, layout.cqe_offset))
}

fn header_bytes(h: &RingHeader) -> [u8; 64] {
    let mut b = [0u8; 64];
    let fields = [
        (offset_of!(RingHeader, sq_entries), h.sq_entries),
        (offset_of!(RingHeader, cq_entries), h.cq_entries),
        (offset_of!(RingHeader, sq_mask), h.sq_mask),
        (offset_of!(RingHeader, cq_mask), h.cq_mask),
        (offset_of!(RingHeader, flags), h.flags),
        (offset_of!(RingHeader, sqe_offset), h.sqe_offset),
        (offset_of!(RingHeader, cqe_offset), h.cqe_offset),
    ];
    for (off, v) in fields {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// Writes `bytes` at `offset` of the user frame `frame`.
pub fn write_phys(frame: u64, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= PAGE_SIZE as usize, "write stays inside one frame");
    // SAFETY: `frame` is a user frame of an address space the caller holds
    // (locked or not yet shared), reached through the direct map; the write
    // stays inside it (asserted).
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (phys_to_virt(frame) as *mut u8).add(offset),
            bytes.len(),
        )
    };
}

/// Where a new thread starts, as `ThreadSpawner.spawn` gives it.
pub struct ThreadStart {
    /// Entry point.
    pub entry: u64,
    /// Argument (`rdi`).
    pub arg: u64,
    /// Initial `rsp`.
    pub stack_top: u64,
    /// FS base.
    pub tls: u64,
}

/// Starts a thread in `process`. Fails with `BadPointer` when an address is
/// not in user space, `LimitReached` past `MAX_THREADS`, `QuotaExceeded`
/// past the process's thread or memory limits, `NoMemory`.
pub fn spawn(process: &Arc<Process>, start: ThreadStart) -> Result<Arc<Thread>, TransportError> {
    if [start.entry, start.stack_top, start.tls].iter().any(|&a| a >= USER_TOP) {
        return Err(TransportError::BadPointer);
    }
    let mut set = process.threads.lock();
    if set.live.len() >= MAX_THREADS as usize {
        return Err(TransportError::LimitReached);
    }
    let slot =
        (1..MAX_THREADS).find(|n| set.slots & (1 << n) == 0).ok_or(TransportError::LimitReached)?;
    let addr = ring_addr(slot);
    let charge = ThreadCharge::new(&process.account)?;
    let ring = {
        let mut space = process.space.lock();
        let space = space.as_mut().ok_or(TransportError::Disconnected)?;
        make_ring(space, addr)?
    };
    let thread = sched::spawn_user(
        process.clone(),
        UserStart {
            entry: start.entry,
            rsp: start.stack_top,
            rdi: start.arg,
            rsi: addr,
            fs_base: start.tls,
        },
        // alloc: one fixed-size user part per thread, charged above
        Box::new(UserThread::new(slot, ring, charge)),
    )
    .ok_or(TransportError::NoMemory)?;
    set.slots |= 1 << slot;
    set.live.push(thread.clone());
    drop(set);
    sched::start(thread.clone());
    crate::kdebug!(
        "proc",
        "{} (pid {}): thread {} in slot {} on cpu{}",
        process.name,
        process.pid,
        thread.tid,
        slot,
        thread.cpu()
    );
    Ok(thread)
}

/// Ends the calling thread with `cause`: closes its ring, answers its
/// joiners, and leaves the CPU for good. Interrupts must be off.
pub fn exit_current(process: Arc<Process>, cause: ExitCause) -> ! {
    let me = sched::current().expect("a user thread is running");
    if let Some(user) = user_of(&me) {
        // Calls still open on the ring stop counting against the process.
        let open = user.ring.lock().close();
        process.account.close_calls(open);
        // The slot (and its ring's pages) may serve a new thread at once:
        // this one never touches its ring again.
        process.threads.lock().slots &= !(1 << user.slot);
        let joiners = {
            let mut end = user.end.lock();
            if end.cause.is_none() {
                end.cause = Some(cause.clone());
            }
            core::mem::take(&mut end.joiners)
        };
        for j in joiners {
            (super::end_hooks().complete_join)(j, &cause);
        }
    }
    // Nothing may stay on this stack: it is freed once the thread is reaped.
    drop(me);
    drop(process);
    sched::exit_current()
}

/// A dead thread has left its CPU: give its slot back; if it was its
/// process's last thread, tear the process down.
pub fn reap(thread: Arc<Thread>) {
    let Some(process) = super::of(&thread) else { return };
    let last = {
        let mut set = process.threads.lock();
        set.live.retain(|t| !Arc::ptr_eq(t, &thread));
        set.live.is_empty()
    };
    if last && !process.ended.load(Ordering::Acquire) {
        let own = user_of(&thread).and_then(|u| u.end.lock().cause.clone());
        let requested = process.exit.lock().requested.clone();
        let cause = requested.or(own).unwrap_or(ExitCause::Killed);
        teardown(&process, cause);
    }
    drop(thread);
}

/// A user-mode page fault on a page not present: maps it if it is a
/// demand-zero page of the current process (see
/// `AddressSpace::reserve_zeroed`).
pub fn demand_fault(addr: u64) -> bool {
    let Some(process) = super::current_process() else { return false };
    let mut space = process.space.lock();
    space.as_mut().is_some_and(|s| s.fault_in(addr))
}

/// A CPU exception in user mode (through [`crate::hooks::Hooks::user_fault`]):
/// the current thread's process ends, never the kernel.
pub fn user_fault(f: crate::hooks::Fault) -> ! {
    let process = super::current_process().expect("user-mode code belongs to a process");
    let others = process.threads.lock().live.len() > 1;
    if others {
        let tid = crate::sched::current().map_or(0, |t| t.tid);
        crate::console!(
            "proc: {} (pid {}) thread {} killed by {} (vector {}) at rip={:#x} addr={:#x}",
            process.name,
            process.pid,
            tid,
            f.name,
            f.vector,
            f.rip,
            f.addr
        );
    } else {
        crate::console!(
            "proc: {} (pid {}) killed by {} (vector {}) at rip={:#x} addr={:#x}",
            process.name,
            process.pid,
            f.name,
            f.vector,
            f.rip,
            f.addr
        );
    }
    exit_current(
        process,
        ExitCause::Fault { name: f.name, vector: f.vector, rip: f.rip, addr: f.addr },
    )
}
