//! Per-CPU GDT and TSS.
//!
//! Layout (fixed; SYSRET depends on it): 0x08 kernel code, 0x10 kernel data,
//! 0x18 user data, 0x20 user code, 0x28 TSS. The TSS holds the interrupt
//! stack table: IST1 double fault, IST2 NMI, IST3 machine check, each on its
//! own guarded stack.

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, SegmentSelector};
use x86_64::{PrivilegeLevel, VirtAddr};

use super::percpu::PerCpu;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x20 | 3;
/// IST slot (1-based, as in the IDT) for double faults.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MACHINE_CHECK: u8 = 3;

/// Stack tops for the three IST slots.
#[derive(Clone, Copy)]
pub struct IstStacks {
    /// Double-fault stack top.
    pub double_fault: VirtAddr,
    /// NMI stack top.
    pub nmi: VirtAddr,
    /// Machine-check stack top.
    pub machine_check: VirtAddr,
}

/// Builds and loads `cpu`'s GDT and TSS on the calling CPU.
///
/// # Safety
/// Must be called on the CPU that owns `cpu`, once, before any other code
/// uses its GDT or TSS.
pub unsafe fn load(cpu: &'static PerCpu, ist: &IstStacks) {
    // SAFETY: per the contract, nothing else accesses this CPU's TSS/GDT now.
    let (gdt, tss) = unsafe { (&mut *cpu.gdt.get(), &mut *cpu.tss.get()) };
    set_ist(tss, ist);
    let kcode = gdt.append(Descriptor::kernel_code_segment());
    let kdata = gdt.append(Descriptor::kernel_data_segment());
    let _udata = gdt.append(Descriptor::user_data_segment());
    let _ucode = gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS lives in a 'static PerCpu and is never moved.
    let tss_sel = gdt.append(unsafe { Descriptor::tss_segment_unchecked(cpu.tss.get()) });
    debug_assert_eq!(kcode.0, KERNEL_CS);
    debug_assert_eq!(kdata.0, KERNEL_DS);
    // SAFETY: the GDT is 'static (inside PerCpu) and the selectors loaded
    // below refer to the descriptors just appended.
    unsafe {
        let gdt: &'static _ = &*cpu.gdt.get();
        gdt.load();
        CS::set_reg(kcode);
        SS::set_reg(kdata);
        DS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        ES::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        FS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        GS::set_reg(SegmentSelector::new(0, PrivilegeLevel::Ring0));
        load_tss(tss_sel);
    }
}

fn set_ist(tss: &mut x86_64::structures::tss::TaskStateSegment, ist: &IstStacks) {
    tss.interrupt_stack_table[(IST_DOUBLE_FAULT - 1) as usize] = ist.double_fault;
    tss.interrupt_stack_table[(IST_NMI - 1) as usize] = ist.nmi;
    tss.interrupt_stack_table[(IST_MACHINE_CHECK - 1) as usize] = ist.machine_check;
}

/// Sets the stack the CPU switches to on an interrupt from user mode.
///
/// # Safety
/// Must run on the CPU owning `cpu`, with interrupts disabled, and `top` must
/// be the top of a mapped kernel stack that stays valid while it is in use.
pub unsafe fn set_kernel_stack(cpu: &'static PerCpu, top: u64) {
    // SAFETY: per the contract only this CPU touches its TSS, and interrupts
    // cannot observe a half-written value (the store is one aligned u64).
    unsafe { (*cpu.tss.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}

/// Points the boot CPU's IST slots at new (guarded) stacks.
///
/// # Safety
/// Must run on the boot CPU with interrupts disabled, so no IST stack is in
/// use while the slots change.
pub unsafe fn replace_ist(cpu: &'static PerCpu, ist: &IstStacks) {
    // SAFETY: per the contract, no interrupt can read the TSS concurrently on
    // this CPU, and no other CPU uses this TSS.
    let tss = unsafe { &mut *cpu.tss.get() };
    set_ist(tss, ist);
}
