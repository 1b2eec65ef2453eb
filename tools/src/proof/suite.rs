//! Runs a proof file: its `prepare` command, its images (boot manifests through
//! `tools/manifest.sh`, ISOs through `tools/mkiso.sh`), then its runs or its script.
//!
//! Images are rebuilt on every invocation, so an image never lags behind the kernel, the
//! user programs or the proof file.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cli::FileCommand;
use super::file::{Image, ManifestSpec, ProofFile, ISO_DIR};
use super::runner::run;

/// How a proof file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SuiteError {
    /// Building an image or a prepare step failed: `proof NAME: FAIL: ...`.
    Build(String),
    /// A run or the script failed (it printed its own report).
    Failed,
}

/// Runs `file` as `command` asks; progress goes to stdout, failure details to stderr.
pub fn run_file(file: &ProofFile, command: &FileCommand) -> Result<(), SuiteError> {
    let runs: Vec<_> = match &command.only {
        Some(only) => {
            let runs: Vec<_> = file.runs.iter().filter(|r| &r.config.name == only).collect();
            if runs.is_empty() {
                return Err(SuiteError::Build(format!(
                    "proof {}: FAIL: no run named `{only}`",
                    file.name
                )));
            }
            runs
        }
        None => file.runs.iter().collect(),
    };
    let kernel = command.kernel.clone().unwrap_or_default();
    let env = environment(file, &kernel, &command.modules);
    let fail = |message: String| SuiteError::Build(format!("proof {}: FAIL: {message}", file.name));

    if let Some(prepare) = &file.prepare {
        shell(prepare, &env).map_err(|e| fail(format!("prepare: {e}")))?;
    }

    let wanted: Vec<&Image> = if file.script.is_some() {
        file.images.iter().collect()
    } else {
        file.images.iter().filter(|image| runs.iter().any(|r| r.image == image.name)).collect()
    };
    let mut built: HashMap<(PathBuf, bool), PathBuf> = HashMap::new();
    for image in wanted {
        println!("proof {}: image {} ({})", file.name, image.name, image.cmdline);
        let manifest = match &image.manifest {
            Some(spec) => Some(
                build_manifest(spec, &command.modules, &mut built)
                    .map_err(|e| fail(format!("image `{}`: {e}", image.name)))?,
            ),
            None => None,
        };
        let mut args: Vec<String> = vec![
            kernel.display().to_string(),
            image.iso.display().to_string(),
            image.cmdline.clone(),
        ];
        args.extend(command.modules.iter().map(|m| m.display().to_string()));
        args.extend(manifest.iter().map(|m| m.display().to_string()));
        program("tools/mkiso.sh", &args, &env)
            .map_err(|e| fail(format!("image `{}`: tools/mkiso.sh: {e}", image.name)))?;
    }

    if let Some(script) = &file.script {
        return match shell(script, &env) {
            Ok(()) => Ok(()),
            Err(e) => {
                println!("proof {}: FAIL: script: {e}", file.name);
                Err(SuiteError::Failed)
            }
        };
    }

    for proof_run in runs {
        if let Some(note) = &proof_run.note {
            println!("==> {note}");
        }
        let report = run(&proof_run.config, &mut |line| println!("{line}"));
        if !report.passed() {
            for line in report.failure_details() {
                eprintln!("{line}");
            }
            println!("{}", report.verdict());
            return Err(SuiteError::Failed);
        }
        println!("{}", report.verdict());
        if let Some(show) = &proof_run.show {
            let log = proof_run.config.out_dir.join("com1.log");
            let text = fs::read_to_string(&log)
                .map_err(|e| fail(format!("cannot read {}: {e}", log.display())))?;
            for line in text.lines().filter(|line| show.is_match(line)) {
                match &proof_run.show_as {
                    Some(with) => println!("{}", show.replace(line, regex::NoExpand(with))),
                    None => println!("{line}"),
                }
            }
        }
    }
    Ok(())
}

/// The environment of `prepare` and `script`: the file's variables and the build.
fn environment(file: &ProofFile, kernel: &Path, modules: &[PathBuf]) -> Vec<(String, String)> {
    let mut env = file.vars.clone();
    let harness = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    env.push(("HARNESS".into(), harness));
    env.push(("ISO_DIR".into(), Path::new(ISO_DIR).join(&file.name).display().to_string()));
    env.push(("KERNEL".into(), kernel.display().to_string()));
    let list: Vec<String> = modules.iter().map(|m| m.display().to_string()).collect();
    env.push(("MODULES".into(), list.join(" ")));
    env.push(("BINARIES".into(), binaries(modules)));
    env
}

/// `name,name,...` of the modules: what a manifest may name as a binary.
fn binaries(modules: &[PathBuf]) -> String {
    let names: Vec<String> = modules
        .iter()
        .filter_map(|m| m.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.join(",")
}

fn build_manifest(
    spec: &ManifestSpec,
    modules: &[PathBuf],
    built: &mut HashMap<(PathBuf, bool), PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(dir) = spec.out.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // The manifest as built, before any damage; one build per system file and overlay.
    let key = (spec.source.clone(), spec.overlay);
    let clean = match built.get(&key) {
        Some(clean) => clean.clone(),
        None => {
            let clean = spec.out.with_file_name("built.bin");
            let mut args = Vec::new();
            if !spec.overlay {
                args.push("--no-overlay".to_string());
            }
            args.push(spec.source.display().to_string());
            args.push(clean.display().to_string());
            args.push(binaries(modules));
            program("tools/manifest.sh", &args, &[])
                .map_err(|e| format!("tools/manifest.sh: {e}"))?;
            built.insert(key, clean.clone());
            clean
        }
    };
    fs::copy(&clean, &spec.out).map_err(|e| format!("cannot copy the manifest: {e}"))?;
    for text in &spec.decoded_contains {
        let decoded = decode(&spec.out)?;
        if !decoded.contains(text.as_str()) {
            return Err(format!("capnp decode of {} does not show {text}", spec.out.display()));
        }
    }
    if spec.truncate.is_some() || spec.flip.is_some() {
        let mut bytes =
            fs::read(&spec.out).map_err(|e| format!("cannot read {}: {e}", spec.out.display()))?;
        if let Some(len) = spec.truncate {
            bytes.truncate(len);
        }
        if let Some((index, mask)) = spec.flip {
            let len = bytes.len();
            let byte = bytes
                .get_mut(index)
                .ok_or_else(|| format!("flip: byte {index} is past the manifest's {len} bytes"))?;
            *byte ^= mask;
        }
        fs::write(&spec.out, bytes)
            .map_err(|e| format!("cannot write {}: {e}", spec.out.display()))?;
    }
    Ok(spec.out.clone())
}

/// `capnp decode --short schema/capos.capnp SystemManifest < manifest`.
fn decode(manifest: &Path) -> Result<String, String> {
    let input =
        fs::File::open(manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let output = Command::new("capnp")
        .args(["decode", "--short", "schema/capos.capnp", "SystemManifest"])
        .stdin(input)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run capnp: {e}"))?;
    if !output.status.success() {
        return Err(format!("capnp decode of {} failed ({})", manifest.display(), output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn shell(command: &str, env: &[(String, String)]) -> Result<(), String> {
    program("bash", &["-euo".into(), "pipefail".into(), "-c".into(), command.into()], env)
}

fn program(path: &str, args: &[String], env: &[(String, String)]) -> Result<(), String> {
    let status = Command::new(path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .status()
        .map_err(|e| format!("cannot run {path}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exited with {status}"))
    }
}
