//! Application-processor start-up (INIT-SIPI-SIPI through a real-mode
//! trampoline).
//!
//! The trampoline is position independent: it is copied to a free page
//! below 1 MiB, and the boot CPU patches in the absolute addresses that depend
//! on where it landed (protected-mode entry, GDT base, long-mode entry), the
//! kernel page-table root, and per-AP values (stack, entry, argument). The AP
//! derives the page address from CS in real mode and keeps it in EBX.

use core::arch::global_asm;
use core::sync::atomic::Ordering;

use alloc::boxed::Box;
use x86_64::registers::control::{Cr4, Cr4Flags};

use super::gdt::{self, IstStacks};
use super::percpu::{self, PerCpu, MAX_CPUS};
use super::{apic, trap, tsc};
use crate::dev::acpi::AcpiInfo;
use crate::mem::{self, frames, paging, stacks};

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movzwl %ax, %ebx
    shll $4, %ebx
    lgdtl (ap_gdtr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    /* ljmpl $0x08, $(page + ap_pm32) */
    .byte 0x66, 0xea
    .global ap_pm_target
ap_pm_target:
    .long 0
    .short 0x08

    .code32
    .global ap_pm32
ap_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl (ap_cr3 - ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16)), %eax
    movl %eax, %cr0
    ljmpl *(ap_farptr64 - ap_trampoline_start)(%ebx)

    .code64
    .global ap_lm64
ap_lm64:
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq (ap_stack - ap_trampoline_start)(%rbx), %rsp
    movq (ap_arg - ap_trampoline_start)(%rbx), %rdi
    movq (ap_entry_ptr - ap_trampoline_start)(%rbx), %rax
    xorl %ebp, %ebp
    jmp *%rax

    .balign 16
    .global ap_gdt
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_gdt_end:
    .balign 4
    .short 0
ap_gdtr:
    .short ap_gdt_end - ap_gdt - 1
    .global ap_gdtr_base
ap_gdtr_base:
    .long 0
    .balign 4
    .global ap_farptr64
ap_farptr64:
    .long 0
    .short 0x18
    .balign 4
    .global ap_cr3
ap_cr3:
    .long 0
    .balign 8
    .global ap_stack
ap_stack:
    .quad 0
    .global ap_entry_ptr
ap_entry_ptr:
    .quad 0
    .global ap_arg
ap_arg:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
"#,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_pm_target: u8;
    static ap_gdtr_base: u8;
    static ap_farptr64: u8;
    static ap_cr3: u8;
    static ap_stack: u8;
    static ap_entry_ptr: u8;
    static ap_arg: u8;
    static ap_pm32: u8;
    static ap_lm64: u8;
    static ap_gdt: u8;
}

/// What the boot CPU hands one AP; read before the AP reports online.
struct ApBoot {
    cpu: &'static PerCpu,
    ist: IstStacks,
}

fn offset(sym: &u8) -> usize {
    let start = core::ptr::addr_of!(ap_trampoline_start) as usize;
    sym as *const u8 as usize - start
}

/// Allocates the stacks an AP (or the boot CPU) needs for its IST slots.
pub fn alloc_ist_stacks() -> Option<IstStacks> {
    Some(IstStacks {
        double_fault: stacks::alloc(stacks::IST_STACK_PAGES)?.top(),
        nmi: stacks::alloc(stacks::IST_STACK_PAGES)?.top(),
        machine_check: stacks::alloc(stacks::IST_STACK_PAGES)?.top(),
    })
}

/// Starts every enabled CPU in `info` other than the caller. Returns how many
/// CPUs are online afterwards (including the boot CPU).
pub fn start_aps(info: &AcpiInfo) -> u32 {
    let bsp_apic = apic::id();
    let wanted: usize = info.cpus.iter().filter(|c| c.enabled && c.apic_id != bsp_apic).count();
    if wanted == 0 {
        return 1;
    }
    let Some(page) = frames::trampoline_page() else {
        crate::kwarn!("smp", "no free page below 1 MiB for the AP trampoline; running on one CPU");
        return 1;
    };
    let (start, end) =
        (core::ptr::addr_of!(ap_trampoline_start), core::ptr::addr_of!(ap_trampoline_end));
    let len = end as usize - start as usize;
    let dst = mem::phys_to_virt(page) as *mut u8;
    // SAFETY: `page` is a frame we own, mapped in the direct map; the source is
    // the trampoline's bytes in .rodata; len < 4096 (checked by the assert).
    unsafe {
        assert!(len <= 4096, "AP trampoline fits in one page");
        core::ptr::copy_nonoverlapping(start, dst, len);
    }
    let patch32 = |sym: &u8, value: u32| {
        // SAFETY: the offset lies inside the copied trampoline page.
        unsafe { core::ptr::write_unaligned(dst.add(offset(sym)) as *mut u32, value) }
    };
    let patch64 = |sym: &u8, value: u64| {
        // SAFETY: the offset lies inside the copied trampoline page.
        unsafe { core::ptr::write_unaligned(dst.add(offset(sym)) as *mut u64, value) }
    };
    let page32 = page as u32;
    let cr3 = paging::kernel_root();
    assert!(cr3 < 1 << 32, "kernel page-table root below 4 GiB (allocated first, from low memory)");
    // SAFETY: taking addresses of linker symbols.
    unsafe {
        patch32(&ap_pm_target, page32 + offset(&ap_pm32) as u32);
        patch32(&ap_gdtr_base, page32 + offset(&ap_gdt) as u32);
        patch32(&ap_farptr64, page32 + offset(&ap_lm64) as u32);
        patch32(&ap_cr3, cr3 as u32);
        patch64(&ap_entry_ptr, ap_entry as *const () as u64);
    }
    if let Err(e) = paging::map_identity_page(page) {
        crate::kwarn!("smp", "cannot map the AP trampoline: {e}; running on one CPU");
        return 1;
    }

    let mut next_index = 1u32;
    for cpu in info.cpus.iter().filter(|c| c.enabled && c.apic_id != bsp_apic) {
        if next_index as usize >= MAX_CPUS {
            crate::kwarn!("smp", "more than {MAX_CPUS} CPUs; the rest stay parked");
            break;
        }
        let (Some(stack), Some(ist)) =
            (stacks::alloc(stacks::KERNEL_STACK_PAGES), alloc_ist_stacks())
        else {
            crate::kwarn!("smp", "out of memory for CPU stacks; stopping AP start-up");
            break;
        };
        let percpu: &'static PerCpu = Box::leak(Box::new(PerCpu::new(next_index)));
        percpu.apic_id.store(cpu.apic_id, Ordering::Relaxed);
        let boot = ApBoot { cpu: percpu, ist };
        // SAFETY: taking addresses of linker symbols.
        unsafe {
            patch64(&ap_stack, stack.top().as_u64());
            patch64(&ap_arg, &boot as *const ApBoot as u64);
        }
        core::sync::atomic::fence(Ordering::SeqCst);

        // INIT (assert), then two STARTUPs with the trampoline's page number.
        apic::send_ipi(cpu.apic_id, 0x4500);
        tsc::delay_us(10_000);
        let sipi = 0x4600 | (page >> 12) as u32;
        apic::send_ipi(cpu.apic_id, sipi);
        if !wait_online(percpu, 1_000) {
            apic::send_ipi(cpu.apic_id, sipi);
        }
        if wait_online(percpu, 200_000) {
            crate::kinfo!(
                "smp",
                "cpu{} (APIC id {}, ACPI uid {}) online",
                next_index,
                cpu.apic_id,
                cpu.uid
            );
            next_index += 1;
        } else {
            crate::kwarn!("smp", "CPU with APIC id {} did not start", cpu.apic_id);
            // Its record and stacks stay allocated: the CPU may still wake up
            // and use them.
        }
    }
    paging::unmap_identity_page(page);
    next_index
}

fn wait_online(cpu: &PerCpu, us: u64) -> bool {
    let deadline = tsc::rdtsc() + us * (tsc::hz() / 1_000_000).max(1);
    while tsc::rdtsc() < deadline {
        if cpu.online.load(Ordering::Acquire) {
            return true;
        }
        core::hint::spin_loop();
    }
    cpu.online.load(Ordering::Acquire)
}

/// First Rust code an AP runs, on its own guarded stack.
extern "C" fn ap_entry(boot: &ApBoot) -> ! {
    let cpu = boot.cpu;
    let ist = boot.ist;
    // SAFETY: enabling global pages, as on the boot CPU; the kernel page
    // tables mark only kernel-half mappings global.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL)) };
    // SAFETY: this AP owns `cpu` and nothing used its GDT/TSS before.
    unsafe { gdt::load(cpu, &ist) };
    percpu::install(cpu);
    trap::load_idt();
    super::syscall::init_cpu();
    super::context::enable_fpu();
    super::context::enable_smep_smap();
    (crate::hooks::get().cpu_init)();
    apic::init_local();
    cpu.apic_id.store(apic::id(), Ordering::Relaxed);
    apic::init_timer();
    // One interrupt 1 ms from now shows the boot CPU this CPU's timer works.
    apic::arm(tsc::rdtsc() + tsc::hz() / 1000);
    // `boot` is dead after this store: the boot CPU reuses its storage.
    cpu.online.store(true, Ordering::Release);
    crate::kdebug!("smp", "cpu{} entering idle loop", cpu.index);
    (crate::hooks::get().idle)()
}
