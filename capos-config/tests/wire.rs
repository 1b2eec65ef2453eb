//! The model to `SystemManifest` bytes and back.

use capos_config::{
    decode, encode, Account, AuthConfig, ConfigError, Grant, KernelParams, Manifest, Profile,
    Resources, RestartMode, RestartPolicy, Service,
};
use capos_schema::capos_capnp::system_manifest;
use proptest::prelude::*;

fn sample() -> Manifest {
    let mut provider = Service::new("provider", "greeter");
    provider.args = vec!["--quiet".into(), String::new(), "ünï cødé ✓".into()];
    provider.grants = vec![Grant::kernel("console", "console"), Grant::kernel("log", "log")];
    provider.exports = vec!["greeter".into(), "admin".into()];
    provider.restart =
        RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 100, backoff_ms: 60_000 };
    provider.resources = Resources {
        frames: u64::MAX,
        kernel_bytes: 64 << 10,
        threads: 32,
        caps: 64,
        open_calls: 4096,
    };
    let mut hello = Service::new("hello", "hello");
    hello.grants =
        vec![Grant::export("greeter", "provider", "greeter"), Grant::kernel("timer", "timer")];
    hello.resources = Resources { threads: 2, ..Resources::default() };
    Manifest {
        version: 1,
        kernel: KernelParams {
            hostname: "lab-1.example.org".into(),
            log_level: "debug".into(),
            motd: "Welcome to capOS\nsecond line".into(),
        },
        services: vec![provider, hello, Service::new("idle", "template")],
        auth: Some(AuthConfig {
            accounts: vec![Account {
                name: "operator".into(),
                profile: "operator".into(),
                verifier: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            }],
            profiles: vec![
                Profile { name: "anonymous".into(), caps: vec!["sysinfo".into()] },
                Profile { name: "operator".into(), caps: vec!["sysinfo".into(), "spawner".into()] },
            ],
            broker: "sessions".into(),
            shell: "capos-shell".into(),
        }),
    }
}

#[test]
fn round_trips() {
    let manifest = sample();
    assert_eq!(decode(&encode(&manifest)).unwrap(), manifest);
}

#[test]
fn round_trips_an_empty_manifest() {
    let manifest = Manifest {
        version: 1,
        kernel: KernelParams {
            hostname: String::new(),
            log_level: String::new(),
            motd: String::new(),
        },
        services: Vec::new(),
        auth: None,
    };
    assert_eq!(decode(&encode(&manifest)).unwrap(), manifest);
}

#[test]
fn encodes_the_schema_fields() {
    let bytes = encode(&sample());
    let message = capos_schema::wire::decode(&bytes).unwrap();
    let root = message.get_root::<system_manifest::Reader<'_>>().unwrap();
    assert_eq!(root.get_version(), 1);
    assert_eq!(root.get_kernel().unwrap().get_hostname().unwrap(), "lab-1.example.org");
    let services = root.get_services().unwrap();
    assert_eq!(services.len(), 3);
    let hello = services.get(1);
    assert_eq!(hello.get_name().unwrap(), "hello");
    let grant = hello.get_grants().unwrap().get(0);
    assert_eq!(grant.get_name().unwrap(), "greeter");
    match grant.get_source().which().unwrap() {
        capos_schema::capos_capnp::grant_spec::source::Service(from) => {
            let from = from.unwrap();
            assert_eq!(from.get_service().unwrap(), "provider");
            assert_eq!(from.get_export().unwrap(), "greeter");
        }
        capos_schema::capos_capnp::grant_spec::source::Kernel(_) => panic!("a kernel grant"),
    }
    let restart = services.get(0).get_restart().unwrap();
    assert_eq!(restart.get_mode().unwrap(), capos_schema::capos_capnp::RestartMode::OnFailure);
    assert_eq!(restart.get_max_restarts(), 100);
    assert_eq!(restart.get_backoff_ms(), 60_000);
    let provider = services.get(0);
    assert!(provider.has_resources());
    let resources = provider.get_resources().unwrap();
    assert_eq!(resources.get_frames(), u64::MAX);
    assert_eq!(resources.get_kernel_bytes(), 64 << 10);
    assert_eq!(resources.get_threads(), 32);
    assert_eq!(resources.get_caps(), 64);
    assert_eq!(resources.get_open_calls(), 4096);
    let resources = hello.get_resources().unwrap();
    assert_eq!((resources.get_threads(), resources.get_frames()), (2, 0));
    // A service with no resources set carries no ResourceProfile at all.
    assert!(!services.get(2).has_resources());
}

#[test]
fn a_service_without_resources_encodes_as_before() {
    // The bytes of a manifest without resources are those the schema wrote
    // before ServiceSpec.resources existed: the pointer is null.
    let mut manifest = sample();
    for service in &mut manifest.services {
        service.resources = Resources::default();
    }
    let bytes = encode(&manifest);
    let message = capos_schema::wire::decode(&bytes).unwrap();
    let root = message.get_root::<system_manifest::Reader<'_>>().unwrap();
    assert!(root.get_services().unwrap().iter().all(|s| !s.has_resources()));
    assert_eq!(decode(&bytes).unwrap(), manifest);
}

#[test]
fn an_explicit_zero_profile_reads_as_defaults() {
    let bytes = capos_schema::wire::encode::<system_manifest::Owned>(|root| {
        let mut services = root.init_services(1);
        services.reborrow().get(0).init_resources().set_threads(0);
        Ok(())
    })
    .unwrap();
    assert!(decode(&bytes).unwrap().services[0].resources.is_default());
}

#[test]
fn an_empty_message_reads_as_defaults() {
    // A root struct with no fields set: every field takes its default.
    let bytes = capos_schema::wire::encode::<system_manifest::Owned>(|_| Ok(())).unwrap();
    let manifest = decode(&bytes).unwrap();
    assert_eq!(manifest.version, 0);
    assert_eq!(manifest.kernel.hostname, "");
    assert!(manifest.services.is_empty());
}

#[test]
fn rejects_what_is_not_a_manifest() {
    for bytes in [&[][..], &[1, 2, 3], &[0xff; 64]] {
        assert!(matches!(decode(bytes), Err(ConfigError::Decode(_))), "{bytes:?}");
    }
    let mut bytes = encode(&sample());
    bytes.extend_from_slice(&[0; 8]);
    let error = decode(&bytes).unwrap_err().to_string();
    assert!(error.starts_with("manifest: not a SystemManifest: "), "{error}");
    assert!(error.contains("bytes were given"), "{error}");
    let bytes = encode(&sample());
    assert!(decode(&bytes[..bytes.len() - 8]).is_err());
}

#[test]
fn rejects_an_unknown_restart_mode() {
    let bytes = capos_schema::wire::encode::<system_manifest::Owned>(|root| {
        let mut services = root.init_services(1);
        let service = services.reborrow().get(0);
        service.init_restart();
        Ok(())
    })
    .unwrap();
    let manifest = decode(&bytes).unwrap();
    assert_eq!(manifest.services[0].restart.mode, RestartMode::Never);
    // Set one byte at a time to 7 until the mode reads as no enumerant of
    // the schema (rather than hard-code the message layout).
    let mut poked = bytes.clone();
    let mut found = false;
    for at in 8..poked.len() {
        let saved = poked[at];
        poked[at] = 7;
        if let Ok(m) = capos_schema::wire::decode(&poked) {
            if let Ok(root) = m.get_root::<system_manifest::Reader<'_>>() {
                if let Ok(services) = root.get_services() {
                    if services.len() == 1 {
                        if let Ok(restart) = services.get(0).get_restart() {
                            if restart.get_mode().is_err() {
                                found = true;
                                let error = decode(&poked).unwrap_err();
                                assert!(matches!(error, ConfigError::Decode(_)), "{error}");
                                break;
                            }
                        }
                    }
                }
            }
        }
        poked[at] = saved;
    }
    assert!(found, "no byte of the message holds the restart mode");
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{0,12}"
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

prop_compose! {
    fn grant()(name in name(), kernel in proptest::option::of(name()), service in name(), export in text())
        -> Grant {
        match kernel {
            Some(source) => Grant::kernel(name, source),
            None => Grant::export(name, service, export),
        }
    }
}

prop_compose! {
    fn service()(
        name in name(),
        binary in name(),
        args in proptest::collection::vec(text(), 0..4),
        grants in proptest::collection::vec(grant(), 0..5),
        exports in proptest::collection::vec(name(), 0..3),
        on_failure in any::<bool>(),
        max_restarts in any::<u32>(),
        backoff_ms in any::<u32>(),
        resources in resources(),
    ) -> Service {
        Service {
            name,
            binary,
            args,
            grants,
            exports,
            restart: RestartPolicy {
                mode: if on_failure { RestartMode::OnFailure } else { RestartMode::Never },
                max_restarts,
                backoff_ms,
            },
            resources,
        }
    }
}

prop_compose! {
    fn resources()(
        set in any::<bool>(),
        frames in any::<u64>(),
        kernel_bytes in any::<u64>(),
        threads in any::<u32>(),
        caps in any::<u32>(),
        open_calls in any::<u32>(),
    ) -> Resources {
        if set {
            Resources { frames, kernel_bytes, threads, caps, open_calls }
        } else {
            Resources::default()
        }
    }
}

prop_compose! {
    fn manifest()(
        version in any::<u32>(),
        hostname in text(),
        log_level in name(),
        motd in text(),
        services in proptest::collection::vec(service(), 0..6),
        auth in proptest::option::of(auth()),
    ) -> Manifest {
        Manifest { version, kernel: KernelParams { hostname, log_level, motd }, services, auth }
    }
}

prop_compose! {
    fn auth()(
        broker in name(),
        shell in name(),
        accounts in proptest::collection::vec((name(), name(), text()), 0..4),
        profiles in proptest::collection::vec((name(), proptest::collection::vec(name(), 0..4)), 0..4),
    ) -> AuthConfig {
        AuthConfig {
            accounts: accounts
                .into_iter()
                .map(|(name, profile, verifier)| Account { name, profile, verifier })
                .collect(),
            profiles: profiles.into_iter().map(|(name, caps)| Profile { name, caps }).collect(),
            broker,
            shell,
        }
    }
}

proptest! {
    #[test]
    fn any_manifest_round_trips(manifest in manifest()) {
        prop_assert_eq!(decode(&encode(&manifest)).unwrap(), manifest);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoding_a_damaged_manifest_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&sample());
        let at = at.index(bytes.len());
        bytes[at] = byte;
        let _ = decode(&bytes);
    }
}
