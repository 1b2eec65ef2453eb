//! Every validation rule, with its exact message.

use capos_config::{
    start_order, validate, Account, AuthConfig, Context, Grant, KernelParams, Manifest, Profile,
    Resources, RestartMode, RestartPolicy, Service, ValidationError, KERNEL_CAP_SOURCES,
};

/// `provider` exports `greeter`; `hello` is granted it and the console.
fn base() -> Manifest {
    let mut provider = Service::new("provider", "provider");
    provider.grants = vec![Grant::kernel("console", "console")];
    provider.exports = vec!["greeter".into()];
    let mut hello = Service::new("hello", "hello");
    hello.args = vec!["--twice".into()];
    hello.grants =
        vec![Grant::kernel("console", "console"), Grant::export("greeter", "provider", "greeter")];
    hello.restart = RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 3, backoff_ms: 50 };
    Manifest {
        version: 1,
        kernel: KernelParams {
            hostname: "capos".into(),
            log_level: "info".into(),
            motd: "Welcome to capOS".into(),
        },
        services: vec![provider, hello],
        auth: None,
    }
}

fn context() -> Context {
    Context::new(["hello", "provider", "template"])
}

/// The messages of every broken rule of `manifest`.
fn errors(manifest: &Manifest) -> Vec<String> {
    match validate(manifest, &context()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The one message `change` gives `base()`.
fn error_after(change: impl FnOnce(&mut Manifest)) -> String {
    let mut manifest = base();
    change(&mut manifest);
    let mut errors = errors(&manifest);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.remove(0)
}

fn service<'a>(manifest: &'a mut Manifest, name: &str) -> &'a mut Service {
    manifest.services.iter_mut().find(|s| s.name == name).unwrap()
}

#[test]
fn the_base_manifest_is_valid() {
    assert_eq!(errors(&base()), Vec::<String>::new());
}

#[test]
fn unsupported_version() {
    assert_eq!(
        error_after(|m| m.version = 2),
        "manifest: version is 2, but this build reads only version 1"
    );
    assert_eq!(
        error_after(|m| m.version = 0),
        "manifest: version is 0, but this build reads only version 1"
    );
}

fn hostname_error(hostname: &str) -> String {
    error_after(|m| m.kernel.hostname = hostname.into())
}

#[test]
fn invalid_hostnames() {
    let prefix = |name: &str| {
        format!("manifest: kernel hostname `{name}` is not a valid RFC 1123 host name: ")
    };
    assert_eq!(hostname_error(""), prefix("") + "it is empty");
    assert_eq!(
        hostname_error("Cap_OS"),
        prefix("Cap_OS") + "label `Cap_OS` has 'C', which is not one of a-z, 0-9 and '-'"
    );
    assert_eq!(
        hostname_error("cap_os"),
        prefix("cap_os") + "label `cap_os` has '_', which is not one of a-z, 0-9 and '-'"
    );
    assert_eq!(
        hostname_error("héllo"),
        prefix("héllo") + "label `héllo` has 'é', which is not one of a-z, 0-9 and '-'"
    );
    assert_eq!(
        hostname_error("lab..local"),
        prefix("lab..local") + "it has an empty label (two dots in a row, or a dot at an end)"
    );
    assert_eq!(
        hostname_error("capos."),
        prefix("capos.") + "it has an empty label (two dots in a row, or a dot at an end)"
    );
    assert_eq!(hostname_error("-capos"), prefix("-capos") + "label `-capos` starts with '-'");
    assert_eq!(hostname_error("a.capos-"), prefix("a.capos-") + "label `capos-` ends with '-'");
    let long_label = "a".repeat(64);
    assert_eq!(
        hostname_error(&long_label),
        prefix(&long_label) + &format!("label `{long_label}` is 64 characters long, more than 63")
    );
    let long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(63)].join(".");
    assert_eq!(hostname_error(&long), prefix(&long) + "it is 255 characters long, more than 253");
    assert_eq!(
        hostname_error("bad\u{1b}[2J"),
        "manifest: kernel hostname `bad\\u{1b}[2J` is not a valid RFC 1123 host name: label \
         `bad\\u{1b}[2J` has '\\u{1b}', which is not one of a-z, 0-9 and '-'"
    );
}

#[test]
fn valid_hostnames() {
    let label63 = "a".repeat(63);
    let name253 = [label63.as_str(), &label63, &label63, &"d".repeat(61)].join(".");
    assert_eq!(name253.len(), 253);
    for hostname in ["capos", "a", "0", "lab-1.example.org", "x1-y2", label63.as_str(), &name253] {
        let mut manifest = base();
        manifest.kernel.hostname = hostname.into();
        assert_eq!(errors(&manifest), Vec::<String>::new(), "{hostname}");
    }
}

#[test]
fn invalid_log_level() {
    assert_eq!(
        error_after(|m| m.kernel.log_level = "verbose".into()),
        "manifest: kernel logLevel `verbose` is not one of error, warn, info, debug, trace"
    );
    assert_eq!(
        error_after(|m| m.kernel.log_level = "INFO".into()),
        "manifest: kernel logLevel `INFO` is not one of error, warn, info, debug, trace"
    );
    for level in ["error", "warn", "info", "debug", "trace"] {
        let mut manifest = base();
        manifest.kernel.log_level = level.into();
        assert!(validate(&manifest, &context()).is_ok());
    }
}

#[test]
fn empty_service_name() {
    assert_eq!(
        error_after(|m| m.services.push(Service::new("", "template"))),
        "manifest: the service at position 3 has an empty name"
    );
}

#[test]
fn duplicate_service() {
    assert_eq!(
        error_after(|m| {
            m.services.push(Service::new("hello", "template"));
            m.services.push(Service::new("hello", "template"));
        }),
        "manifest: service `hello` is declared more than once"
    );
}

#[test]
fn empty_binary() {
    assert_eq!(
        error_after(|m| service(m, "hello").binary = String::new()),
        "manifest: service `hello` has an empty binary name"
    );
}

#[test]
fn unknown_binary() {
    assert_eq!(
        error_after(|m| service(m, "hello").binary = "helo".into()),
        "manifest: service `hello` runs binary `helo`, which is not in the boot package \
         (it holds: hello, provider, template)"
    );
    let mut manifest = base();
    manifest.services.truncate(1);
    let errors: Vec<String> = validate(&manifest, &Context::new(Vec::<String>::new()))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        ["manifest: service `provider` runs binary `provider`, which is not in the boot package \
          (it holds no binaries)"]
    );
}

#[test]
fn unknown_kernel_source() {
    assert_eq!(
        error_after(|m| service(m, "hello").grants[0] = Grant::kernel("console", "consol")),
        "manifest: service `hello` grants `console` from kernel source `consol`, which does not \
         exist (kernel sources: boot, clock, console, devices, entropy, ipc, log, log_reader, park, \
         processes, sched, spawner, sysinfo, terminal, threads, timer, vm)"
    );
    // A context with other sources (what init holds at boot).
    let context = Context::new(["hello", "provider"]).with_kernel_sources(["log"]);
    let errors: Vec<String> =
        validate(&base(), &context).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "manifest: service `provider` grants `console` from kernel source `console`, which \
             does not exist (kernel sources: log)",
            "manifest: service `hello` grants `console` from kernel source `console`, which does \
             not exist (kernel sources: log)",
        ]
    );
}

#[test]
fn every_kernel_source_can_be_granted() {
    let mut manifest = base();
    service(&mut manifest, "hello").grants =
        KERNEL_CAP_SOURCES.iter().map(|source| Grant::kernel(*source, *source)).collect();
    assert_eq!(errors(&manifest), Vec::<String>::new());
}

#[test]
fn grant_of_an_unknown_service() {
    assert_eq!(
        error_after(|m| service(m, "hello").grants[1] = Grant::export("greeter", "provder", "greeter")),
        "manifest: service `hello` grants `greeter` from `provder`, which is not a service of this \
         manifest"
    );
}

#[test]
fn grant_of_an_unknown_export() {
    assert_eq!(
        error_after(
            |m| service(m, "hello").grants[1] = Grant::export("greeter", "provider", "greeting")
        ),
        "manifest: service `hello` grants `greeter` from `provider`, which exports no `greeting`"
    );
    // The example of the design's conventions.
    let mut manifest = base();
    manifest.services = vec![
        {
            let mut driver = Service::new("virtio-net", "template");
            driver.exports = vec!["device".into()];
            driver
        },
        {
            let mut net = Service::new("net", "template");
            net.grants = vec![Grant::export("nic", "virtio-net", "nic")];
            net
        },
    ];
    assert_eq!(
        errors(&manifest),
        ["manifest: service `net` grants `nic` from `virtio-net`, which exports no `nic`"]
    );
}

#[test]
fn self_grant() {
    assert_eq!(
        error_after(|m| service(m, "provider")
            .grants
            .push(Grant::export("me", "provider", "greeter"))),
        "manifest: service `provider` grants `me` from its own export `greeter`"
    );
    // Even of an export it does not have: the grant can never be met.
    assert_eq!(
        error_after(|m| service(m, "provider")
            .grants
            .push(Grant::export("me", "provider", "nothing"))),
        "manifest: service `provider` grants `me` from its own export `nothing`"
    );
}

#[test]
fn empty_names_in_grants() {
    assert_eq!(
        error_after(|m| service(m, "hello").grants[0].name = String::new()),
        "manifest: service `hello` has a grant with an empty name (grant at position 1)"
    );
    assert_eq!(
        error_after(|m| service(m, "hello").grants[0] = Grant::kernel("console", "")),
        "manifest: service `hello` grants `console` from an empty kernel source name"
    );
    assert_eq!(
        error_after(|m| service(m, "hello").grants[1] = Grant::export("greeter", "", "greeter")),
        "manifest: service `hello` grants `greeter` from an empty service name"
    );
    assert_eq!(
        error_after(|m| service(m, "hello").grants[1] = Grant::export("greeter", "provider", "")),
        "manifest: service `hello` grants `greeter` from an empty export name"
    );
}

#[test]
fn duplicate_grant() {
    assert_eq!(
        error_after(|m| {
            let hello = service(m, "hello");
            for _ in 0..2 {
                hello.grants.push(Grant::kernel("console", "log"));
            }
        }),
        "manifest: service `hello` grants `console` more than once"
    );
}

#[test]
fn grant_names_fit_a_cap_set_entry() {
    let name32 = "n".repeat(32);
    let mut manifest = base();
    service(&mut manifest, "hello").grants.push(Grant::kernel(name32.clone(), "log"));
    assert_eq!(errors(&manifest), Vec::<String>::new());
    let name33 = "n".repeat(33);
    assert_eq!(
        error_after(|m| service(m, "hello").grants.push(Grant::kernel(name33.clone(), "log"))),
        format!(
            "manifest: service `hello` grants `{name33}`, a name of 33 bytes, more than the 32 a \
             cap set entry holds"
        )
    );
    assert_eq!(
        error_after(|m| service(m, "hello").grants.push(Grant::kernel("a\0b", "log"))),
        "manifest: service `hello` grants `a\\0b`, a name with a NUL byte"
    );
}

#[test]
fn too_many_grants() {
    let mut manifest = base();
    service(&mut manifest, "hello").grants =
        (0..64).map(|i| Grant::kernel(format!("log{i}"), "log")).collect();
    assert_eq!(errors(&manifest), Vec::<String>::new());
    assert_eq!(
        error_after(|m| {
            service(m, "hello").grants =
                (0..65).map(|i| Grant::kernel(format!("log{i}"), "log")).collect();
        }),
        "manifest: service `hello` has 65 grants, more than the 64 a cap set holds"
    );
}

#[test]
fn empty_export_name() {
    assert_eq!(
        error_after(|m| service(m, "provider").exports.push(String::new())),
        "manifest: service `provider` has an export with an empty name (export at position 2)"
    );
}

#[test]
fn duplicate_export() {
    assert_eq!(
        error_after(|m| {
            let provider = service(m, "provider");
            provider.exports.push("greeter".into());
            provider.exports.push("greeter".into());
        }),
        "manifest: service `provider` exports `greeter` more than once"
    );
    // Two services may export the same name: exports are per service.
    let mut manifest = base();
    service(&mut manifest, "hello").exports.push("greeter".into());
    assert_eq!(errors(&manifest), Vec::<String>::new());
}

#[test]
fn argument_limits() {
    let mut manifest = base();
    service(&mut manifest, "hello").args = vec!["x".into(); 32];
    assert_eq!(errors(&manifest), Vec::<String>::new());
    assert_eq!(
        error_after(|m| service(m, "hello").args = vec!["x".into(); 33]),
        "manifest: service `hello` has 33 arguments, more than the 32 a process may receive"
    );
    let mut manifest = base();
    service(&mut manifest, "hello").args = vec!["y".repeat(1023)];
    assert_eq!(errors(&manifest), Vec::<String>::new());
    assert_eq!(
        error_after(|m| service(m, "hello").args = vec!["y".repeat(600), "z".repeat(424)]),
        "manifest: service `hello` has 1026 bytes of arguments (one NUL each included), more \
         than the 1024 a process may receive"
    );
    assert_eq!(
        error_after(|m| service(m, "hello").args = vec!["ok".into(), "a\0b".into()]),
        "manifest: service `hello` has a NUL byte in its argument at position 2"
    );
}

#[test]
fn restart_limits() {
    let mut manifest = base();
    service(&mut manifest, "hello").restart =
        RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 100, backoff_ms: 60_000 };
    assert_eq!(errors(&manifest), Vec::<String>::new());
    assert_eq!(
        error_after(|m| service(m, "hello").restart.max_restarts = 101),
        "manifest: service `hello` restart maxRestarts is 101, more than the limit of 100"
    );
    assert_eq!(
        error_after(|m| service(m, "hello").restart.backoff_ms = 60_001),
        "manifest: service `hello` restart backoffMs is 60001, more than the limit of 60000"
    );
    assert_eq!(
        error_after(|m| service(m, "provider").restart.max_restarts = u32::MAX),
        "manifest: service `provider` restart maxRestarts is 4294967295, more than the limit of 100"
    );
}

#[test]
fn resources_at_their_bounds_are_valid() {
    let mut manifest = base();
    // The largest values each field may name.
    service(&mut manifest, "hello").resources = Resources {
        frames: 1 << 28,
        kernel_bytes: 1 << 40,
        threads: 32,
        caps: 64,
        open_calls: 4096,
    };
    // The smallest (`provider` is started with console and exporter).
    service(&mut manifest, "provider").resources =
        Resources { frames: 16, kernel_bytes: 64 << 10, threads: 1, caps: 2, open_calls: 1 };
    assert_eq!(errors(&manifest), Vec::<String>::new());
    // 0 is the default, never out of range.
    service(&mut manifest, "provider").resources = Resources::default();
    assert_eq!(errors(&manifest), Vec::<String>::new());
}

#[test]
fn resources_over_their_bounds() {
    let set = |r: Resources| error_after(move |m| service(m, "hello").resources = r);
    let none = Resources::default();
    assert_eq!(
        set(Resources { threads: 33, ..none }),
        "manifest: service `hello` resources: threads 33 exceeds 32"
    );
    assert_eq!(
        set(Resources { threads: u32::MAX, ..none }),
        "manifest: service `hello` resources: threads 4294967295 exceeds 32"
    );
    assert_eq!(
        set(Resources { caps: 65, ..none }),
        "manifest: service `hello` resources: caps 65 exceeds 64"
    );
    assert_eq!(
        set(Resources { open_calls: 4097, ..none }),
        "manifest: service `hello` resources: openCalls 4097 exceeds 4096"
    );
    assert_eq!(
        set(Resources { frames: (1 << 28) + 1, ..none }),
        "manifest: service `hello` resources: frames 268435457 exceeds 268435456"
    );
    assert_eq!(
        set(Resources { frames: u64::MAX, ..none }),
        "manifest: service `hello` resources: frames 18446744073709551615 exceeds 268435456"
    );
    assert_eq!(
        set(Resources { kernel_bytes: (1 << 40) + 1, ..none }),
        "manifest: service `hello` resources: kernelBytes 1099511627777 exceeds 1099511627776"
    );
}

#[test]
fn resources_under_their_minimum() {
    let set = |r: Resources| error_after(move |m| service(m, "hello").resources = r);
    let none = Resources::default();
    assert_eq!(
        set(Resources { frames: 15, ..none }),
        "manifest: service `hello` resources: frames 15 is below the minimum of 16 (0 means the \
         default)"
    );
    assert_eq!(
        set(Resources { kernel_bytes: 65535, ..none }),
        "manifest: service `hello` resources: kernelBytes 65535 is below the minimum of 65536 (0 \
         means the default)"
    );
    // `hello` is started with console and greeter; `provider` with console
    // and its exporter.
    assert_eq!(
        set(Resources { caps: 1, ..none }),
        "manifest: service `hello` resources: caps 1 is fewer than the 2 caps it is started with"
    );
    assert_eq!(
        error_after(|m| service(m, "provider").resources.caps = 1),
        "manifest: service `provider` resources: caps 1 is fewer than the 2 caps it is started \
         with"
    );
    assert_eq!(
        errors(&{
            let mut m = base();
            service(&mut m, "hello").resources.caps = 2;
            m
        }),
        Vec::<String>::new()
    );
}

#[test]
fn every_resource_error_is_reported() {
    let mut manifest = base();
    service(&mut manifest, "hello").resources =
        Resources { frames: 1, kernel_bytes: 1, threads: 40, caps: 100, open_calls: 5000 };
    assert_eq!(
        errors(&manifest),
        [
            "manifest: service `hello` resources: frames 1 is below the minimum of 16 (0 means \
             the default)",
            "manifest: service `hello` resources: kernelBytes 1 is below the minimum of 65536 (0 \
             means the default)",
            "manifest: service `hello` resources: threads 40 exceeds 32",
            "manifest: service `hello` resources: caps 100 exceeds 64",
            "manifest: service `hello` resources: openCalls 5000 exceeds 4096",
        ]
    );
    let Err(errors) = validate(&manifest, &context()) else { panic!("validated") };
    assert_eq!(
        errors[2],
        ValidationError::ResourceAboveLimit {
            service: "hello".into(),
            field: "threads",
            value: 40,
            limit: 32
        }
    );
}

#[test]
fn dependency_cycle() {
    // provider is granted an export of hello, which is granted provider's.
    assert_eq!(
        error_after(|m| {
            service(m, "hello").exports.push("hi".into());
            service(m, "provider").grants.push(Grant::export("hi", "hello", "hi"));
        }),
        "manifest: services depend on each other in a cycle: `provider` -> `hello` -> `provider` \
         (each is granted an export of the next)"
    );
}

#[test]
fn longer_cycle_named_from_its_first_service() {
    let mut manifest = base();
    manifest.services = vec![
        chain_service("start", &["b"]),
        chain_service("c", &["a"]),
        chain_service("a", &["b"]),
        chain_service("b", &["c"]),
    ];
    assert_eq!(
        errors(&manifest),
        ["manifest: services depend on each other in a cycle: `c` -> `a` -> `b` -> `c` (each is \
          granted an export of the next)"]
    );
    assert_eq!(
        start_order(&manifest),
        Err(ValidationError::Cycle { path: vec!["c".into(), "a".into(), "b".into()] })
    );
}

#[test]
fn every_error_is_reported_in_order() {
    let mut manifest = base();
    manifest.version = 7;
    manifest.kernel.hostname = "UPPER".into();
    manifest.kernel.log_level = "loud".into();
    let hello = service(&mut manifest, "hello");
    hello.binary = "nope".into();
    hello.grants.push(Grant::kernel("console", "timer"));
    hello.exports = vec!["x".into(), "x".into()];
    hello.restart.backoff_ms = 70_000;
    manifest.services.push(Service::new("hello", "hello"));
    assert_eq!(
        errors(&manifest),
        [
            "manifest: version is 7, but this build reads only version 1",
            "manifest: kernel hostname `UPPER` is not a valid RFC 1123 host name: label `UPPER` \
             has 'U', which is not one of a-z, 0-9 and '-'",
            "manifest: kernel logLevel `loud` is not one of error, warn, info, debug, trace",
            "manifest: service `hello` is declared more than once",
            "manifest: service `hello` runs binary `nope`, which is not in the boot package (it \
             holds: hello, provider, template)",
            "manifest: service `hello` grants `console` more than once",
            "manifest: service `hello` exports `x` more than once",
            "manifest: service `hello` restart backoffMs is 70000, more than the limit of 60000",
        ]
    );
}

#[test]
fn errors_carry_their_fields() {
    let Err(errors) = validate(
        &{
            let mut m = base();
            service(&mut m, "hello").grants[1] = Grant::export("greeter", "provider", "nope");
            m
        },
        &context(),
    ) else {
        panic!("validated");
    };
    assert_eq!(
        errors,
        [ValidationError::UnknownExport {
            service: "hello".into(),
            grant: "greeter".into(),
            provider: "provider".into(),
            export: "nope".into(),
        }]
    );
}

fn chain_service(name: &str, needs: &[&str]) -> Service {
    let mut service = Service::new(name, "template");
    service.exports = vec!["e".into()];
    service.grants = needs.iter().map(|n| Grant::export(format!("from-{n}"), *n, "e")).collect();
    service
}

fn order_names(manifest: &Manifest) -> Vec<&str> {
    start_order(manifest).unwrap().iter().map(|&i| manifest.services[i].name.as_str()).collect()
}

#[test]
fn start_order_puts_providers_first() {
    assert_eq!(order_names(&base()), ["provider", "hello"]);
    let mut manifest = base();
    manifest.services.reverse();
    assert_eq!(order_names(&manifest), ["provider", "hello"]);
}

#[test]
fn start_order_is_stable_by_declaration() {
    let mut manifest = base();
    manifest.services = vec![
        chain_service("web", &["net", "store"]),
        chain_service("shell", &[]),
        chain_service("net", &["nic"]),
        chain_service("store", &["disk"]),
        chain_service("nic", &[]),
        chain_service("disk", &[]),
        chain_service("logger", &[]),
    ];
    assert_eq!(order_names(&manifest), ["shell", "nic", "net", "disk", "store", "web", "logger"]);
    assert!(validate(&manifest, &Context::new(["template"])).is_ok());
}

#[test]
fn start_order_ignores_what_validation_reports() {
    // Grants of unknown services and of the service itself add no edge.
    let mut manifest = base();
    manifest.services = vec![chain_service("a", &["a", "ghost", "b"]), chain_service("b", &[])];
    assert_eq!(order_names(&manifest), ["b", "a"]);
    assert!(start_order(&Manifest { services: vec![], ..base() }).unwrap().is_empty());
}

#[test]
fn an_exporting_service_cannot_grant_the_exporter_name() {
    assert_eq!(
        error_after(|m| service(m, "provider").grants.push(Grant::kernel("exporter", "log"))),
        "manifest: service `provider` exports caps, so init grants it `exporter`; it cannot grant another cap under that name"
    );
    // Without exports the name is free.
    let mut m = base();
    service(&mut m, "hello").grants.push(Grant::kernel("exporter", "log"));
    assert_eq!(errors(&m), Vec::<String>::new());
}

#[test]
fn the_exporter_cap_counts_towards_the_cap_set() {
    let message = error_after(|m| {
        let provider = service(m, "provider");
        provider.grants = (0..64).map(|i| Grant::kernel(format!("c{i}"), "console")).collect();
    });
    assert_eq!(
        message,
        "manifest: service `provider` has 65 grants, more than the 64 a cap set holds"
    );
}

const VERIFIER: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

/// A manifest with an auth section: `provider` brokes `console`.
fn with_auth() -> Manifest {
    let mut m = base();
    m.auth = Some(AuthConfig {
        accounts: vec![Account {
            name: "operator".into(),
            profile: "operator".into(),
            verifier: VERIFIER.into(),
        }],
        profiles: vec![
            Profile { name: "anonymous".into(), caps: vec![] },
            Profile { name: "operator".into(), caps: vec!["console".into()] },
        ],
        broker: "provider".into(),
        shell: "template".into(),
    });
    m
}

#[test]
fn a_valid_auth_section_passes() {
    assert_eq!(errors(&with_auth()), Vec::<String>::new());
}

#[test]
fn every_auth_rule_has_its_message() {
    let mut m = with_auth();
    let auth = m.auth.as_mut().unwrap();
    auth.broker = "nobody".into();
    auth.shell = "sh".into();
    auth.profiles.push(Profile { name: "operator".into(), caps: vec!["terminal".into()] });
    auth.accounts.push(Account {
        name: "Bad Name".into(),
        profile: "root".into(),
        verifier: "hunter2".into(),
    });
    assert_eq!(
        errors(&m),
        vec![
            "manifest: auth.broker `nobody` is not a service of this manifest",
            "manifest: auth.shell `sh` is not a binary of the boot package",
            "manifest: auth.profiles: profile name `operator` is empty or used twice",
            "manifest: auth.profiles.operator: cap `terminal` is given to every session by the broker; a profile may not name it",
            "manifest: auth.accounts: account name `Bad Name` is used twice or is not 1 to 32 of a-z 0-9 _ - starting with a letter or _ (nor \"anonymous\")",
            "manifest: auth.accounts.Bad Name: profile `root` is not in auth.profiles",
            "manifest: auth.accounts.Bad Name: verifier is not an Argon2id PHC string ($argon2id$...; make one with mkverifier)",
        ]
    );
}

#[test]
fn profile_caps_must_be_grants_of_the_broker() {
    let mut m = with_auth();
    m.auth.as_mut().unwrap().profiles[1].caps.push("spawner".into());
    assert_eq!(
        errors(&m),
        vec!["manifest: auth.profiles.operator: cap `spawner` is not a grant of the broker service `provider`"]
    );
}

#[test]
fn anonymous_is_not_an_account_name() {
    let mut m = with_auth();
    m.auth.as_mut().unwrap().accounts[0].name = "anonymous".into();
    assert_eq!(errors(&m).len(), 1);
}
