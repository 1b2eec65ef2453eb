//! `SystemInfo`: read-only facts about the running system.

use core::sync::atomic::Ordering;

use capos_schema::capos_capnp::system_info;
use capos_schema::{
    dispatch_system_info_in, SchemaStruct, ServerError, SystemDescription, SystemInfoServer,
};

use super::{outcome, CallContext, CallOutcome, CapObject};

/// The kernel's system-information object.
pub struct KernelSystemInfo;

struct Server;

/// What `SystemInfo.info` reports, also used by the kernel's own logs.
pub fn describe() -> SystemDescription {
    let total = crate::BOOT.get().map(|b| b.memory_map.usable_bytes()).unwrap_or(0);
    let cpus =
        crate::arch::x86_64::percpu::all().filter(|c| c.online.load(Ordering::Acquire)).count();
    SystemDescription {
        os_name: "capOS".into(),
        version: crate::VERSION.into(),
        hostname: crate::manifest::hostname().into(),
        cpu_count: cpus as u32,
        total_memory_bytes: total,
        // Pages cached for reuse (freed kernel stacks) count as free.
        free_memory_bytes: (crate::mem::frames::free_count() as u64
            + crate::mem::stacks::pooled_pages())
            * 4096,
        uptime_ns: crate::time::monotonic_ns(),
        kernel_heap_used_bytes: crate::mem::heap::usage().0 as u64,
    }
}

impl SystemInfoServer for Server {
    fn info(
        &mut self,
        _params: system_info::info_params::Reader<'_>,
        results: system_info::info_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        describe().write_to(results.init_info())?;
        Ok(())
    }
}

impl CapObject for KernelSystemInfo {
    fn interface_id(&self) -> u64 {
        capos_schema::system_info::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::system_info::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::system_info::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut super::KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_system_info_in(&mut Server, method, frame))
    }
}
