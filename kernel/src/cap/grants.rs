//! The caps init starts with: one of every kernel object.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{
    boot_package, console, device, entropy, ipc_manager, log, park_space, process_spawner,
    process_table, scheduling_policy, system_info, terminal, thread_spawner, timer, virtual_memory,
    wall_clock, CapEntry, CapObject,
};
use crate::proc::spawn::Grant;

/// The caps init starts with, by name.
pub fn bootstrap_grants() -> Vec<Grant> {
    let objects: [(&str, Arc<dyn CapObject>); 17] = [
        ("console", Arc::new(console::KernelConsole)),
        ("sysinfo", Arc::new(system_info::KernelSystemInfo)),
        ("clock", Arc::new(wall_clock::KernelWallClock)),
        ("timer", Arc::new(timer::KernelTimer)),
        ("log", Arc::new(log::KernelLogSink)),
        ("log_reader", Arc::new(log::KernelLogReader)),
        ("entropy", Arc::new(entropy::KernelEntropy)),
        ("spawner", Arc::new(process_spawner::KernelSpawner)),
        ("vm", Arc::new(virtual_memory::KernelVirtualMemory)),
        ("ipc", Arc::new(ipc_manager::KernelIpcManager)),
        ("boot", Arc::new(boot_package::KernelBootPackage)),
        ("terminal", Arc::new(terminal::KernelTerminal)),
        ("processes", Arc::new(process_table::KernelProcessTable)),
        ("threads", Arc::new(thread_spawner::KernelThreadSpawner)),
        ("park", Arc::new(park_space::KernelParkSpace)),
        ("sched", Arc::new(scheduling_policy::KernelSchedulingPolicy)),
        ("devices", Arc::new(device::KernelDeviceManager)),
    ];
    objects
        .into_iter()
        .map(|(name, object)| Grant { name: String::from(name), cap: CapEntry::new(object) })
        .collect()
}
