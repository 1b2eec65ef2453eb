//! The boot manifest as init sees it: decoded from `manifest.bin` and
//! checked again before anything starts (the build checked it too; a
//! manifest damaged after the build must fail closed, with a named error).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use capos_rt::schema::capos_capnp::{grant_spec, system_manifest, RestartMode};

/// Where a granted cap comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A bootstrap cap init holds.
    Kernel(String),
    /// An export of another service.
    Service {
        /// The exporting service.
        service: String,
        /// The export's name.
        export: String,
    },
}

/// One grant: a name in the service's CapSet and its source.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Name in the service's CapSet.
    pub name: String,
    /// Where the cap comes from.
    pub source: Source,
}

/// A restart policy.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// Restart after a failure.
    pub on_failure: bool,
    /// Most restarts.
    pub max: u32,
    /// First delay, doubling each time.
    pub backoff_ms: u32,
}

/// One service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Unique name.
    pub name: String,
    /// Binary in the boot package.
    pub binary: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Caps it gets.
    pub grants: Vec<Grant>,
    /// Caps it hands to init for others.
    pub exports: Vec<String>,
    /// What to do when it fails.
    pub restart: Restart,
}

/// The decoded manifest.
#[derive(Debug)]
pub struct Manifest {
    /// Services in declaration order.
    pub services: Vec<Service>,
}

fn text(r: capnp::Result<capnp::text::Reader<'_>>, what: &str) -> Result<String, String> {
    r.and_then(|t| t.to_str().map_err(Into::into))
        .map(String::from)
        .map_err(|e| format!("{what}: {e}"))
}

impl Manifest {
    /// Decodes `manifest.bin`.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let message =
            capos_rt::schema::wire::decode(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        let root = message
            .get_root::<system_manifest::Reader<'_>>()
            .map_err(|e| format!("not a manifest: {e}"))?;
        if root.get_version() != 1 {
            return Err(format!("manifest version {} (expected 1)", root.get_version()));
        }
        let mut services = Vec::new();
        for (i, s) in root.get_services().map_err(|e| format!("services: {e}"))?.iter().enumerate()
        {
            let name = text(s.get_name(), &format!("service #{i} name"))?;
            let at = |field: &str| format!("service `{name}` {field}");
            let binary = text(s.get_binary(), &at("binary"))?;
            let mut args = Vec::new();
            for a in s.get_args().map_err(|e| format!("{}: {e}", at("args")))?.iter() {
                args.push(text(a, &at("args"))?);
            }
            let mut grants = Vec::new();
            for g in s.get_grants().map_err(|e| format!("{}: {e}", at("grants")))?.iter() {
                let gname = text(g.get_name(), &at("grant name"))?;
                let source = match g.get_source().which() {
                    Ok(grant_spec::source::Kernel(k)) => {
                        Source::Kernel(text(k, &at("grant source"))?)
                    }
                    Ok(grant_spec::source::Service(r)) => {
                        let r = r.map_err(|e| format!("{}: {e}", at("grant source")))?;
                        Source::Service {
                            service: text(r.get_service(), &at("grant source service"))?,
                            export: text(r.get_export(), &at("grant source export"))?,
                        }
                    }
                    Err(e) => return Err(format!("{}: {e}", at("grant source"))),
                };
                grants.push(Grant { name: gname, source });
            }
            let mut exports = Vec::new();
            for e in s.get_exports().map_err(|e| format!("{}: {e}", at("exports")))?.iter() {
                exports.push(text(e, &at("exports"))?);
            }
            let r = s.get_restart().map_err(|e| format!("{}: {e}", at("restart")))?;
            let mode = r.get_mode().map_err(|e| format!("{}: {e}", at("restart mode")))?;
            let restart = Restart {
                on_failure: mode == RestartMode::OnFailure,
                max: r.get_max_restarts(),
                backoff_ms: r.get_backoff_ms(),
            };
            services.push(Service { name, binary, args, grants, exports, restart });
        }
        Ok(Manifest { services })
    }

    /// Checks everything init relies on; the first problem, named.
    pub fn validate(
        &self,
        binaries: &[String],
        kernel_cap: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let mut names = BTreeMap::new();
        for (i, s) in self.services.iter().enumerate() {
            if s.name.is_empty() {
                return Err(format!("service #{i} has an empty name"));
            }
            if names.insert(s.name.as_str(), i).is_some() {
                return Err(format!("service `{}` is declared twice", s.name));
            }
            if !binaries.contains(&s.binary) {
                return Err(format!(
                    "service `{}` runs binary `{}`, which is not in the boot package",
                    s.name, s.binary
                ));
            }
            if s.restart.max > 100 || s.restart.backoff_ms > 60_000 {
                return Err(format!("service `{}` restart limits are out of range", s.name));
            }
            for (j, g) in s.grants.iter().enumerate() {
                if g.name.is_empty() || s.grants[..j].iter().any(|o| o.name == g.name) {
                    return Err(format!(
                        "service `{}` grant `{}` is empty or repeated",
                        s.name, g.name
                    ));
                }
            }
            for (j, e) in s.exports.iter().enumerate() {
                if e.is_empty() || s.exports[..j].contains(e) {
                    return Err(format!("service `{}` export `{e}` is empty or repeated", s.name));
                }
            }
        }
        for s in &self.services {
            for g in &s.grants {
                match &g.source {
                    Source::Kernel(k) if !kernel_cap(k) => {
                        return Err(format!("service `{}` grants `{}` from kernel cap `{k}`, which init does not hold", s.name, g.name));
                    }
                    Source::Service { service, export } => {
                        let Some(&p) = names.get(service.as_str()) else {
                            return Err(format!(
                                "service `{}` grants `{}` from unknown service `{service}`",
                                s.name, g.name
                            ));
                        };
                        if !self.services[p].exports.contains(export) {
                            return Err(format!("service `{}` grants `{}` from `{service}`, which exports no `{export}`", s.name, g.name));
                        }
                    }
                    Source::Kernel(_) => {}
                }
            }
        }
        self.start_order().map(|_| ())
    }

    /// Indices in an order where every service starts after the services it
    /// takes exports from (declaration order otherwise).
    pub fn start_order(&self) -> Result<Vec<usize>, String> {
        let index = |name: &str| self.services.iter().position(|s| s.name == name);
        let deps: Vec<Vec<usize>> = self
            .services
            .iter()
            .map(|s| {
                s.grants
                    .iter()
                    .filter_map(|g| match &g.source {
                        Source::Service { service, .. } => index(service),
                        Source::Kernel(_) => None,
                    })
                    .collect()
            })
            .collect();
        let mut order = Vec::new();
        let mut placed = alloc::vec![false; self.services.len()];
        while order.len() < self.services.len() {
            let next = (0..self.services.len())
                .find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
            match next {
                Some(i) => {
                    placed[i] = true;
                    order.push(i);
                }
                None => {
                    let stuck: Vec<String> = (0..self.services.len())
                        .filter(|&i| !placed[i])
                        .map(|i| self.services[i].name.to_string())
                        .collect();
                    return Err(format!("dependency cycle among services {}", stuck.join(", ")));
                }
            }
        }
        Ok(order)
    }
}
