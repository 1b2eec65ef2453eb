//! capOS kernel.
//!
//! Boot order (ARCHITECTURE.md §3): serial -> GDT/TSS/IDT -> boot info ->
//! frames -> paging/direct map -> heap -> guarded boot stack -> ACPI ->
//! APIC + timer -> SMP bring-up -> ready. A later stage hands the CPUs to the
//! scheduler and starts init.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod arch;
mod boot;
mod cap;
mod completion;
mod dev;
mod frame;
mod hooks;
mod log;
mod manifest;
mod mem;
mod panic;
mod proc;
mod qemu;
mod ring;
mod sched;
mod sync;
mod syscall;
mod time;

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering;

use capos_lib::cmdline::{self, KernelOptions, TestAction};
use spin::Once;
use x86_64::instructions::interrupts;
use x86_64::VirtAddr;

use arch::x86_64::{apic, gdt, ioapic, percpu, pic, smp, trap, tsc};
use boot::{BootInfo, VERSION};

static OPTIONS: Once<KernelOptions<'static>> = Once::new();
/// init's ELF image, embedded by `build.rs`.
static INIT_ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/init.elf"));

/// IST stacks for the boot CPU until the guarded ones exist.
#[repr(C, align(16))]
struct EarlyStacks(UnsafeCell<[[u8; 8192]; 3]>);
// SAFETY: only the boot CPU's TSS points into these, and only the CPU writes
// them (as interrupt stacks) until they are replaced.
unsafe impl Sync for EarlyStacks {}
static EARLY_IST: EarlyStacks = EarlyStacks(UnsafeCell::new([[0; 8192]; 3]));

fn early_ist() -> gdt::IstStacks {
    let base = EARLY_IST.0.get() as u64;
    gdt::IstStacks {
        double_fault: VirtAddr::new(base + 8192),
        nmi: VirtAddr::new(base + 2 * 8192),
        machine_check: VirtAddr::new(base + 3 * 8192),
    }
}

/// Entered from `kernel_high_entry` on the boot stack, interrupts off.
#[no_mangle]
extern "C" fn kernel_entry(magic: u32, mbi_phys: u32) -> ! {
    tsc::mark_boot();
    install_hooks();
    dev::serial::init();
    // SAFETY: first and only set-up of the boot CPU's GDT/TSS, on the boot CPU.
    unsafe { gdt::load(&percpu::BSP, &early_ist()) };
    percpu::install(&percpu::BSP);
    trap::load_idt();
    dev::serial::COM1.lock().write_bytes(b"\r\n");
    console!("capOS {} (x86_64) booting", VERSION);

    let info = match boot::multiboot2::parse(magic, mbi_phys) {
        Ok(info) => info,
        Err(e) => panic!("boot: {e}"),
    };
    let info = boot::INFO.call_once(|| info);
    let opts = *OPTIONS.call_once(|| cmdline::parse(info.cmdline, |w| kwarn!("cmdline", "{w}")));
    log::set_level(opts.log_level);
    qemu::set_harness(opts.harness);
    report_boot_info(info);

    if let Err(e) = mem::frames::init(&info.memory_map) {
        panic!("mem: {e}");
    }
    if let Err(e) = mem::paging::init(&info.memory_map) {
        panic!("mem: building kernel page tables: {e}");
    }
    if let Err(e) = mem::heap::init() {
        panic!("mem: heap: {e}");
    }
    console!("mem: {} MiB usable", info.memory_map.usable_bytes() / (1024 * 1024));

    // Leave the .bss boot stack for one with a guard page under it.
    let stack = mem::stacks::alloc(mem::stacks::KERNEL_STACK_PAGES)
        .expect("a fresh machine has memory for the boot CPU's stack");
    kdebug!("mem", "boot CPU stack {:#x} (guard page {:#x})", stack.top().as_u64(), stack.guard());
    // SAFETY: the new stack is mapped and unused; `kernel_main` never returns,
    // so nothing on the old stack is needed again.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {main}",
            "ud2",
            top = in(reg) stack.top().as_u64(),
            main = sym kernel_main,
            options(noreturn)
        )
    }
}

fn report_boot_info(info: &BootInfo) {
    kinfo!("boot", "loader: {}", info.bootloader);
    kinfo!("boot", "command line: \"{}\"", info.cmdline);
    if info.cmdline_invalid {
        kwarn!("boot", "command line is not UTF-8; ignored");
    }
    if info.unknown_tags > 0 {
        kinfo!("boot", "{} boot-information tag(s) of unused types skipped", info.unknown_tags);
    }
    let mut modules = 0;
    for m in info.modules() {
        kinfo!("boot", "module \"{}\" at {:#x}..{:#x}", m.name, m.start, m.end);
        modules += 1;
    }
    if modules == 0 {
        kinfo!("boot", "no boot modules");
    }
    if info.modules_dropped > 0 {
        kwarn!(
            "boot",
            "{} boot module(s) beyond the first {} ignored",
            info.modules_dropped,
            boot::MAX_MODULES
        );
    }
    match &info.framebuffer {
        Some(fb) => {
            kinfo!("boot", "framebuffer {}x{}x{} at {:#x}", fb.width, fb.height, fb.bpp, fb.addr)
        }
        None => kinfo!("boot", "no framebuffer"),
    }
    for r in info.memory_map.regions() {
        kinfo!("mem", "{:#014x}..{:#014x} {}", r.start, r.end, r.kind);
    }
}

/// Connects the lower layers to the upper ones: what interrupt entry and
/// CPU start-up call (see `hooks`) and what the scheduler calls to reap a
/// thread. Runs first, before any interrupt can arrive.
fn install_hooks() {
    hooks::install(hooks::Hooks {
        timer: |from_user| {
            time::on_timer_interrupt();
            sched::tick(from_user);
        },
        wakeup: sched::tick,
        serial_input: cap::terminal::pump,
        device_interrupt: cap::device::interrupt_fired,
        leave: |to_user| {
            if to_user {
                if let Some(p) = proc::current_process() {
                    proc::check_kill(p);
                }
            }
            time::rearm();
        },
        user_fault: proc::thread::user_fault,
        demand_fault: proc::thread::demand_fault,
        cpu_init: sched::init_cpu,
        idle: idle_loop,
    });
    sched::set_reaper(proc::thread::reap);
    proc::set_end_hooks(proc::EndHooks {
        forget_parked: cap::park_space::forget,
        forget_calls: cap::endpoint::forget_process,
        complete_wait: cap::process_handle::complete_wait,
        complete_join: cap::thread_handle::complete_join,
        init_exited,
    });
}

extern "C" fn kernel_main() -> ! {
    let info = boot::INFO.get().expect("boot info recorded before the stack switch");
    let opts = *OPTIONS.get().expect("options parsed before the stack switch");

    let ist = smp::alloc_ist_stacks().expect("memory for the boot CPU's IST stacks");
    // SAFETY: on the boot CPU with interrupts still disabled.
    unsafe { gdt::replace_ist(&percpu::BSP, &ist) };

    arch::x86_64::syscall::init_cpu();
    arch::x86_64::context::enable_fpu();
    let (smep, smap) = arch::x86_64::context::enable_smep_smap();
    kinfo!(
        "cpu",
        "SMEP {}, SMAP {}",
        if smep { "on" } else { "not supported" },
        if smap { "on" } else { "not supported" }
    );
    sched::init_cpu();

    pic::disable();
    let acpi = dev::acpi::init(info.rsdp.as_ref());
    apic::init_bsp(acpi.local_apic);
    percpu::BSP.apic_id.store(apic::id(), Ordering::Relaxed);

    let (measured_tsc, apic_hz) = apic::calibrate();
    let (tsc_hz, source) = match tsc::cpuid_hz() {
        Some(hz) => (hz, "CPUID"),
        None => (measured_tsc, "calibrated against the PIT"),
    };
    tsc::set_hz(tsc_hz);
    kinfo!(
        "time",
        "TSC {}.{:03} MHz ({}), invariant: {}; local APIC timer {} kHz at divide 16",
        tsc_hz / 1_000_000,
        (tsc_hz / 1_000) % 1_000,
        source,
        if tsc::invariant() { "yes" } else { "no" },
        apic_hz / 1_000
    );

    cap::wall_clock::init();
    ioapic::init(&acpi);
    match ioapic::route_isa_irq(&acpi, 4, trap::VEC_COM1, apic::id()) {
        Ok(gsi) => kinfo!("serial", "COM1 receive interrupts on GSI {gsi}"),
        Err(e) => kwarn!("serial", "COM1 input unavailable: {e}"),
    }
    dev::pci::init(&acpi);
    let deadline_mode = apic::choose_timer_mode();
    kinfo!(
        "time",
        "tickless: local APIC timer in {} mode, armed per CPU only when needed",
        if deadline_mode { "TSC-deadline" } else { "one-shot count" }
    );
    apic::init_timer();
    percpu::BSP.online.store(true, Ordering::Release);
    interrupts::enable();

    let online = smp::start_aps(&acpi);
    console!("smp: {} CPU{} online", online, if online == 1 { "" } else { "s" });
    wait_for_ticks();

    if let Some(action) = opts.test {
        run_test_action(action);
    }
    let (heap_used, heap_mapped) = mem::heap::usage();
    kinfo!(
        "mem",
        "{} MiB free in {} frames; heap {} KiB used of {} KiB mapped",
        mem::frames::free_count() * 4096 / (1024 * 1024),
        mem::frames::free_count(),
        heap_used / 1024,
        heap_mapped / 1024
    );
    console!("capOS kernel ready");
    manifest::apply(info.cmdline.split_ascii_whitespace().any(|t| t.starts_with("log=")));
    if opts.test == Some(TestAction::SerialEcho) {
        serial_echo();
    }
    start_init(opts.init.unwrap_or(""));
    idle_loop()
}

/// Starts init with the bootstrap caps.
fn start_init(args: &str) {
    if INIT_ELF.is_empty() {
        kerror!("init", "this kernel was built without an init program");
        qemu::exit_if_harness(qemu::ExitCode::Failure);
        return;
    }
    let grants = cap::grants::bootstrap_grants();
    match proc::spawn::spawn("init", INIT_ELF, grants, &[args], 0, root_account()) {
        Ok(p) => kinfo!("init", "started as pid {}", p.pid),
        Err(e) => {
            kerror!("init", "cannot start init: {e}");
            qemu::exit_if_harness(qemu::ExitCode::Failure);
        }
    }
}

/// Init's account: everything the machine has, less the kernel's reserve of
/// frames and the frames kept for the kernel heap that processes' requests
/// may use (an eighth of memory, at most half the heap window).
fn root_account() -> alloc::sync::Arc<mem::account::Account> {
    let free = mem::frames::free_count() as u64;
    let heap_bytes = (free * mem::PAGE_SIZE / 8).min(mem::HEAP_MAX / 2);
    let frames = free.saturating_sub(mem::frames::reserve() + heap_bytes / mem::PAGE_SIZE);
    let limits = mem::account::Limits {
        frames,
        kernel_bytes: heap_bytes,
        threads: capos_abi::MAX_THREADS,
        caps: capos_abi::resources::MAX_CAP_SLOTS,
        open_calls: capos_abi::resources::MAX_OPEN_CALLS,
    };
    kinfo!(
        "mem",
        "user processes may hold {} frames ({} MiB) and {} KiB of kernel heap; {} frames kept for the kernel",
        frames,
        (frames * mem::PAGE_SIZE) >> 20,
        heap_bytes >> 10,
        mem::frames::reserve()
    );
    mem::account::Account::root(limits)
}

/// Called when init ends: report it, and under the harness end the run
/// (success only for exit code 0).
pub fn init_exited(code: i64) {
    console!("init: exited with code {}", code);
    let (heap_used, heap_mapped) = mem::heap::usage();
    kinfo!(
        "mem",
        "{} process(es) alive, {} frames free; heap {} KiB used of {} KiB mapped",
        proc::all().len(),
        mem::frames::free_count(),
        heap_used / 1024,
        heap_mapped / 1024
    );
    qemu::exit_if_harness(if code == 0 {
        qemu::ExitCode::Success
    } else {
        qemu::ExitCode::Failure
    });
}

/// Waits (up to ten seconds: a busy host may leave a virtual CPU unscheduled
/// for a while) until every online CPU has taken a timer
/// interrupt (each arms one 1 ms ahead when it comes up), which shows its
/// local APIC and interrupt path work. Spins with interrupts on rather
/// than halting, so it looks again whatever wakes it.
fn wait_for_ticks() {
    let deadline = tsc::rdtsc() + 10 * tsc::hz();
    apic::arm(tsc::rdtsc() + tsc::hz() / 1000);
    interrupts::enable();
    loop {
        let all = percpu::all()
            .filter(|c| c.online.load(Ordering::Acquire))
            .all(|c| c.timer_ticks.load(Ordering::Relaxed) >= 1);
        if all {
            let n = percpu::all().filter(|c| c.online.load(Ordering::Acquire)).count();
            kinfo!("time", "timer interrupts arriving on all {} CPU(s), tickless", n);
            return;
        }
        if tsc::rdtsc() > deadline {
            interrupts::disable();
            for c in percpu::all() {
                kwarn!(
                    "time",
                    "cpu{}: {} timer ticks",
                    c.index,
                    c.timer_ticks.load(Ordering::Relaxed)
                );
            }
            panic!("time: timer interrupts missing on some CPU after 10 s");
        }
        core::hint::spin_loop();
    }
}

fn run_test_action(action: TestAction) {
    kwarn!("test", "running test action `{}` from the command line", action.name());
    match action {
        TestAction::PageFault => {
            let addr = 0xffff_f000_dead_0000u64 as *const u64;
            // SAFETY: deliberately unsound: this address is never mapped, and the
            // resulting page fault is what the test checks.
            let v = unsafe { core::ptr::read_volatile(addr) };
            kerror!("test", "read {v:#x} from an unmapped address");
        }
        TestAction::Panic => panic!("test panic requested on the kernel command line"),
        TestAction::StackOverflow => {
            let depth = overflow(0);
            kerror!("test", "recursion returned {depth}");
        }
        TestAction::SerialEcho => {}
    }
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn overflow(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    overflow(depth + 1).wrapping_add(frame[7])
}

/// `test=serial-echo`: echoes what is typed on COM1, reports the first line
/// and ends the run.
fn serial_echo() -> ! {
    let mut line = [0u8; 256];
    let mut len = 0;
    loop {
        let byte = dev::serial::COM1_RX.lock().pop();
        // Polled, not halted: COM1's interrupt may be taken by another CPU
        // (or arrive between the check and a halt), and a tickless CPU
        // would then sleep on with the byte waiting. This loop only runs
        // for the seconds of the serial proof.
        let Some(b) = byte else {
            core::hint::spin_loop();
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                let text = core::str::from_utf8(&line[..len]).unwrap_or("<not UTF-8>");
                dev::serial::COM1.lock().write_bytes(b"\r\n");
                console!("serial: received \"{}\"", text);
                len = 0;
                qemu::exit_if_harness(qemu::ExitCode::Success);
            }
            0x08 | 0x7f if len > 0 => {
                len -= 1;
                dev::serial::COM1.lock().write_bytes(b"\x08 \x08");
            }
            0x08 | 0x7f => {}
            b if len < line.len() => {
                line[len] = b;
                len += 1;
                dev::serial::COM1.lock().write_bytes(&[b]);
            }
            _ => {}
        }
    }
}

/// What every CPU does with nothing to run: sleep until an interrupt, and
/// run whatever the interrupt made runnable.
pub fn idle_loop() -> ! {
    loop {
        interrupts::disable();
        // Work may appear while the idle thread runs (a reaped thread's
        // teardown wakes its waiters), so check again after each switch.
        while sched::queued_here() > 0 || sched::steal() {
            sched::schedule();
        }
        time::rearm();
        arch::x86_64::wait_for_interrupt();
    }
}
