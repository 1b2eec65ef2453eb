//! SYSCALL/SYSRET entry.
//!
//! The entry stub swaps to the kernel GS, saves the user stack pointer in the
//! per-CPU record, switches to the running thread's kernel stack and builds a
//! [`TrapFrame`](super::trap::TrapFrame) exactly like an interrupt would
//! (vector [`SYSCALL_VECTOR`]), so a thread blocked in a system call and one
//! preempted by an interrupt look the same to the scheduler. Interrupts stay
//! masked in the kernel (SFMASK clears IF). The return path restores the
//! registers and leaves through SYSRETQ; RCX and R11 come from the frame the
//! entry saved: the address after the SYSCALL instruction. `syscall_dispatch`
//! checks it is below `USER_TOP` (canonical) before returning, and ends the
//! process with a #GP fault otherwise, so SYSRETQ never faults in ring 0.

use core::arch::global_asm;

use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::gdt::SegmentSelector;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::gdt::{KERNEL_CS, KERNEL_DS, USER_CS, USER_DS};

/// Pseudo vector stored in the frame of a system call.
pub const SYSCALL_VECTOR: u64 = 0x100;

global_asm!(
    concat!(
    r#"
    .section .text.syscall_entry, "ax"
    .code64
    .global syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:16
    movq %gs:8, %rsp
    pushq ${user_ds}
    pushq %gs:16
    pushq %r11
    pushq ${user_cs}
    pushq %rcx
    pushq $0
    pushq ${vector}
"#,
    save_gprs!(),
    r#"
    cld
    movq %rsp, %rdi
    call syscall_dispatch
    .global syscall_return
syscall_return:
"#,
    restore_gprs!(),
    r#"
    addq $16, %rsp
    popq %rcx
    addq $8, %rsp
    popq %r11
    popq %rsp
    swapgs
    sysretq
"#
    ),
    user_ds = const USER_DS as u64,
    user_cs = const USER_CS as u64,
    vector = const SYSCALL_VECTOR,
    options(att_syntax)
);

extern "C" {
    fn syscall_entry();
}

/// Enables SYSCALL on this CPU and points it at the entry stub.
pub fn init_cpu() {
    // SAFETY: EFER.SCE only enables the SYSCALL instruction; NXE and LME stay.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    // Clear IF, DF, TF and AC on entry.
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK,
    );
    Star::write(
        SegmentSelector::new(USER_CS >> 3, PrivilegeLevel::Ring3),
        SegmentSelector::new(USER_DS >> 3, PrivilegeLevel::Ring3),
        SegmentSelector::new(KERNEL_CS >> 3, PrivilegeLevel::Ring0),
        SegmentSelector::new(KERNEL_DS >> 3, PrivilegeLevel::Ring0),
    )
    .expect("GDT layout satisfies SYSRET: user data = base + 8, user code = base + 16");
}
