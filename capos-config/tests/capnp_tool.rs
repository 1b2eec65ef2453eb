//! The real `capnp` tool reads what `encode` writes: `capnp decode
//! schema/capos.capnp SystemManifest` prints the structure field by field
//! (a service's `resources` only when it sets any: otherwise the pointer is
//! null and the tool leaves the field out).
//! `tools/setup.sh` installs `capnp` (Debian's `capnproto`); without it the
//! test says so and passes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use capos_config::{
    encode, Grant, KernelParams, Manifest, Resources, RestartMode, RestartPolicy, Service,
};

fn capnp_decode(bytes: &[u8], flags: &[&str]) -> Option<String> {
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/capos.capnp");
    let mut child = match Command::new("capnp")
        // capnp warns when PWD (set by whoever ran cargo) is not the cwd.
        .env_remove("PWD")
        .arg("decode")
        .args(flags)
        .arg(&schema)
        .arg("SystemManifest")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "SKIPPED: the `capnp` tool is not installed ({error}); tools/setup.sh installs it"
            );
            return None;
        }
    };
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "capnp decode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

fn manifest() -> Manifest {
    let mut provider = Service::new("provider", "greeter");
    provider.args = vec!["--quiet".into()];
    provider.grants = vec![Grant::kernel("console", "console")];
    provider.exports = vec!["greeter".into()];
    provider.restart =
        RestartPolicy { mode: RestartMode::OnFailure, max_restarts: 5, backoff_ms: 100 };
    provider.resources =
        Resources { frames: 4096, kernel_bytes: 16 << 20, threads: 4, ..Resources::default() };
    let mut hello = Service::new("hello", "hello");
    hello.grants = vec![Grant::export("greeter", "provider", "greeter")];
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

#[test]
fn capnp_decode_reads_the_manifest() {
    let Some(text) = capnp_decode(&encode(&manifest()), &["--short"]) else { return };
    assert_eq!(
        text.trim_end(),
        "(version = 1, \
         kernel = (hostname = \"capos\", logLevel = \"info\", motd = \"Welcome to capOS\"), \
         services = [\
         (name = \"provider\", binary = \"greeter\", args = [\"--quiet\"], \
         grants = [(name = \"console\", source = (kernel = \"console\"))], \
         exports = [\"greeter\"], \
         restart = (mode = onFailure, maxRestarts = 5, backoffMs = 100), \
         resources = (frames = 4096, kernelBytes = 16777216, threads = 4, caps = 0, openCalls = 0)), \
         (name = \"hello\", binary = \"hello\", args = [], \
         grants = [(name = \"greeter\", source = (service = (service = \"provider\", export = \"greeter\")))], \
         exports = [], \
         restart = (mode = never, maxRestarts = 0, backoffMs = 0))])"
    );
}

#[test]
fn capnp_decode_pretty_prints_it() {
    let Some(text) = capnp_decode(&encode(&manifest()), &[]) else { return };
    let expected = r#"( version = 1,
  kernel = (
    hostname = "capos",
    logLevel = "info",
    motd = "Welcome to capOS" ),
  services = [
    ( name = "provider",
      binary = "greeter",
      args = ["--quiet"],
      grants = [
        ( name = "console",
          source = (kernel = "console") ) ],
      exports = ["greeter"],
      restart = (mode = onFailure, maxRestarts = 5, backoffMs = 100),
      resources = (
        frames = 4096,
        kernelBytes = 16777216,
        threads = 4,
        caps = 0,
        openCalls = 0 ) ),
    ( name = "hello",
      binary = "hello",
      args = [],
      grants = [
        ( name = "greeter",
          source = (
            service = (service = "provider", export = "greeter") ) ) ],
      exports = [],
      restart = (mode = never, maxRestarts = 0, backoffMs = 0) ) ] )"#;
    assert_eq!(text.trim_end(), expected);
}
