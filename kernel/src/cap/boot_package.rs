//! `BootPackage`: the files GRUB loaded for init, the manifest
//! (`manifest.bin`) and the service binaries ProcessSpawner can start.

use capos_schema::capos_capnp::boot_package;
use capos_schema::{dispatch_boot_package_in, BootPackageServer, ServerError};

use super::{outcome, CallContext, CallOutcome, CapObject, KernelFrame};

/// The module name of the boot manifest.
pub const MANIFEST: &str = "manifest.bin";

/// The kernel's boot-package object.
pub struct KernelBootPackage;

/// The bytes of boot module `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    let boot = crate::boot::INFO.get()?;
    let m = boot.modules().find(|m| m.name == name)?;
    // SAFETY: boot modules are carved out of usable memory (never handed out
    // by the frame allocator) and mapped in the direct map for good.
    Some(unsafe {
        core::slice::from_raw_parts(
            crate::mem::phys_to_virt(m.start) as *const u8,
            (m.end - m.start) as usize,
        )
    })
}

/// A binary ProcessSpawner may start: any boot module but the manifest.
pub fn binary(name: &str) -> Option<&'static [u8]> {
    if name == MANIFEST {
        return None;
    }
    module(name)
}

struct Server;

impl BootPackageServer for Server {
    fn manifest(
        &mut self,
        _params: boot_package::manifest_params::Reader<'_>,
        mut results: boot_package::manifest_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        results.set_data(module(MANIFEST).unwrap_or(&[]));
        Ok(())
    }

    fn binaries(
        &mut self,
        _params: boot_package::binaries_params::Reader<'_>,
        results: boot_package::binaries_results::Builder<'_>,
    ) -> Result<(), ServerError> {
        let Some(boot) = crate::boot::INFO.get() else { return Ok(()) };
        let names: alloc::vec::Vec<&str> =
            boot.modules().map(|m| m.name).filter(|n| *n != MANIFEST).collect();
        let mut list = results.init_names(names.len() as u32);
        for (i, n) in names.iter().enumerate() {
            list.set(i as u32, n);
        }
        Ok(())
    }
}

impl CapObject for KernelBootPackage {
    fn interface_id(&self) -> u64 {
        capos_schema::boot_package::INTERFACE_ID
    }

    fn interface_name(&self) -> &'static str {
        capos_schema::boot_package::NAME
    }

    fn has_method(&self, method: u16) -> bool {
        capos_schema::boot_package::method::name(method).is_some()
    }

    fn call(
        &self,
        _ctx: &CallContext<'_>,
        method: u16,
        frame: &mut KernelFrame<'_>,
    ) -> CallOutcome {
        outcome(dispatch_boot_package_in(&mut Server, method, frame))
    }
}
