//! The typed manifest: one Rust type per `SystemManifest` struct of
//! `schema/capos.capnp`.
//!
//! A [`Manifest`]'s `Display` is a text rendering for people (what
//! `mkmanifest --print` shows); names are quoted with backticks and escaped.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A boot manifest: kernel parameters and the services init starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The format version; [`crate::MANIFEST_VERSION`].
    pub version: u32,
    /// Kernel parameters.
    pub kernel: KernelParams,
    /// The services, in declaration order (init starts them in
    /// [`crate::start_order`]).
    pub services: Vec<Service>,
    /// Accounts and session profiles, when the system has a login.
    pub auth: Option<AuthConfig>,
}

/// The identity section: seeded accounts, session profiles, and which
/// service hands out the profiles' caps.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// Seeded accounts (none: the first login sets up the operator).
    pub accounts: Vec<Account>,
    /// Session profiles.
    pub profiles: Vec<Profile>,
    /// The service whose grants the profiles name.
    pub broker: String,
    /// The binary a session runs.
    pub shell: String,
}

/// A seeded account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// Its profile.
    pub profile: String,
    /// Password verifier in PHC string form (never a password).
    pub verifier: String,
}

/// A session profile: the caps its sessions get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Grant names of the broker service.
    pub caps: Vec<String>,
}

impl AuthConfig {
    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

impl Manifest {
    /// The first service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// Kernel parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelParams {
    /// The host name `SystemInfo` serves: an RFC 1123 host name.
    pub hostname: String,
    /// One of [`crate::LOG_LEVELS`].
    pub log_level: String,
    /// The message of the day, printed on the console at boot (may be empty).
    pub motd: String,
}

/// A service: a binary init starts with exactly its grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Unique among the manifest's services.
    pub name: String,
    /// A binary in the boot package.
    pub binary: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The caps it is started with, by the name it finds each under.
    pub grants: Vec<Grant>,
    /// The caps it hands to init for other services' grants, by name.
    pub exports: Vec<String>,
    /// What init does when it exits.
    pub restart: RestartPolicy,
    /// Its resource limits; 0 fields (all, by default) take
    /// `capos_abi::resources::SERVICE_DEFAULTS`.
    pub resources: Resources,
}

impl Service {
    /// A service running `binary`, with no arguments, grants or exports, never
    /// restarted.
    pub fn new(name: impl Into<String>, binary: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            binary: binary.into(),
            args: Vec::new(),
            grants: Vec::new(),
            exports: Vec::new(),
            restart: RestartPolicy::default(),
            resources: Resources::default(),
        }
    }
}

/// A service's resource profile (`ResourceProfile` in the schema): what the
/// process may hold. A 0 field means "the default" (of
/// `capos_abi::resources::SERVICE_DEFAULTS`). Frames and kernel bytes count
/// its children's too; threads, caps and open calls are per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// 4 KiB physical frames.
    pub frames: u64,
    /// Bytes of kernel heap.
    pub kernel_bytes: u64,
    /// Threads alive at once.
    pub threads: u32,
    /// Cap-table slots.
    pub caps: u32,
    /// Ring operations submitted and not yet completed.
    pub open_calls: u32,
}

impl Resources {
    /// Whether every field is 0: the service runs with the defaults and
    /// init starts it with a plain `ProcessSpawner.spawn`.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The limits the service runs with: each 0 field replaced by
    /// `capos_abi::resources::SERVICE_DEFAULTS`.
    pub fn effective(&self) -> capos_abi::resources::Limits {
        capos_abi::resources::Limits::from(*self).or(capos_abi::resources::SERVICE_DEFAULTS)
    }

    /// What init starts the service with: `None` for the defaults (a plain
    /// `ProcessSpawner.spawn`), else the [`Resources::effective`] limits
    /// for `ProcessSpawner.spawnLimited`.
    pub fn spawn_limits(&self) -> Option<capos_abi::resources::Limits> {
        (!self.is_default()).then(|| self.effective())
    }

    /// The fields by their schema name, in schema order, 0 included.
    pub fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("frames", self.frames),
            ("kernelBytes", self.kernel_bytes),
            ("threads", u64::from(self.threads)),
            ("caps", u64::from(self.caps)),
            ("openCalls", u64::from(self.open_calls)),
        ]
    }
}

impl From<Resources> for capos_abi::resources::Limits {
    fn from(r: Resources) -> Self {
        Self {
            frames: r.frames,
            kernel_bytes: r.kernel_bytes,
            threads: r.threads,
            caps: r.caps,
            open_calls: r.open_calls,
        }
    }
}

impl From<capos_abi::resources::Limits> for Resources {
    fn from(l: capos_abi::resources::Limits) -> Self {
        Self {
            frames: l.frames,
            kernel_bytes: l.kernel_bytes,
            threads: l.threads,
            caps: l.caps,
            open_calls: l.open_calls,
        }
    }
}

/// Every field of a set of limits, as init logs them:
/// `frames 8192, kernelBytes 4194304, threads 4, caps 16, openCalls 256`.
pub struct LimitsText(pub capos_abi::resources::Limits);

impl fmt::Display for LimitsText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.0;
        write!(
            f,
            "frames {}, kernelBytes {}, threads {}, caps {}, openCalls {}",
            l.frames, l.kernel_bytes, l.threads, l.caps, l.open_calls
        )
    }
}

impl fmt::Display for Resources {
    /// The fields that are set, `frames 4096, threads 4`; `defaults` when
    /// none is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, value) in self.fields().into_iter().filter(|(_, v)| *v != 0) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name} {value}")?;
        }
        if first {
            f.write_str("defaults")?;
        }
        Ok(())
    }
}

/// One cap a service is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The name in the service's CapSet.
    pub name: String,
    /// Where the cap comes from.
    pub source: GrantSource,
}

impl Grant {
    /// A grant of the kernel cap source `source` under `name`.
    pub fn kernel(name: impl Into<String>, source: impl Into<String>) -> Self {
        Self { name: name.into(), source: GrantSource::Kernel(source.into()) }
    }

    /// A grant of `service`'s export `export` under `name`.
    pub fn export(
        name: impl Into<String>,
        service: impl Into<String>,
        export: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            source: GrantSource::Service(ExportRef {
                service: service.into(),
                export: export.into(),
            }),
        }
    }
}

/// Where a granted cap comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantSource {
    /// A bootstrap cap init holds: one of [`crate::KERNEL_CAP_SOURCES`].
    Kernel(String),
    /// An export of another service.
    Service(ExportRef),
}

/// An export of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRef {
    /// The service that exports it.
    pub service: String,
    /// The export's name in that service's `exports`.
    pub export: String,
}

/// What init does when a service exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartPolicy {
    /// When to restart.
    pub mode: RestartMode,
    /// With [`RestartMode::OnFailure`]: restarts before init gives up, at most
    /// [`crate::MAX_RESTARTS`].
    pub max_restarts: u32,
    /// With [`RestartMode::OnFailure`]: delay before the first restart in
    /// milliseconds, doubling each time; at most [`crate::MAX_BACKOFF_MS`].
    pub backoff_ms: u32,
}

/// When init restarts a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RestartMode {
    /// Never: init logs the exit and leaves the service stopped.
    #[default]
    Never,
    /// When it exits with a non-zero code or is killed.
    OnFailure,
}

impl RestartMode {
    /// The mode's name in the schema and in JSON: `never` or `onFailure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::OnFailure => "onFailure",
        }
    }
}

impl fmt::Display for RestartMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes a name between backticks, escaped so that no control character
/// reaches a terminal.
pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0.escape_debug())
    }
}

impl fmt::Display for Manifest {
    /// One line for the version, one for the kernel parameters, then per
    /// service a line and one indented line for its resources (the fields
    /// set, when any is), its argument list, and each grant and export.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "manifest version {}", self.version)?;
        writeln!(
            f,
            "kernel: hostname {}, logLevel {}, motd \"{}\"",
            Quoted(&self.kernel.hostname),
            Quoted(&self.kernel.log_level),
            self.kernel.motd.escape_debug()
        )?;
        if self.services.is_empty() {
            writeln!(f, "no services")?;
        }
        for service in &self.services {
            write!(
                f,
                "service {}: binary {}, restart ",
                Quoted(&service.name),
                Quoted(&service.binary)
            )?;
            let restart = service.restart;
            match restart.mode {
                RestartMode::Never => writeln!(f, "never")?,
                RestartMode::OnFailure => writeln!(
                    f,
                    "onFailure (at most {} times, first after {} ms)",
                    restart.max_restarts, restart.backoff_ms
                )?,
            }
            if !service.resources.is_default() {
                writeln!(f, "  resources: {}", service.resources)?;
            }
            if !service.args.is_empty() {
                write!(f, "  args:")?;
                for arg in &service.args {
                    write!(f, " \"{}\"", arg.escape_debug())?;
                }
                writeln!(f)?;
            }
            for grant in &service.grants {
                match &grant.source {
                    GrantSource::Kernel(source) => writeln!(
                        f,
                        "  grant {} from kernel {}",
                        Quoted(&grant.name),
                        Quoted(source)
                    )?,
                    GrantSource::Service(from) => writeln!(
                        f,
                        "  grant {} from service {} export {}",
                        Quoted(&grant.name),
                        Quoted(&from.service),
                        Quoted(&from.export)
                    )?,
                }
            }
            for export in &service.exports {
                writeln!(f, "  export {}", Quoted(export))?;
            }
        }
        if let Some(auth) = &self.auth {
            writeln!(f, "auth: broker {}, shell {}", Quoted(&auth.broker), Quoted(&auth.shell))?;
            for profile in &auth.profiles {
                write!(f, "  profile {}:", Quoted(&profile.name))?;
                for cap in &profile.caps {
                    write!(f, " {}", Quoted(cap))?;
                }
                writeln!(f)?;
            }
            for account in &auth.accounts {
                // The verifier is not secret, but it is of no use to a reader.
                writeln!(
                    f,
                    "  account {} (profile {}, verifier set)",
                    Quoted(&account.name),
                    Quoted(&account.profile)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn text_rendering_names_everything() {
        let mut provider = Service::new("provider", "greeter-bin");
        provider.exports = vec!["greeter".into()];
        provider.restart =
            RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 3, backoff_ms: 250 };
        provider.resources = Resources { frames: 4096, threads: 4, ..Resources::default() };
        let mut user = Service::new("user", "user");
        user.args = vec!["--loud".into(), "tab\there".into()];
        user.grants =
            vec![Grant::kernel("console", "console"), Grant::export("hi", "provider", "greeter")];
        let manifest = Manifest {
            version: 1,
            kernel: KernelParams {
                hostname: "capos".into(),
                log_level: "info".into(),
                motd: "Welcome \"home\"".into(),
            },
            services: vec![provider, user],
            auth: None,
        };
        assert_eq!(
            manifest.to_string(),
            "manifest version 1\n\
             kernel: hostname `capos`, logLevel `info`, motd \"Welcome \\\"home\\\"\"\n\
             service `provider`: binary `greeter-bin`, restart onFailure (at most 3 times, first after 250 ms)\n\
             \x20 resources: frames 4096, threads 4\n\
             \x20 export `greeter`\n\
             service `user`: binary `user`, restart never\n\
             \x20 args: \"--loud\" \"tab\\there\"\n\
             \x20 grant `console` from kernel `console`\n\
             \x20 grant `hi` from service `provider` export `greeter`\n"
        );
        assert_eq!(manifest.service("user").map(|s| s.binary.as_str()), Some("user"));
        assert!(manifest.service("nobody").is_none());
    }

    #[test]
    fn resources_fill_in_the_service_defaults() {
        use capos_abi::resources::SERVICE_DEFAULTS;
        assert!(Resources::default().is_default());
        assert_eq!(Resources::default().to_string(), "defaults");
        assert_eq!(Resources::default().effective(), SERVICE_DEFAULTS);
        let r = Resources { kernel_bytes: 1 << 20, caps: 8, ..Resources::default() };
        assert!(!r.is_default());
        assert_eq!(r.to_string(), "kernelBytes 1048576, caps 8");
        let e = r.effective();
        assert_eq!((e.kernel_bytes, e.caps), (1 << 20, 8));
        assert_eq!((e.frames, e.threads), (SERVICE_DEFAULTS.frames, SERVICE_DEFAULTS.threads));
        assert_eq!(e.open_calls, SERVICE_DEFAULTS.open_calls);
        assert_eq!(Resources::from(capos_abi::resources::Limits::from(r)), r);
    }

    #[test]
    fn init_spawns_with_limits_only_when_some_are_set() {
        assert_eq!(Resources::default().spawn_limits(), None);
        let r = Resources { frames: 8192, threads: 4, ..Resources::default() };
        let limits = r.spawn_limits().unwrap();
        assert_eq!(
            LimitsText(limits).to_string(),
            "frames 8192, kernelBytes 16777216, threads 4, caps 64, openCalls 4096"
        );
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(Quoted("a\u{1b}[2Jb").to_string(), "`a\\u{1b}[2Jb`");
    }
}
