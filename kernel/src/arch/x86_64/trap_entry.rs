//! Interrupt and exception entry stubs.
//!
//! One 16-byte stub per vector pushes a zero error code where the CPU pushes
//! none, then the vector number, and jumps to `trap_common`, which saves the
//! general registers into a [`super::trap::TrapFrame`], switches GS when the
//! trap came from user mode, and calls [`super::trap::trap_dispatch`].

use core::arch::global_asm;

global_asm!(
    concat!(
        r#"
    .section .text.trap_entry, "ax"
    .code64
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) | ((vec >= 10) & (vec <= 14)) | (vec == 17) | (vec == 21) | (vec == 29) | (vec == 30)
    .else
    pushq $0
    .endif
    .byte 0x68
    .long vec
    jmp trap_common
    .set vec, vec + 1
    .endr

trap_common:
"#,
        save_gprs!(),
        r#"
    /* CS is at 15*8 (registers) + 16 (vector, error) + 8 (RIP). */
    testb $3, 144(%rsp)
    jz 1f
    swapgs
1:
    cld
    movq %rsp, %rdi
    call trap_dispatch
    .global trap_return
trap_return:
    testb $3, 144(%rsp)
    jz 2f
    swapgs
2:
"#,
        restore_gprs!(),
        r#"
    addq $16, %rsp
    iretq
"#
    ),
    options(att_syntax)
);

/// Size of each entry stub in `trap_stubs`.
pub const STUB_SIZE: u64 = 16;

extern "C" {
    /// First of 256 entry stubs, [`STUB_SIZE`] bytes apart.
    pub static trap_stubs: u8;
}
