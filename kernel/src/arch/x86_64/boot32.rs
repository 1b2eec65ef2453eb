//! Multiboot2 header and the 32-bit entry trampoline.
//!
//! GRUB enters `_start32` in 32-bit protected mode with paging off, EAX holding
//! the Multiboot2 magic and EBX the physical address of the boot information.
//! The trampoline checks for long mode and NX, builds early page tables
//! (identity map and direct map of the first 4 GiB, kernel image at
//! `0xffffffff80000000`), enables long mode and jumps to the higher half,
//! where `kernel_high_entry` zeroes `.bss`, sets up the boot stack and calls
//! [`crate::kernel_entry`]. The early tables are replaced by
//! [`crate::mem::paging`] as soon as the frame allocator is up.
//!
//! Far jumps are hand-encoded: rust-lld rejects the 16-bit selector
//! relocation the assembler would emit for them.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header_start))
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl %eax, boot_magic
    movl %ebx, boot_mbi

    /* Long mode (CPUID 0x80000001 EDX bit 29) and NX (bit 20) are required. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode
    testl $(1 << 20), %edx
    jz no_long_mode

    /* Zero the early page tables (7 pages). */
    movl $boot_pml4, %edi
    xorl %eax, %eax
    movl $(7 * 4096 / 4), %ecx
    rep stosl

    /* PML4[0] and PML4[256] -> identity PDPT; PML4[511] -> high PDPT. */
    movl $boot_pdpt_low, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4
    movl %eax, boot_pml4 + 256 * 8
    movl $boot_pdpt_high, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4 + 511 * 8

    /* Identity PDPT: four page directories cover 0..4 GiB. */
    movl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt_low
    addl $4096, %eax
    movl %eax, boot_pdpt_low + 8
    addl $4096, %eax
    movl %eax, boot_pdpt_low + 16
    addl $4096, %eax
    movl %eax, boot_pdpt_low + 24

    /* High PDPT: 0xffffffff80000000 -> physical 0 (first 1 GiB). */
    movl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt_high + 510 * 8

    /* 2048 2 MiB pages: present, writable, huge. */
    movl $boot_pd, %edi
    xorl %ecx, %ecx
1:
    movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%edi, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, 4(%edi, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    /* PAE on, CR3, EFER.LME|NXE, paging + write protect. */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdtr
    /* ljmp $0x08, $long_mode_low */
    .byte 0xea
    .long long_mode_low
    .short 0x08

no_long_mode:
    /* Tell the operator on COM1, then stop. */
    movl $no_long_mode_msg, %esi
2:
    movb (%esi), %al
    testb %al, %al
    jz 4f
    movw $0x3FD, %dx
3:
    inb %dx, %al
    testb $0x20, %al
    jz 3b
    movb (%esi), %al
    movw $0x3F8, %dx
    outb %al, %dx
    incl %esi
    jmp 2b
4:
    cli
    hlt
    jmp 4b

    .code64
long_mode_low:
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movabsq $kernel_high_entry, %rax
    jmp *%rax

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
boot_gdt_end:
boot_gdtr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .global boot_magic
boot_magic:
    .long 0
    .global boot_mbi
boot_mbi:
    .long 0
no_long_mode_msg:
    .asciz "capOS: this CPU lacks 64-bit long mode or NX; cannot boot\r\n"

    .section .boot.bss, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
boot_pdpt_high:
    .skip 4096
boot_pd:
    .skip 4 * 4096

    .section .text.kernel_high_entry, "ax"
    .code64
    .global kernel_high_entry
kernel_high_entry:
    movl boot_magic, %r12d
    movl boot_mbi, %r13d
    /* Zero .bss (the loader zeroes it too; do not rely on that). */
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    movl %r12d, %edi
    movl %r13d, %esi
    call kernel_entry
5:
    cli
    hlt
    jmp 5b

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
boot_stack_bottom:
    .skip 65536
boot_stack_top:
"#,
    options(att_syntax)
);
