//! `SystemInfo`: read-only facts about the running system.

use alloc::string::String;
use core::sync::atomic::Ordering;

use capos_schema::capos_capnp::system_info;
use capos_schema::{
    dispatch_system_info_in, SchemaStruct, ServerError, SystemDescription, SystemInfoServer,
};

use spin::Once;

use super::{outcome, CallContext, CallOutcome, CapObject, KernelFrame};

/// Host name when the manifest gives none.
pub const DEFAULT_HOSTNAME: &str = "capos";

static HOSTNAME: Once<String> = Once::new();

/// The system's host name.
pub fn hostname() -> &'static str {
    HOSTNAME.get().map(String::as_str).unwrap_or(DEFAULT_HOSTNAME)
}

/// Records the host name (the boot manifest's; once).
pub fn set_hostname(name: String) {
    HOSTNAME.call_once(|| name);
}

/// The kernel's system-information object.
pub struct KernelSystemInfo;

struct Server;

/// What `SystemInfo.info` reports, also used by the kernel's own logs.
pub fn describe() -> SystemDescription {
    let total = crate::boot::INFO.get().map(|b| b.memory_map.usable_bytes()).unwrap_or(0);
    let cpus =
        crate::arch::x86_64::percpu::all().filter(|c| c.online.load(Ordering::Acquire)).count();
    SystemDescription {
        os_name: "capOS".into(),
        version: crate::boot::VERSION.into(),
        hostname: hostname().into(),
        cpu_count: cpus as u32,
        total_memory_bytes: total,
        // Pages cached for reuse (freed kernel stacks) count as free.
        free_memory_bytes: (crate::mem::frames::free_count() as u64
            + crate::mem::stacks::pooled_pages())
            * 4096,
        uptime_ns: crate::time::monotonic_ns(),
        kernel_heap_used_bytes: crate::mem::heap::usage().0 as u64,
        kernel_heap_allocations: crate::mem::heap::allocations(),
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
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_system_info_in(&mut Server, method, frame))
    }
}
