//! The kernel's part of the boot manifest: its `KernelParams` (host name,
//! log level, message of the day). init validates and runs the rest; here a
//! manifest that does not decode only means defaults, with a warning.

use alloc::string::String;

use capos_lib::cmdline::LogLevel;
use capos_schema::capos_capnp::system_manifest;

/// Kernel parameters read from a manifest.
struct Params {
    hostname: String,
    log_level: Option<LogLevel>,
    motd: String,
}

fn read(bytes: &[u8]) -> Result<Params, String> {
    let message = capos_schema::wire::decode(bytes).map_err(|e| alloc::format!("{e}"))?;
    let root =
        message.get_root::<system_manifest::Reader<'_>>().map_err(|e| alloc::format!("{e}"))?;
    let kernel = root.get_kernel().map_err(|e| alloc::format!("kernel: {e}"))?;
    let text = |r: capnp::Result<capnp::text::Reader<'_>>, what: &str| -> Result<String, String> {
        r.and_then(|t| t.to_str().map_err(Into::into))
            .map(String::from)
            .map_err(|e| alloc::format!("{what}: {e}"))
    };
    let hostname = text(kernel.get_hostname(), "hostname")?;
    if let Err(problem) = capos_config::check_hostname(&hostname) {
        return Err(alloc::format!("hostname `{hostname}` is not a valid host name: {problem}"));
    }
    let level = text(kernel.get_log_level(), "logLevel")?;
    let log_level = LogLevel::from_name(&level);
    if log_level.is_none() && !level.is_empty() {
        return Err(alloc::format!("logLevel `{level}` is not error, warn, info, debug or trace"));
    }
    Ok(Params { hostname, log_level, motd: text(kernel.get_motd(), "motd")? })
}

/// Applies the manifest's kernel parameters, if there is a manifest. The
/// command line's `log=` wins over the manifest's level.
pub fn apply(cmdline_sets_log: bool) {
    let Some(bytes) = crate::cap::boot_package::module(crate::cap::boot_package::MANIFEST) else {
        crate::kinfo!("manifest", "no manifest.bin boot module");
        return;
    };
    match read(bytes) {
        Ok(p) => {
            crate::kinfo!("manifest", "host name {}", p.hostname);
            if let (Some(level), false) = (p.log_level, cmdline_sets_log) {
                crate::log::set_level(level);
            }
            if !p.motd.is_empty() {
                crate::console!("{}", p.motd);
            }
            crate::cap::system_info::set_hostname(p.hostname);
        }
        Err(e) => crate::kwarn!("manifest", "kernel parameters unusable ({e}); using defaults"),
    }
}
