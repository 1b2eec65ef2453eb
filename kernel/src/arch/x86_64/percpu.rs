//! Per-CPU data, reached through the GS base.
//!
//! Each CPU's GS base points at its [`PerCpu`]; the first field points at
//! itself so `mov %gs:0` yields the structure. The boot CPU's record is a
//! static (it exists before the heap); the others are allocated at start-up.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use x86_64::registers::model_specific::{GsBase, KernelGsBase};
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// Most CPUs capOS brings up.
pub const MAX_CPUS: usize = 64;

/// One CPU's private data.
#[repr(C)]
pub struct PerCpu {
    self_ptr: AtomicPtr<PerCpu>,
    /// Kernel stack top for SYSCALL entry (`gs:[8]`): the running thread's.
    pub syscall_rsp: AtomicU64,
    /// User RSP saved by the SYSCALL entry stub (`gs:[16]`).
    pub user_rsp: AtomicU64,
    /// Dense index, 0 for the boot CPU.
    pub index: u32,
    /// Local APIC id.
    pub apic_id: AtomicU32,
    /// Local APIC timer interrupts taken.
    pub timer_ticks: AtomicU64,
    /// Context switches made.
    pub switches: AtomicU64,
    /// Threads this CPU took from other CPUs' run queues.
    pub steals: AtomicU64,
    /// Set once the CPU runs its idle loop with interrupts on.
    pub online: AtomicBool,
    /// The thread this CPU runs, as an opaque pointer the scheduler sets
    /// (so the syscall path finds it without a lock).
    pub current_thread: AtomicPtr<()>,
    pub(super) gdt: UnsafeCell<GlobalDescriptorTable<8>>,
    pub(super) tss: UnsafeCell<TaskStateSegment>,
}

const _: () = assert!(core::mem::offset_of!(PerCpu, syscall_rsp) == 8);
const _: () = assert!(core::mem::offset_of!(PerCpu, user_rsp) == 16);

// SAFETY: the UnsafeCell fields are written only by the owning CPU while it
// sets itself up (or by the boot CPU before the owner starts); afterwards only
// the hardware reads them.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    /// A fresh record for CPU `index`.
    pub const fn new(index: u32) -> Self {
        Self {
            self_ptr: AtomicPtr::new(core::ptr::null_mut()),
            syscall_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            index,
            apic_id: AtomicU32::new(0),
            timer_ticks: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            online: AtomicBool::new(false),
            current_thread: AtomicPtr::new(core::ptr::null_mut()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::empty()),
            tss: UnsafeCell::new(TaskStateSegment::new()),
        }
    }
}

/// The boot CPU's record.
pub static BSP: PerCpu = PerCpu::new(0);

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static CPU_COUNT: AtomicU32 = AtomicU32::new(0);
static GS_READY: AtomicBool = AtomicBool::new(false);

/// Makes `cpu` this CPU's per-CPU record (GS base) and registers it.
pub fn install(cpu: &'static PerCpu) {
    let ptr = cpu as *const PerCpu as *mut PerCpu;
    cpu.self_ptr.store(ptr, Ordering::Release);
    GsBase::write(VirtAddr::from_ptr(ptr));
    KernelGsBase::write(VirtAddr::new(0));
    CPUS[cpu.index as usize].store(ptr, Ordering::Release);
    CPU_COUNT.fetch_max(cpu.index + 1, Ordering::AcqRel);
    GS_READY.store(true, Ordering::Release);
}

/// This CPU's record.
pub fn current() -> &'static PerCpu {
    if !GS_READY.load(Ordering::Acquire) {
        return &BSP;
    }
    let ptr: *const PerCpu;
    // SAFETY: once GS_READY is set on the boot CPU, every CPU that runs
    // kernel code has installed its GS base (APs do it before anything else),
    // and gs:0 holds the record's own address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) ptr, options(nostack, readonly, preserves_flags));
        &*ptr
    }
}

/// The record of CPU `index`, if it is registered.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    let ptr = CPUS.get(index)?.load(Ordering::Acquire);
    // SAFETY: registered pointers are 'static PerCpu records, never freed.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// This CPU's dense index (0 before per-CPU data exists).
pub fn cpu_index() -> u32 {
    current().index
}

/// Every registered CPU record.
pub fn all() -> impl Iterator<Item = &'static PerCpu> {
    let n = CPU_COUNT.load(Ordering::Acquire) as usize;
    CPUS[..n].iter().filter_map(|p| {
        let ptr = p.load(Ordering::Acquire);
        // SAFETY: registered pointers are 'static PerCpu records, never freed.
        (!ptr.is_null()).then(|| unsafe { &*ptr })
    })
}
