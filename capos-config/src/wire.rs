//! The model to and from the Cap'n Proto `SystemManifest` of
//! `schema/capos.capnp`, in the standard stream framing (what
//! `capnp decode schema/capos.capnp SystemManifest` reads).

use alloc::string::String;
use alloc::vec::Vec;

use capos_schema::capos_capnp::RestartMode as WireRestartMode;
use capos_schema::capos_capnp::{
    auth_config, grant_spec, resource_profile, restart_policy, service_spec, system_manifest,
};
use capos_schema::wire;

use crate::model::{
    Account, AuthConfig, ExportRef, Grant, GrantSource, KernelParams, Manifest, Profile, Resources,
    RestartMode, RestartPolicy, Service,
};
use crate::ConfigError;

/// Encodes `manifest` as a `SystemManifest` message. It does not validate:
/// call [`crate::validate()`] first.
///
/// # Panics
///
/// Only if a list holds more than `u32::MAX` elements, which no manifest
/// that fits in memory does.
pub fn encode(manifest: &Manifest) -> Vec<u8> {
    wire::encode::<system_manifest::Owned>(|mut root| {
        root.set_version(manifest.version);
        let mut kernel = root.reborrow().init_kernel();
        kernel.set_hostname(manifest.kernel.hostname.as_str());
        kernel.set_log_level(manifest.kernel.log_level.as_str());
        kernel.set_motd(manifest.kernel.motd.as_str());
        let mut services = root.reborrow().init_services(wire::list_len(manifest.services.len())?);
        for (index, service) in (0..).zip(&manifest.services) {
            write_service(service, services.reborrow().get(index))?;
        }
        if let Some(auth) = &manifest.auth {
            write_auth(auth, root.init_auth())?;
        }
        Ok(())
    })
    .expect("a manifest has fewer than 2^32 services, grants, arguments and exports")
}

fn write_service(service: &Service, mut builder: service_spec::Builder<'_>) -> capnp::Result<()> {
    builder.set_name(service.name.as_str());
    builder.set_binary(service.binary.as_str());
    let mut args = builder.reborrow().init_args(wire::list_len(service.args.len())?);
    for (index, arg) in (0..).zip(&service.args) {
        args.set(index, arg.as_str());
    }
    let mut grants = builder.reborrow().init_grants(wire::list_len(service.grants.len())?);
    for (index, grant) in (0..).zip(&service.grants) {
        write_grant(grant, grants.reborrow().get(index));
    }
    let mut exports = builder.reborrow().init_exports(wire::list_len(service.exports.len())?);
    for (index, export) in (0..).zip(&service.exports) {
        exports.set(index, export.as_str());
    }
    write_restart(service.restart, builder.reborrow().init_restart());
    // Left out (a null pointer) when all 0, which reads back as all 0: a
    // manifest without resources encodes as it did before the field existed.
    if !service.resources.is_default() {
        write_resources(service.resources, builder.init_resources());
    }
    Ok(())
}

fn write_resources(resources: Resources, mut builder: resource_profile::Builder<'_>) {
    builder.set_frames(resources.frames);
    builder.set_kernel_bytes(resources.kernel_bytes);
    builder.set_threads(resources.threads);
    builder.set_caps(resources.caps);
    builder.set_open_calls(resources.open_calls);
}

fn read_resources(reader: resource_profile::Reader<'_>) -> Resources {
    Resources {
        frames: reader.get_frames(),
        kernel_bytes: reader.get_kernel_bytes(),
        threads: reader.get_threads(),
        caps: reader.get_caps(),
        open_calls: reader.get_open_calls(),
    }
}

fn write_auth(auth: &AuthConfig, mut builder: auth_config::Builder<'_>) -> capnp::Result<()> {
    builder.set_broker(auth.broker.as_str());
    builder.set_shell(auth.shell.as_str());
    let mut accounts = builder.reborrow().init_accounts(wire::list_len(auth.accounts.len())?);
    for (index, account) in (0..).zip(&auth.accounts) {
        let mut a = accounts.reborrow().get(index);
        a.set_name(account.name.as_str());
        a.set_profile(account.profile.as_str());
        a.set_verifier(account.verifier.as_str());
    }
    let mut profiles = builder.init_profiles(wire::list_len(auth.profiles.len())?);
    for (index, profile) in (0..).zip(&auth.profiles) {
        let mut p = profiles.reborrow().get(index);
        p.set_name(profile.name.as_str());
        let mut caps = p.init_caps(wire::list_len(profile.caps.len())?);
        for (i, cap) in (0..).zip(&profile.caps) {
            caps.set(i, cap.as_str());
        }
    }
    Ok(())
}

fn read_auth(reader: auth_config::Reader<'_>) -> Result<AuthConfig, ConfigError> {
    let mut accounts = Vec::new();
    for a in reader.get_accounts()? {
        accounts.push(Account {
            name: text(a.get_name())?,
            profile: text(a.get_profile())?,
            verifier: text(a.get_verifier())?,
        });
    }
    let mut profiles = Vec::new();
    for p in reader.get_profiles()? {
        profiles.push(Profile { name: text(p.get_name())?, caps: texts(p.get_caps())? });
    }
    Ok(AuthConfig {
        accounts,
        profiles,
        broker: text(reader.get_broker())?,
        shell: text(reader.get_shell())?,
    })
}

fn write_grant(grant: &Grant, mut builder: grant_spec::Builder<'_>) {
    builder.set_name(grant.name.as_str());
    let mut source = builder.init_source();
    match &grant.source {
        GrantSource::Kernel(kernel) => source.set_kernel(kernel.as_str()),
        GrantSource::Service(from) => {
            let mut export = source.init_service();
            export.set_service(from.service.as_str());
            export.set_export(from.export.as_str());
        }
    }
}

fn write_restart(policy: RestartPolicy, mut builder: restart_policy::Builder<'_>) {
    builder.set_mode(match policy.mode {
        RestartMode::Never => WireRestartMode::Never,
        RestartMode::OnFailure => WireRestartMode::OnFailure,
    });
    builder.set_max_restarts(policy.max_restarts);
    builder.set_backoff_ms(policy.backoff_ms);
}

/// Decodes a `SystemManifest` message (bounded as `capos_schema::wire::decode`
/// bounds untrusted messages). It does not validate: call
/// [`crate::validate()`] on the result.
pub fn decode(bytes: &[u8]) -> Result<Manifest, ConfigError> {
    let message = wire::decode(bytes)?;
    let root = message.get_root::<system_manifest::Reader<'_>>()?;
    let kernel = root.get_kernel()?;
    let kernel = KernelParams {
        hostname: text(kernel.get_hostname())?,
        log_level: text(kernel.get_log_level())?,
        motd: text(kernel.get_motd())?,
    };
    let mut services = Vec::new();
    for service in root.get_services()? {
        services.push(read_service(service)?);
    }
    let auth = if root.has_auth() { Some(read_auth(root.get_auth()?)?) } else { None };
    Ok(Manifest { version: root.get_version(), kernel, services, auth })
}

fn text(reader: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, ConfigError> {
    reader?
        .to_string()
        .map_err(|error| ConfigError::Decode(alloc::format!("a text field is not UTF-8: {error}")))
}

fn texts(reader: capnp::Result<capnp::text_list::Reader<'_>>) -> Result<Vec<String>, ConfigError> {
    reader?.iter().map(text).collect()
}

fn read_service(reader: service_spec::Reader<'_>) -> Result<Service, ConfigError> {
    let mut grants = Vec::new();
    for grant in reader.get_grants()? {
        let source = match grant.get_source().which()? {
            grant_spec::source::Kernel(kernel) => GrantSource::Kernel(text(kernel)?),
            grant_spec::source::Service(from) => {
                let from = from?;
                GrantSource::Service(ExportRef {
                    service: text(from.get_service())?,
                    export: text(from.get_export())?,
                })
            }
        };
        grants.push(Grant { name: text(grant.get_name())?, source });
    }
    let restart = reader.get_restart()?;
    let mode = match restart.get_mode()? {
        WireRestartMode::Never => RestartMode::Never,
        WireRestartMode::OnFailure => RestartMode::OnFailure,
    };
    Ok(Service {
        name: text(reader.get_name())?,
        binary: text(reader.get_binary())?,
        args: texts(reader.get_args())?,
        grants,
        exports: texts(reader.get_exports())?,
        restart: RestartPolicy {
            mode,
            max_restarts: restart.get_max_restarts(),
            backoff_ms: restart.get_backoff_ms(),
        },
        // A null `resources` reads as all 0 fields.
        resources: read_resources(reader.get_resources()?),
    })
}
