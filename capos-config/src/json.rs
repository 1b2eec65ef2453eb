//! The manifest as JSON: what `cue export` of `system.cue` prints
//! (`tools/cue/export.js`) and `tools/mkmanifest --json` reads.
//!
//! ```json
//! {
//!   "version": 1,
//!   "kernel": { "hostname": "capos", "logLevel": "info", "motd": "Welcome to capOS" },
//!   "services": {
//!     "provider": {
//!       "name": "provider",
//!       "binary": "greeter",
//!       "args": ["--quiet"],
//!       "grants": { "console": { "kernel": "console" } },
//!       "exports": ["greeter"],
//!       "restart": { "mode": "onFailure", "maxRestarts": 5, "backoffMs": 100 },
//!       "resources": { "frames": 4096, "kernelBytes": 16777216, "threads": 4 }
//!     },
//!     "hello": {
//!       "binary": "hello",
//!       "grants": { "greeter": { "service": "provider", "export": "greeter" } }
//!     }
//!   }
//! }
//! ```
//!
//! - `version` (number), `kernel.hostname` and `kernel.logLevel` (strings)
//!   are required; `kernel.motd` defaults to `""`.
//! - `services` is an object keyed by service name (what CUE prints; its order
//!   is the declaration order [`crate::start_order`] breaks ties by), or a
//!   list of services each with a `name`. In the object
//!   form `name` may be left out; when given it must equal the key.
//! - A service needs `binary`; `args` and `exports` (lists of strings)
//!   default to `[]`, `grants` to none.
//! - `grants` is an object keyed by grant name (the name in the service's
//!   CapSet), or a list of grants each with a `name`. A grant has either
//!   `kernel` (a kernel cap source) or both `service` and `export`.
//! - `restart` defaults to `{"mode": "never", "maxRestarts": 0,
//!   "backoffMs": 0}`; each of its fields may be left out (`mode` is `never`
//!   or `onFailure`, the numbers default to 0).
//! - `resources` defaults to all 0 (the service defaults); each of its
//!   fields (`frames`, `kernelBytes`, `threads`, `caps`, `openCalls`) may be
//!   left out and is then 0.
//! - `auth` (optional): `broker` (a service name) and `shell` (a binary)
//!   are required; `accounts` is keyed by account name, each with
//!   `profile` and `verifier`; `profiles` is keyed by profile name, each
//!   with `caps` (grant names of the broker service).
//! - Numbers are unsigned 32-bit integers, but for `resources.frames` and
//!   `resources.kernelBytes` (64-bit). An unknown field anywhere is an
//!   error.
//!
//! [`from_json`] only reads the shape; [`crate::validate()`] checks the rules
//! (known binaries and sources, limits, names, cycles).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::model::{
    Account, AuthConfig, ExportRef, Grant, GrantSource, KernelParams, Manifest, Profile, Quoted,
    Resources, RestartMode, RestartPolicy, Service,
};
use crate::ConfigError;

/// Reads a manifest from the JSON documented in this module.
pub fn from_json(json: &str) -> Result<Manifest, ConfigError> {
    let raw: ManifestJson =
        serde_json::from_str(json).map_err(|error| ConfigError::Json(format!("{error}")))?;
    let mut services = Vec::new();
    for (index, (key, service)) in raw.services.0.into_iter().enumerate() {
        services.push(service.into_model("services", index, key)?);
    }
    Ok(Manifest {
        version: raw.version,
        kernel: KernelParams {
            hostname: raw.kernel.hostname,
            log_level: raw.kernel.log_level,
            motd: raw.kernel.motd,
        },
        services,
        auth: raw.auth.map(AuthJson::into_model).transpose()?,
    })
}

/// Items given either as a list or as an object keyed by name (kept in
/// document order, duplicate keys included, for validation to report).
struct Named<T>(Vec<(Option<String>, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
            type Value = Named<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by name or a list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Named<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push((None, item));
                }
                Ok(Named(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut items = Vec::new();
                while let Some((key, item)) = map.next_entry::<String, T>()? {
                    items.push((Some(key), item));
                }
                Ok(Named(items))
            }
        }

        deserializer.deserialize_any(NamedVisitor(PhantomData))
    }
}

/// The name of an item of a [`Named`], and the path to it for messages.
fn item_name(
    parent: &str,
    index: usize,
    key: Option<String>,
    name: Option<String>,
) -> Result<(String, String), ConfigError> {
    match (key, name) {
        (Some(key), None) => Ok((format!("{parent}.{key}"), key)),
        (None, Some(name)) => Ok((format!("{parent}.{name}"), name)),
        (Some(key), Some(name)) if key == name => Ok((format!("{parent}.{key}"), key)),
        (Some(key), Some(name)) => Err(ConfigError::Shape {
            path: format!("{parent}.{key}"),
            message: format!("its `name` is {}, not its key {}", Quoted(&name), Quoted(&key)),
        }),
        (None, None) => Err(ConfigError::Shape {
            path: format!("{parent}[{index}]"),
            message: String::from("it has no `name`"),
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestJson {
    version: u32,
    kernel: KernelJson,
    #[serde(default)]
    services: Named<ServiceJson>,
    auth: Option<AuthJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthJson {
    broker: String,
    shell: String,
    #[serde(default)]
    accounts: Named<AccountJson>,
    #[serde(default)]
    profiles: Named<ProfileJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountJson {
    name: Option<String>,
    profile: String,
    verifier: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileJson {
    name: Option<String>,
    #[serde(default)]
    caps: Vec<String>,
}

impl AuthJson {
    fn into_model(self) -> Result<AuthConfig, ConfigError> {
        let mut accounts = Vec::new();
        for (index, (key, account)) in self.accounts.0.into_iter().enumerate() {
            let (_, name) = item_name("auth.accounts", index, key, account.name)?;
            accounts.push(Account { name, profile: account.profile, verifier: account.verifier });
        }
        let mut profiles = Vec::new();
        for (index, (key, profile)) in self.profiles.0.into_iter().enumerate() {
            let (_, name) = item_name("auth.profiles", index, key, profile.name)?;
            profiles.push(Profile { name, caps: profile.caps });
        }
        Ok(AuthConfig { accounts, profiles, broker: self.broker, shell: self.shell })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KernelJson {
    hostname: String,
    log_level: String,
    #[serde(default)]
    motd: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceJson {
    name: Option<String>,
    binary: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    grants: Named<GrantJson>,
    #[serde(default)]
    exports: Vec<String>,
    #[serde(default)]
    restart: RestartJson,
    #[serde(default)]
    resources: ResourcesJson,
}

impl ServiceJson {
    fn into_model(
        self,
        parent: &str,
        index: usize,
        key: Option<String>,
    ) -> Result<Service, ConfigError> {
        let (path, name) = item_name(parent, index, key, self.name)?;
        let grants_path = format!("{path}.grants");
        let mut grants = Vec::new();
        for (index, (key, grant)) in self.grants.0.into_iter().enumerate() {
            grants.push(grant.into_model(&grants_path, index, key)?);
        }
        Ok(Service {
            name,
            binary: self.binary,
            args: self.args,
            grants,
            exports: self.exports,
            restart: RestartPolicy {
                mode: match self.restart.mode {
                    ModeJson::Never => RestartMode::Never,
                    ModeJson::OnFailure => RestartMode::OnFailure,
                },
                max_restarts: self.restart.max_restarts,
                backoff_ms: self.restart.backoff_ms,
            },
            resources: Resources {
                frames: self.resources.frames,
                kernel_bytes: self.resources.kernel_bytes,
                threads: self.resources.threads,
                caps: self.resources.caps,
                open_calls: self.resources.open_calls,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantJson {
    name: Option<String>,
    kernel: Option<String>,
    service: Option<String>,
    export: Option<String>,
}

impl GrantJson {
    fn into_model(
        self,
        parent: &str,
        index: usize,
        key: Option<String>,
    ) -> Result<Grant, ConfigError> {
        let (path, name) = item_name(parent, index, key, self.name)?;
        let shape =
            |message: &str| ConfigError::Shape { path: path.clone(), message: message.into() };
        let source = match (self.kernel, self.service, self.export) {
            (Some(kernel), None, None) => GrantSource::Kernel(kernel),
            (None, Some(service), Some(export)) => {
                GrantSource::Service(ExportRef { service, export })
            }
            (Some(_), _, _) => {
                return Err(shape("a grant names a kernel source or a service's export, not both"))
            }
            (None, None, None) => {
                return Err(shape("a grant needs `kernel`, or `service` and `export`"))
            }
            (None, Some(_), None) => {
                return Err(shape("a grant with `service` needs `export` too"))
            }
            (None, None, Some(_)) => {
                return Err(shape("a grant with `export` needs `service` too"))
            }
        };
        Ok(Grant { name, source })
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestartJson {
    #[serde(default)]
    mode: ModeJson,
    #[serde(default)]
    max_restarts: u32,
    #[serde(default)]
    backoff_ms: u32,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ResourcesJson {
    #[serde(default)]
    frames: u64,
    #[serde(default)]
    kernel_bytes: u64,
    #[serde(default)]
    threads: u32,
    #[serde(default)]
    caps: u32,
    #[serde(default)]
    open_calls: u32,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ModeJson {
    #[default]
    Never,
    OnFailure,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn kernel() -> KernelParams {
        KernelParams { hostname: "capos".into(), log_level: "info".into(), motd: "hi".into() }
    }

    #[test]
    fn reads_what_cue_exports() {
        let json = r#"{
            "version": 1,
            "kernel": {"hostname": "capos", "logLevel": "info", "motd": "hi"},
            "services": {
                "provider": {
                    "name": "provider", "binary": "greeter", "args": ["--quiet"],
                    "grants": {"console": {"kernel": "console"}},
                    "exports": ["greeter"],
                    "restart": {"mode": "onFailure", "maxRestarts": 5, "backoffMs": 100},
                    "resources": {"frames": 4096, "kernelBytes": 16777216, "threads": 4,
                                  "caps": 16, "openCalls": 256}
                },
                "hello": {
                    "binary": "hello",
                    "grants": {"greeter": {"service": "provider", "export": "greeter"}}
                }
            }
        }"#;
        let mut provider = Service::new("provider", "greeter");
        provider.args = vec!["--quiet".into()];
        provider.grants = vec![Grant::kernel("console", "console")];
        provider.exports = vec!["greeter".into()];
        provider.restart =
            RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 5, backoff_ms: 100 };
        provider.resources = Resources {
            frames: 4096,
            kernel_bytes: 16 << 20,
            threads: 4,
            caps: 16,
            open_calls: 256,
        };
        let mut hello = Service::new("hello", "hello");
        hello.grants = vec![Grant::export("greeter", "provider", "greeter")];
        assert_eq!(
            from_json(json).unwrap(),
            Manifest { version: 1, kernel: kernel(), services: vec![provider, hello], auth: None }
        );
    }

    #[test]
    fn reads_lists_with_names() {
        let json = r#"{
            "version": 1,
            "kernel": {"hostname": "capos", "logLevel": "info", "motd": "hi"},
            "services": [
                {"name": "hello", "binary": "hello", "grants": [
                    {"name": "console", "kernel": "console"},
                    {"name": "greeter", "service": "provider", "export": "greeter"}
                ]}
            ]
        }"#;
        let mut hello = Service::new("hello", "hello");
        hello.grants = vec![
            Grant::kernel("console", "console"),
            Grant::export("greeter", "provider", "greeter"),
        ];
        assert_eq!(
            from_json(json).unwrap(),
            Manifest { version: 1, kernel: kernel(), services: vec![hello], auth: None }
        );
    }

    #[test]
    fn defaults() {
        let json = r#"{"version": 1, "kernel": {"hostname": "capos", "logLevel": "info"}}"#;
        let manifest = from_json(json).unwrap();
        assert_eq!(manifest.kernel.motd, "");
        assert!(manifest.services.is_empty());
        let json = r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info"},
            "services": {"a": {"binary": "a", "restart": {"mode": "onFailure"}}}}"#;
        let a = &from_json(json).unwrap().services[0];
        assert_eq!(
            a.restart,
            RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 0, backoff_ms: 0 }
        );
        assert!(a.args.is_empty() && a.grants.is_empty() && a.exports.is_empty());
        assert!(a.resources.is_default());
        let json = r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info"},
            "services": {"a": {"binary": "a", "resources": {"threads": 2}}}}"#;
        let a = &from_json(json).unwrap().services[0];
        assert_eq!(a.resources, Resources { threads: 2, ..Resources::default() });
        let json = r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info"},
            "services": {"a": {"binary": "a", "resources": {"frames": 1099511627776}}}}"#;
        assert_eq!(from_json(json).unwrap().services[0].resources.frames, 1 << 40);
    }

    #[test]
    fn keeps_duplicate_keys_for_validation() {
        let json = r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info"},
            "services": {"a": {"binary": "a"}, "a": {"binary": "b"}}}"#;
        let names: Vec<_> =
            from_json(json).unwrap().services.into_iter().map(|s| s.binary).collect();
        assert_eq!(names, ["a", "b"]);
    }

    fn error(json: &str) -> String {
        from_json(json).unwrap_err().to_string()
    }

    const HEAD: &str =
        r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info"}, "services": "#;

    #[test]
    fn shape_errors_name_the_place() {
        assert_eq!(
            error(&format!(r#"{HEAD}{{"a": {{"name": "b", "binary": "a"}}}}}}"#)),
            "manifest JSON: services.a: its `name` is `b`, not its key `a`"
        );
        assert_eq!(
            error(&format!(r#"{HEAD}[{{"binary": "a"}}]}}"#)),
            "manifest JSON: services[0]: it has no `name`"
        );
        let grant = |g: &str| {
            error(&format!(r#"{HEAD}{{"a": {{"binary": "a", "grants": {{"g": {g}}}}}}}}}"#))
        };
        assert_eq!(
            grant(r#"{"kernel": "log", "service": "b", "export": "e"}"#),
            "manifest JSON: services.a.grants.g: a grant names a kernel source or a service's \
             export, not both"
        );
        assert_eq!(
            grant("{}"),
            "manifest JSON: services.a.grants.g: a grant needs `kernel`, or `service` and `export`"
        );
        assert_eq!(
            grant(r#"{"service": "b"}"#),
            "manifest JSON: services.a.grants.g: a grant with `service` needs `export` too"
        );
        assert_eq!(
            grant(r#"{"export": "e"}"#),
            "manifest JSON: services.a.grants.g: a grant with `export` needs `service` too"
        );
    }

    #[test]
    fn serde_errors_say_where() {
        assert_eq!(
            error("{\"version\": 1, \"kernel\": {\"hostname\": \"h\", \"logLevel\": \"info\"},\n\"sevices\": {}}"),
            "manifest JSON: unknown field `sevices`, expected one of `version`, `kernel`, \
             `services`, `auth` at line 2 column 9"
        );
        assert_eq!(
            error(r#"{"version": 1, "kernel": {"hostname": "h", "logLevel": "info", "motd": 3}}"#),
            "manifest JSON: invalid type: integer `3`, expected a string at line 1 column 72"
        );
        assert_eq!(
            error(&format!(
                r#"{HEAD}{{"a": {{"binary": "a", "restart": {{"maxRestarts": -1}}}}}}}}"#
            )),
            "manifest JSON: invalid value: integer `-1`, expected u32 at line 1 column 127"
        );
        assert_eq!(
            error(&format!(
                r#"{HEAD}{{"a": {{"binary": "a", "restart": {{"mode": "always"}}}}}}}}"#
            )),
            "manifest JSON: unknown variant `always`, expected `never` or `onFailure` at line 1 \
             column 126"
        );
        assert_eq!(
            error(&format!(r#"{HEAD}3}}"#)),
            "manifest JSON: invalid type: integer `3`, expected an object keyed by name or a list \
             at line 1 column 77"
        );
        assert_eq!(
            error(r#"{"version": 1}"#),
            "manifest JSON: missing field `kernel` at line 1 column 14"
        );
        assert_eq!(error("{"), "manifest JSON: EOF while parsing an object at line 1 column 1");
        assert!(error(&format!(
            r#"{HEAD}{{"a": {{"binary": "a", "grants": {{"g": {{"kernal": "x"}}}}}}}}}}"#
        ))
        .contains("unknown field `kernal`"));
        let resources =
            |r: &str| error(&format!(r#"{HEAD}{{"a": {{"binary": "a", "resources": {r}}}}}}}"#));
        assert!(resources(r#"{"thread": 2}"#).contains(
            "unknown field `thread`, expected one of `frames`, `kernelBytes`, `threads`, `caps`, \
             `openCalls`"
        ));
        assert!(
            resources(r#"{"threads": -1}"#).contains("invalid value: integer `-1`, expected u32")
        );
        assert!(resources(r#"{"caps": 4294967296}"#)
            .contains("invalid value: integer `4294967296`, expected u32"));
        assert!(resources(r#"{"frames": "64MiB"}"#)
            .contains("invalid type: string \"64MiB\", expected u64"));
    }
}
