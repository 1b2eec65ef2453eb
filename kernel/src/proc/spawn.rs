//! Creating a process: address space, program, stack, ring, startup page,
//! granted caps, first thread.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicU64;

use capos_abi::{
    ring_layout, CapSetEntry, StartupHeader, CAPSET_ENTRY_SIZE, MAX_CAPSET, RING_ADDR,
    STARTUP_HEADER_SIZE, STARTUP_MAGIC, STARTUP_PAGE_ADDR, STARTUP_PAGE_SIZE, STARTUP_VERSION,
    USER_STACK_PAGES, USER_STACK_TOP,
};

use super::thread::{
    make_ring, write_phys, ThreadCharge, ThreadSet, UserThread, CQ_ENTRIES, SQ_ENTRIES,
};
use super::{elf_load, next_pid, register, ExitState, Process};
use crate::cap::{CapEntry, CapTable};
use crate::mem::account::{Account, Charge, QuotaExceeded, Resource};
use crate::mem::address_space::AddressSpace;
use crate::mem::paging::PagingError;
use crate::mem::PAGE_SIZE;
use crate::sched::{self, UserStart};
use crate::sync::IrqLock;
/// Bytes of arguments a process may receive.
pub const MAX_ARGS_BYTES: usize = 1024;

/// A cap handed to a new process under a name.
pub struct Grant {
    /// Name in the child's CapSet.
    pub name: String,
    /// The cap.
    pub cap: CapEntry,
}

/// Why a process could not be created.
#[derive(Debug)]
pub enum SpawnError {
    /// The program failed to load.
    Load(elf_load::LoadError),
    /// Out of memory.
    NoMemory,
    /// More grants than a CapSet holds.
    TooManyGrants(usize),
    /// A grant name is empty, too long or repeated.
    BadGrantName(String),
    /// Arguments too long.
    ArgsTooLong(usize),
    /// The new process's (or its parent's) resource profile cannot hold it.
    Quota(QuotaExceeded),
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Load(e) => write!(f, "{e}"),
            Self::NoMemory => f.write_str("out of memory"),
            Self::TooManyGrants(n) => write!(f, "{n} grants (at most {MAX_CAPSET})"),
            Self::BadGrantName(n) => write!(f, "grant name `{n}` is empty, too long or repeated"),
            Self::ArgsTooLong(n) => write!(f, "{n} bytes of arguments (at most {MAX_ARGS_BYTES})"),
            Self::Quota(q) => write!(f, "{q}"),
        }
    }
}

fn paging_error(e: PagingError) -> SpawnError {
    match e {
        PagingError::Quota(q) => SpawnError::Quota(q),
        _ => SpawnError::NoMemory,
    }
}

/// Starts `image` as a new process named `name` holding exactly `grants`,
/// charging everything it holds to `account`.
pub fn spawn(
    name: &str,
    image: &[u8],
    grants: Vec<Grant>,
    args: &[&str],
    parent: u64,
    account: Arc<Account>,
) -> Result<Arc<Process>, SpawnError> {
    if grants.len() > MAX_CAPSET as usize {
        return Err(SpawnError::TooManyGrants(grants.len()));
    }
    for (i, g) in grants.iter().enumerate() {
        if g.name.is_empty()
            || g.name.len() > capos_abi::CAPSET_NAME_LEN
            || grants[..i].iter().any(|o| o.name == g.name)
        {
            return Err(SpawnError::BadGrantName(g.name.clone()));
        }
    }
    let args_len: usize = args.iter().map(|a| a.len() + 1).sum();
    let capset_bytes = grants.len() * CAPSET_ENTRY_SIZE;
    if args_len > MAX_ARGS_BYTES
        || STARTUP_HEADER_SIZE + capset_bytes + args_len > STARTUP_PAGE_SIZE
    {
        return Err(SpawnError::ArgsTooLong(args_len));
    }

    if grants.len() > account.limits().caps as usize {
        return Err(SpawnError::Quota(QuotaExceeded {
            resource: Resource::Caps,
            limit: account.limits().caps as u64,
            used: 0,
            asked: grants.len() as u64,
        }));
    }
    let record = Charge::new(&account, 0, core::mem::size_of::<Process>() as u64)
        .map_err(SpawnError::Quota)?;
    let mut space = AddressSpace::new(account.clone()).map_err(paging_error)?;
    let entry = elf_load::load(&mut space, image).map_err(|e| match e {
        elf_load::LoadError::Paging(p) => paging_error(p),
        e => SpawnError::Load(e),
    })?;

    // Stack, with the page below it left unmapped as a guard.
    let stack_bottom = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    space.map_new(stack_bottom, USER_STACK_PAGES, true, false).map_err(paging_error)?;

    // The first thread's ring.
    let layout = ring_layout(SQ_ENTRIES, CQ_ENTRIES).expect("ring geometry constants are valid");
    let ring = make_ring(&mut space, RING_ADDR).map_err(paging_error)?;

    // Caps, then the startup page naming them.
    let mut caps = CapTable::with_limit(account.limits().caps as usize);
    // alloc: the capset and the startup page are bounded by MAX_CAPSET entries and one page (checked above)
    let mut capset = Vec::with_capacity(capset_bytes);
    for g in grants {
        crate::kdebug!("proc", "{}: cap `{}` -> {}", name, g.name, g.cap.object.describe());
        let iface = g.cap.interface_id;
        let id = caps.insert(g.cap).map_err(|_| SpawnError::NoMemory)?;
        let e = CapSetEntry::new(&g.name, id, iface).ok_or(SpawnError::BadGrantName(g.name))?;
        capset.extend_from_slice(&e.to_bytes()); // alloc: within the capacity above
    }
    let mut page = Vec::with_capacity(STARTUP_PAGE_SIZE); // alloc: one page
    let capset_offset = STARTUP_HEADER_SIZE as u32;
    let args_offset = capset_offset + capset.len() as u32;
    let startup = StartupHeader {
        magic: STARTUP_MAGIC,
        version: STARTUP_VERSION,
        capset_count: (capset.len() / CAPSET_ENTRY_SIZE) as u32,
        ring_addr: RING_ADDR,
        ring_bytes: layout.total_bytes as u64,
        sq_entries: SQ_ENTRIES,
        cq_entries: CQ_ENTRIES,
        args_offset,
        args_len: args_len as u32,
        capset_offset,
        reserved: 0,
    };
    page.extend_from_slice(&startup.to_bytes()); // alloc: the page is checked to fit above
    page.extend_from_slice(&capset); // alloc: as above
    for a in args {
        page.extend_from_slice(a.as_bytes()); // alloc: as above
        page.push(0);
    }
    space.map_new(STARTUP_PAGE_ADDR, 1, true, false).map_err(paging_error)?;
    let phys = space.translate_any(STARTUP_PAGE_ADDR).expect("startup page mapped above");
    write_phys(phys, 0, &page);
    space.protect(STARTUP_PAGE_ADDR, 1, false, false);

    let process = Arc::new(Process {
        pid: next_pid(),
        name: String::from(name),
        parent,
        space: IrqLock::new(Some(space)),
        caps: IrqLock::new(caps),
        exit: IrqLock::new(ExitState::default()),
        kill_requested: AtomicBool::new(false),
        ended: AtomicBool::new(false),
        threads: IrqLock::new(ThreadSet::new()),
        cpu_ticks: AtomicU64::new(0),
        account: account.clone(),
        _record: record,
    });
    let start = UserStart { entry, rsp: USER_STACK_TOP, rdi: 0, rsi: RING_ADDR, fs_base: 0 };
    let charge = ThreadCharge::new(&account).map_err(SpawnError::Quota)?;
    // alloc: one fixed-size user part per thread, charged above
    let user = alloc::boxed::Box::new(UserThread::new(0, ring, charge));
    let thread = sched::spawn_user(process.clone(), start, user).ok_or(SpawnError::NoMemory)?;
    register(&process);
    process.threads.lock().live.push(thread.clone());
    sched::start(thread.clone());
    crate::kinfo!(
        "proc",
        "started {} (pid {}, parent {}) as thread {} on cpu{}, entry {:#x}",
        process.name,
        process.pid,
        parent,
        thread.tid,
        thread.cpu(),
        entry
    );
    Ok(process)
}
