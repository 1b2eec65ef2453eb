//! The IDT and trap dispatch: named exception reports, device interrupts.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS};
use super::trap_entry::{trap_stubs, STUB_SIZE};
use super::{apic, percpu};

/// Local APIC timer vector.
pub const VEC_TIMER: u8 = 0x20;
/// COM1 receive interrupt vector (ISA IRQ 4).
pub const VEC_COM1: u8 = 0x24;
/// Inter-processor "run your queue" interrupt.
pub const VEC_WAKEUP: u8 = 0x40;
/// Inter-processor "flush your TLB" interrupt.
pub const VEC_TLB: u8 = 0x41;
/// First vector handed to device interrupts (MSI-X, MSI).
pub const VEC_DEVICE_BASE: u8 = 0x50;
/// Vectors handed to device interrupts, from [`VEC_DEVICE_BASE`].
pub const DEVICE_VECTORS: usize = 64;

/// Per device vector: allocated, and interrupts counted since the owner
/// last took them.
static DEVICE_USED: [AtomicBool; DEVICE_VECTORS] =
    [const { AtomicBool::new(false) }; DEVICE_VECTORS];
static DEVICE_COUNTS: [AtomicU64; DEVICE_VECTORS] = [const { AtomicU64::new(0) }; DEVICE_VECTORS];

/// A free device vector slot (its count reset), or `None` when all are
/// taken. The vector is `VEC_DEVICE_BASE + slot`.
pub fn alloc_device_vector() -> Option<usize> {
    let slot = DEVICE_USED.iter().position(|u| {
        u.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    })?;
    DEVICE_COUNTS[slot].store(0, Ordering::Release);
    Some(slot)
}

/// Gives device vector `slot` back (its source masked by the caller).
pub fn free_device_vector(slot: usize) {
    if let Some(u) = DEVICE_USED.get(slot) {
        u.store(false, Ordering::Release);
    }
}

/// Takes the interrupts counted on device vector `slot` since the last take.
pub fn take_device_count(slot: usize) -> u64 {
    DEVICE_COUNTS.get(slot).map_or(0, |c| c.swap(0, Ordering::AcqRel))
}

/// Local APIC error vector.
pub const VEC_APIC_ERROR: u8 = 0xFE;
/// Local APIC spurious vector.
pub const VEC_SPURIOUS: u8 = 0xFF;

/// Registers saved by `trap_common`, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, cs) == 144);

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            // Present, DPL 0, 64-bit interrupt gate.
            attributes: 0x8E,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

/// Loads the IDT on this CPU (building it on first use).
pub fn load_idt() {
    let idt = IDT.call_once(|| {
        let base = core::ptr::addr_of!(trap_stubs) as u64;
        let mut gates = [Gate::interrupt(0, 0); 256];
        for (v, gate) in gates.iter_mut().enumerate() {
            let ist = match v {
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            *gate = Gate::interrupt(base + v as u64 * STUB_SIZE, ist);
        }
        Idt(gates)
    });
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt as *const Idt),
    };
    // SAFETY: the IDT is 'static and every gate points at a valid stub.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

/// Name and mnemonic of exception `vector`.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("divide error", "#DE"),
        1 => ("debug", "#DB"),
        2 => ("non-maskable interrupt", "NMI"),
        3 => ("breakpoint", "#BP"),
        4 => ("overflow", "#OF"),
        5 => ("bound range exceeded", "#BR"),
        6 => ("invalid opcode", "#UD"),
        7 => ("device not available", "#NM"),
        8 => ("double fault", "#DF"),
        9 => ("coprocessor segment overrun", "#MF9"),
        10 => ("invalid TSS", "#TS"),
        11 => ("segment not present", "#NP"),
        12 => ("stack-segment fault", "#SS"),
        13 => ("general protection fault", "#GP"),
        14 => ("page fault", "#PF"),
        16 => ("x87 floating-point exception", "#MF"),
        17 => ("alignment check", "#AC"),
        18 => ("machine check", "#MC"),
        19 => ("SIMD floating-point exception", "#XM"),
        20 => ("virtualization exception", "#VE"),
        21 => ("control protection exception", "#CP"),
        28 => ("hypervisor injection exception", "#HV"),
        29 => ("VMM communication exception", "#VC"),
        30 => ("security exception", "#SX"),
        _ => ("reserved exception", "#RES"),
    }
}

/// Decodes page-fault error bits into words.
pub struct PageFaultBits(pub u64);

impl core::fmt::Display for PageFaultBits {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        f.write_str(if e & 1 != 0 { "protection-violation" } else { "not-present" })?;
        f.write_str(if e & 2 != 0 { " write" } else { " read" })?;
        f.write_str(if e & 4 != 0 { " user" } else { " kernel" })?;
        if e & 8 != 0 {
            f.write_str(" reserved-bit")?;
        }
        if e & 16 != 0 {
            f.write_str(" instruction-fetch")?;
        }
        if e & 32 != 0 {
            f.write_str(" protection-key")?;
        }
        if e & 64 != 0 {
            f.write_str(" shadow-stack")?;
        }
        Ok(())
    }
}

/// Entry from `trap_common` for every vector.
#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    let from_user = frame.cs & 3 == 3;
    match vector {
        2 => nmi(frame),
        // A not-present page fault (error bit 0 clear) may be a
        // demand-zero page: mapped, and the instruction runs again.
        14 if from_user
            && frame.error & 1 == 0
            && (crate::hooks::get().demand_fault)(Cr2::read_raw()) => {}
        0..=31 if from_user => user_fault(frame),
        0..=31 => fatal_exception(frame),
        v if v == VEC_TIMER as u64 => {
            percpu::current().timer_ticks.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            apic::eoi();
            (crate::hooks::get().timer)(from_user);
        }
        v if v == VEC_TLB as u64 => {
            super::tlb::answer();
            apic::eoi();
        }
        v if v == VEC_WAKEUP as u64 => {
            apic::eoi();
            (crate::hooks::get().wakeup)(from_user);
        }
        v if v == VEC_COM1 as u64 => {
            crate::dev::serial::handle_com1_interrupt();
            apic::eoi();
            (crate::hooks::get().serial_input)();
        }
        v if (VEC_DEVICE_BASE as u64..VEC_DEVICE_BASE as u64 + DEVICE_VECTORS as u64)
            .contains(&v) =>
        {
            let slot = (v - VEC_DEVICE_BASE as u64) as usize;
            DEVICE_COUNTS[slot].fetch_add(1, Ordering::AcqRel);
            apic::eoi();
            (crate::hooks::get().device_interrupt)(slot);
        }
        v if v == VEC_SPURIOUS as u64 => {}
        v if (super::pic::PIC_VECTOR_BASE as u64..super::pic::PIC_VECTOR_BASE as u64 + 16)
            .contains(&v) => {}
        v if v == VEC_APIC_ERROR as u64 => {
            let esr = apic::read_error();
            crate::kwarn!("apic", "local APIC error, ESR={:#x}", esr);
            apic::eoi();
        }
        v => {
            crate::kwarn!("trap", "unexpected interrupt vector {:#x}", v);
            apic::eoi();
        }
    }
    (crate::hooks::get().leave)(from_user);
}

/// A system call would return (SYSRETQ) to a non-canonical address: on
/// Intel CPUs SYSRETQ would then fault in ring 0 on the user's stack, so the
/// thread's process ends as if the return had raised #GP in user mode.
pub fn non_canonical_return(frame: &mut TrapFrame) -> ! {
    frame.vector = 13;
    user_fault(frame)
}

/// A CPU exception in user mode ends the process, never the kernel.
fn user_fault(frame: &TrapFrame) -> ! {
    let (name, _) = exception_name(frame.vector);
    let addr = if frame.vector == 14 { Cr2::read_raw() } else { 0 };
    (crate::hooks::get().user_fault)(crate::hooks::Fault {
        name,
        vector: frame.vector,
        rip: frame.rip,
        addr,
    })
}

fn nmi(frame: &mut TrapFrame) {
    if crate::panic::stopping() {
        super::halt_forever();
    }
    crate::kwarn!("trap", "NMI at rip={:#x}", frame.rip);
}

/// A kernel-mode exception: report it by name and stop the machine.
fn fatal_exception(frame: &TrapFrame) -> ! {
    let (name, mnemonic) = exception_name(frame.vector);
    let cpu = percpu::cpu_index();
    crate::panic::begin_stop();
    for debug_port in [false, true] {
        let mut w = crate::dev::serial::EmergencyWriter::new(debug_port);
        let _ = write!(w, "\nEXCEPTION: {name} ({mnemonic}) on cpu {cpu}: rip={:#x}", frame.rip);
        if frame.vector == 14 {
            let cr2 = Cr2::read_raw();
            let _ = write!(
                w,
                " cr2={cr2:#x} error={:#x} [{}]",
                frame.error,
                PageFaultBits(frame.error)
            );
        } else {
            let _ = write!(w, " error={:#x}", frame.error);
        }
        let _ = writeln!(w);
        if debug_port {
            let _ = writeln!(
                w,
                "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}\n  r8={:#018x} r9={:#018x} r10={:#018x} r11={:#018x}\n  r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n  cs={:#x} ss={:#x} rflags={:#x}",
                frame.rax, frame.rbx, frame.rcx, frame.rdx, frame.rsi, frame.rdi, frame.rbp,
                frame.rsp, frame.r8, frame.r9, frame.r10, frame.r11, frame.r12, frame.r13,
                frame.r14, frame.r15, frame.cs, frame.ss, frame.rflags
            );
        }
    }
    crate::panic::finish_stop()
}
