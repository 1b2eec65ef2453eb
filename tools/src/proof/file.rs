//! Proof files: one QEMU proof declared in `tools/proofs/NAME.toml`.
//!
//! A file names the images the proof boots (a kernel command line, optionally a boot
//! manifest built from a system file), the machine, the fail lines and the ordered steps of
//! one run, or of several `[[run]]`s that inherit those settings. A proof that needs a
//! script (`script = "..."`) has its images built here and the script run in their stead.
//! `docs/src/testing.md` describes the format; [`parse`] reads it into a [`ProofFile`]
//! whose runs are ordinary [`ProofConfig`]s.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::cli::{Firmware, MachineType, ProofConfig, Step, Stream, DEFAULT_MEM, DEFAULT_TIMEOUT};
use super::escape::decode_escapes;
use super::pattern::Pattern;
use super::status::ExitExpect;

/// Where proof images are written: `target/iso/PROOF/IMAGE.iso`.
pub const ISO_DIR: &str = "target/iso";
/// Where the manifests of proof images are written: `target/manifests/PROOF/IMAGE/manifest.bin`.
pub const MANIFEST_DIR: &str = "target/manifests";
/// Where each run writes its logs: `target/proofs/RUN`.
pub const OUT_DIR: &str = "target/proofs";

/// A proof file that could not be read; shows as `FILE: MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for FileError {}

/// One image a proof boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    /// The kernel command line.
    pub cmdline: String,
    /// The boot manifest packed with it, if any.
    pub manifest: Option<ManifestSpec>,
    /// `target/iso/PROOF/NAME.iso`.
    pub iso: PathBuf,
}

/// How the `manifest.bin` of an image is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestSpec {
    /// The system file (`system.cue` or one under `tools/proofs/manifests/`).
    pub source: PathBuf,
    /// Whether `SOURCE.local.cue`-style overlays are read (`tools/manifest.sh` without
    /// `--no-overlay`).
    pub overlay: bool,
    /// Texts `capnp decode --short` of the manifest must contain.
    pub decoded_contains: Vec<String>,
    /// Keep only the first N bytes (a damaged manifest).
    pub truncate: Option<usize>,
    /// XOR one byte with a mask (a damaged manifest).
    pub flip: Option<(usize, u8)>,
    /// `target/manifests/PROOF/IMAGE/manifest.bin`.
    pub out: PathBuf,
}

/// One boot of one image, checked by the harness.
#[derive(Clone, Debug)]
pub struct Run {
    /// Name of the image booted.
    pub image: String,
    /// What the harness gets; `config.image` is the ISO.
    pub config: ProofConfig,
    /// After a pass, COM1 lines matching this are printed (figures a proof reports).
    pub show: Option<Regex>,
    /// The matched part of a shown line is replaced with this (`show-as`).
    pub show_as: Option<String>,
    /// Printed before the run.
    pub note: Option<String>,
}

/// A parsed proof file.
#[derive(Clone, Debug)]
pub struct ProofFile {
    /// The file's stem: `make run-NAME`.
    pub name: String,
    pub path: PathBuf,
    /// In declaration order: the top-level image first, then `[images.*]` by name.
    pub images: Vec<Image>,
    /// Shell command run first (with the variables in its environment).
    pub prepare: Option<String>,
    /// Shell command run after the images are built, instead of runs.
    pub script: Option<String>,
    pub runs: Vec<Run>,
    /// `[vars]`, expanded, in name order.
    pub vars: Vec<(String, String)>,
}

impl ProofFile {
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|image| image.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    cmdline: Option<String>,
    manifest: Option<String>,
    overlay: Option<bool>,
    decoded_contains: Option<Vec<String>>,
    images: Option<BTreeMap<String, RawImage>>,
    image: Option<String>,
    vars: Option<BTreeMap<String, RawVar>>,
    prepare: Option<String>,
    script: Option<String>,
    machine: Option<String>,
    smp: Option<i64>,
    mem: Option<String>,
    firmware: Option<String>,
    timeout: Option<Secs>,
    qemu_args: Option<Vec<String>>,
    fail_on: Option<Vec<String>>,
    allow_fail_line: Option<Vec<String>>,
    steps: Option<Vec<toml::Table>>,
    show: Option<String>,
    show_as: Option<String>,
    note: Option<String>,
    run: Option<Vec<RawRun>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    cmdline: String,
    manifest: Option<String>,
    overlay: Option<bool>,
    decoded_contains: Option<Vec<String>>,
    truncate: Option<usize>,
    flip: Option<RawFlip>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlip {
    byte: usize,
    mask: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRun {
    name: String,
    image: Option<String>,
    machine: Option<String>,
    smp: Option<i64>,
    mem: Option<String>,
    firmware: Option<String>,
    timeout: Option<Secs>,
    qemu_args: Option<Vec<String>>,
    fail_on: Option<Vec<String>>,
    allow_fail_line: Option<Vec<String>>,
    steps: Option<Vec<toml::Table>>,
    show: Option<String>,
    show_as: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVar {
    Text(String),
    Repeat(RawRepeat),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepeat {
    repeat: String,
    times: usize,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Secs {
    Int(i64),
    Float(f64),
}

impl Secs {
    fn get(self) -> f64 {
        match self {
            Secs::Int(n) => n as f64,
            Secs::Float(f) => f,
        }
    }
}

/// The settings a run takes from the file or overrides.
struct Settings<'a> {
    image: Option<&'a String>,
    machine: Option<&'a String>,
    smp: Option<i64>,
    mem: Option<&'a String>,
    firmware: Option<&'a String>,
    timeout: Option<Secs>,
    qemu_args: Option<&'a Vec<String>>,
    fail_on: Option<&'a Vec<String>>,
    allow_fail_line: Option<&'a Vec<String>>,
    steps: Option<&'a Vec<toml::Table>>,
    show: Option<&'a String>,
    show_as: Option<&'a String>,
    note: Option<&'a String>,
}

impl<'a> Settings<'a> {
    /// `self` where given, `base` otherwise.
    fn over(self, base: &Settings<'a>) -> Settings<'a> {
        Settings {
            image: self.image.or(base.image),
            machine: self.machine.or(base.machine),
            smp: self.smp.or(base.smp),
            mem: self.mem.or(base.mem),
            firmware: self.firmware.or(base.firmware),
            timeout: self.timeout.or(base.timeout),
            qemu_args: self.qemu_args.or(base.qemu_args),
            fail_on: self.fail_on.or(base.fail_on),
            allow_fail_line: self.allow_fail_line.or(base.allow_fail_line),
            steps: self.steps.or(base.steps),
            show: self.show.or(base.show),
            show_as: self.show_as.or(base.show_as),
            note: self.note.or(base.note),
        }
    }
}

/// Reads and checks the proof file at `path`.
pub fn load(path: &Path) -> Result<ProofFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        file: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parses the text of a proof file; `path` names it in errors and gives the proof's name.
pub fn parse(path: &Path, text: &str) -> Result<ProofFile, FileError> {
    let fail = |message: String| FileError { file: path.to_path_buf(), message };
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .map(str::to_string)
        .ok_or_else(|| fail("the file name is not a proof name".into()))?;
    check_name(&name).map_err(|e| fail(format!("file name: {e}")))?;
    let raw: RawFile = toml::from_str(text).map_err(|e| fail(toml_message(text, &e)))?;

    let vars = expand_vars(raw.vars.as_ref()).map_err(fail)?;
    let lookup: BTreeMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sub = |what: &str, text: &str| -> Result<String, FileError> {
        substitute(text, &lookup).map_err(|e| fail(format!("{what}: {e}")))
    };

    // Images: the top-level one (named after the proof), then [images.*].
    let mut images = Vec::new();
    let manifest_spec = |image: &str,
                         source: Option<&String>,
                         overlay: Option<bool>,
                         decoded: Option<&Vec<String>>,
                         truncate: Option<usize>,
                         flip: Option<&RawFlip>|
     -> Result<Option<ManifestSpec>, FileError> {
        let Some(source) = source else {
            if overlay.is_some() || decoded.is_some() || truncate.is_some() || flip.is_some() {
                return Err(fail(format!(
                    "image `{image}`: overlay, decoded-contains, truncate and flip need a manifest"
                )));
            }
            return Ok(None);
        };
        if source.is_empty() {
            return Err(fail(format!("image `{image}`: manifest must not be empty")));
        }
        Ok(Some(ManifestSpec {
            source: PathBuf::from(source),
            overlay: overlay.unwrap_or(false),
            decoded_contains: decoded.cloned().unwrap_or_default(),
            truncate,
            flip: flip.map(|f| (f.byte, f.mask)),
            out: Path::new(MANIFEST_DIR).join(&name).join(image).join("manifest.bin"),
        }))
    };
    let iso = |image: &str| Path::new(ISO_DIR).join(&name).join(format!("{image}.iso"));
    if let Some(cmdline) = &raw.cmdline {
        images.push(Image {
            name: name.clone(),
            cmdline: sub("cmdline", cmdline)?,
            manifest: manifest_spec(
                &name,
                raw.manifest.as_ref(),
                raw.overlay,
                raw.decoded_contains.as_ref(),
                None,
                None,
            )?,
            iso: iso(&name),
        });
    } else if raw.manifest.is_some() || raw.overlay.is_some() || raw.decoded_contains.is_some() {
        return Err(fail("manifest, overlay and decoded-contains need a cmdline".into()));
    }
    for (image, spec) in raw.images.iter().flatten() {
        check_name(image).map_err(|e| fail(format!("images: {e}")))?;
        if images.iter().any(|i: &Image| &i.name == image) {
            return Err(fail(format!("images: `{image}` is declared twice")));
        }
        images.push(Image {
            name: image.clone(),
            cmdline: sub(&format!("image `{image}`: cmdline"), &spec.cmdline)?,
            manifest: manifest_spec(
                image,
                spec.manifest.as_ref(),
                spec.overlay,
                spec.decoded_contains.as_ref(),
                spec.truncate,
                spec.flip.as_ref(),
            )?,
            iso: iso(image),
        });
    }
    if images.is_empty() {
        return Err(fail("no image: give a cmdline or [images.NAME]".into()));
    }

    let base = Settings {
        image: raw.image.as_ref(),
        machine: raw.machine.as_ref(),
        smp: raw.smp,
        mem: raw.mem.as_ref(),
        firmware: raw.firmware.as_ref(),
        timeout: raw.timeout,
        qemu_args: raw.qemu_args.as_ref(),
        fail_on: raw.fail_on.as_ref(),
        allow_fail_line: raw.allow_fail_line.as_ref(),
        steps: raw.steps.as_ref(),
        show: raw.show.as_ref(),
        show_as: raw.show_as.as_ref(),
        note: raw.note.as_ref(),
    };
    let default_image = if raw.cmdline.is_some() {
        Some(name.clone())
    } else if images.len() == 1 {
        Some(images[0].name.clone())
    } else {
        None
    };

    let mut runs = Vec::new();
    if let Some(script) = &raw.script {
        if raw.run.is_some() || raw.steps.is_some() {
            return Err(fail("script: a proof run by a script has no steps and no [[run]]".into()));
        }
        if script.trim().is_empty() {
            return Err(fail("script must not be empty".into()));
        }
    } else {
        let raw_runs: Vec<(String, Settings)> = match &raw.run {
            None => vec![(name.clone(), base.over(&empty_settings()))],
            Some(list) if list.is_empty() => {
                return Err(fail("run: the list is empty".into()));
            }
            Some(list) => list
                .iter()
                .map(|r| {
                    let own = Settings {
                        image: r.image.as_ref(),
                        machine: r.machine.as_ref(),
                        smp: r.smp,
                        mem: r.mem.as_ref(),
                        firmware: r.firmware.as_ref(),
                        timeout: r.timeout,
                        qemu_args: r.qemu_args.as_ref(),
                        fail_on: r.fail_on.as_ref(),
                        allow_fail_line: r.allow_fail_line.as_ref(),
                        steps: r.steps.as_ref(),
                        show: r.show.as_ref(),
                        show_as: r.show_as.as_ref(),
                        note: r.note.as_ref(),
                    };
                    (r.name.clone(), own.over(&base))
                })
                .collect(),
        };
        let mut seen = HashSet::new();
        for (run_name, settings) in raw_runs {
            let context =
                if raw.run.is_some() { format!("run `{run_name}`: ") } else { String::new() };
            let err = |m: String| fail(format!("{context}{m}"));
            check_name(&run_name).map_err(|e| err(format!("name: {e}")))?;
            if !seen.insert(run_name.clone()) {
                return Err(err("the name is used twice".into()));
            }
            let image = match settings.image.cloned().or_else(|| default_image.clone()) {
                Some(image) => image,
                None => return Err(err("image: which one? (the proof has several)".into())),
            };
            let Some(iso) = images.iter().find(|i| i.name == image).map(|i| i.iso.clone()) else {
                return Err(err(format!("image: no image `{image}`")));
            };
            let config = run_config(&run_name, iso, &settings, &lookup).map_err(err)?;
            let show = match settings.show {
                Some(text) => Some(Regex::new(text).map_err(|e| err(format!("show: {e}")))?),
                None => None,
            };
            if settings.show_as.is_some() && show.is_none() {
                return Err(err("show-as needs show".into()));
            }
            let show_as = match settings.show_as {
                Some(text) => Some(sub("show-as", text)?),
                None => None,
            };
            runs.push(Run { image, config, show, show_as, note: settings.note.cloned() });
        }
    }

    Ok(ProofFile {
        name,
        path: path.to_path_buf(),
        images,
        prepare: raw.prepare,
        script: raw.script,
        runs,
        vars,
    })
}

fn empty_settings<'a>() -> Settings<'a> {
    Settings {
        image: None,
        machine: None,
        smp: None,
        mem: None,
        firmware: None,
        timeout: None,
        qemu_args: None,
        fail_on: None,
        allow_fail_line: None,
        steps: None,
        show: None,
        show_as: None,
        note: None,
    }
}

fn run_config(
    name: &str,
    iso: PathBuf,
    s: &Settings,
    vars: &BTreeMap<&str, &str>,
) -> Result<ProofConfig, String> {
    let machine = match s.machine.map(String::as_str) {
        None | Some("q35") => MachineType::Q35,
        Some("pc") => MachineType::Pc,
        Some(other) => return Err(format!("machine: `{other}` (q35 or pc)")),
    };
    let firmware = match s.firmware.map(String::as_str) {
        None | Some("bios") => Firmware::Bios,
        Some("uefi") => Firmware::Uefi,
        Some(other) => return Err(format!("firmware: `{other}` (bios or uefi)")),
    };
    let smp = match s.smp {
        None => 1,
        Some(n) if (1..=255).contains(&n) => n as u32,
        Some(n) => return Err(format!("smp: {n} (1 to 255)")),
    };
    let mem = match s.mem {
        None => DEFAULT_MEM.to_string(),
        Some(mem) if valid_mem(mem) => mem.clone(),
        Some(mem) => return Err(format!("mem: `{mem}` (e.g. 128M or 1G)")),
    };
    let timeout = match s.timeout {
        None => DEFAULT_TIMEOUT,
        Some(secs) => secs_duration(secs).map_err(|e| format!("timeout: {e}"))?,
    };
    let qemu_args = s.qemu_args.cloned().unwrap_or_default();
    super::cli::check_no_kvm(&qemu_args).map_err(|e| format!("qemu-args: {}", e.0))?;
    let patterns = |what: &str, list: Option<&Vec<String>>| -> Result<Vec<Pattern>, String> {
        list.into_iter()
            .flatten()
            .map(|text| {
                let text = substitute(text, vars).map_err(|e| format!("{what}: {e}"))?;
                Pattern::substring(&text).map_err(|e| format!("{what}: {e}"))
            })
            .collect()
    };
    let fail_on = patterns("fail-on", s.fail_on)?;
    let allow_fail = patterns("allow-fail-line", s.allow_fail_line)?;
    let Some(raw_steps) = s.steps else {
        return Err("steps: missing".into());
    };
    if raw_steps.is_empty() {
        return Err("steps: the list is empty".into());
    }
    let mut steps = Vec::new();
    for (i, table) in raw_steps.iter().enumerate() {
        let step = parse_step(table, vars).map_err(|e| format!("step {}: {e}", i + 1))?;
        if matches!(steps.last(), Some(Step::Exit { .. })) {
            return Err(format!("step {}: exit must be the last step", i + 1));
        }
        steps.push(step);
    }
    if !matches!(steps.last(), Some(Step::Exit { .. })) {
        steps.push(Step::Exit { expect: ExitExpect::Success, within: None });
    }
    Ok(ProofConfig {
        name: name.to_string(),
        image: iso,
        firmware,
        smp,
        mem,
        machine,
        timeout,
        out_dir: Path::new(OUT_DIR).join(name),
        qemu_args,
        fail_on,
        allow_fail,
        steps,
    })
}

const STEP_KINDS: [&str; 4] = ["expect", "expect-log", "send", "exit"];

fn parse_step(table: &toml::Table, vars: &BTreeMap<&str, &str>) -> Result<Step, String> {
    for key in table.keys() {
        if !STEP_KINDS.contains(&key.as_str()) && key != "within" {
            return Err(format!(
                "unknown key `{key}` (a step is one of expect, expect-log, send, exit, with an \
                 optional within)"
            ));
        }
    }
    let kinds: Vec<&str> =
        STEP_KINDS.iter().copied().filter(|kind| table.contains_key(*kind)).collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => return Err("empty step (one of expect, expect-log, send, exit)".into()),
        more => return Err(format!("one step, one action: {} given together", more.join(", "))),
    };
    let text = match &table[kind] {
        toml::Value::String(text) => substitute(text, vars)?,
        other => return Err(format!("{kind}: a string, not {}", other.type_str())),
    };
    let within = match table.get("within") {
        None => None,
        Some(_) if kind == "send" => return Err("within: a send does not wait".into()),
        Some(toml::Value::Integer(n)) => Some(secs_duration(Secs::Int(*n))),
        Some(toml::Value::Float(f)) => Some(secs_duration(Secs::Float(*f))),
        Some(other) => return Err(format!("within: seconds, not {}", other.type_str())),
    }
    .transpose()
    .map_err(|e| format!("within: {e}"))?;
    Ok(match kind {
        "expect" | "expect-log" => Step::Expect {
            stream: if kind == "expect" { Stream::Com1 } else { Stream::Com2 },
            pattern: Pattern::line(&text).map_err(|e| format!("{kind}: {e}"))?,
            within,
        },
        "send" => Step::Send { bytes: decode_escapes(&text).map_err(|e| format!("send: {e}"))? },
        _ => Step::Exit {
            expect: ExitExpect::parse(&text).map_err(|_| {
                format!("exit: `{text}` (success, failure, none or a guest code 0-127)")
            })?,
            within,
        },
    })
}

fn secs_duration(secs: Secs) -> Result<Duration, String> {
    let value = secs.get();
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(format!("{value} (seconds, more than 0)"))
    }
}

fn valid_mem(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && text.len() - digits.len() <= 1
        && digits.bytes().any(|b| b != b'0')
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` (letters, digits, '.', '_', '-'; not starting with '.')"))
    }
}

fn expand_vars(raw: Option<&BTreeMap<String, RawVar>>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in raw.into_iter().flatten() {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(format!("vars: `{name}` (letters, digits and '_')"));
        }
        let text = match value {
            RawVar::Text(text) => text.clone(),
            RawVar::Repeat(RawRepeat { repeat, times }) => {
                if *times > 1 << 20 {
                    return Err(format!("vars: `{name}`: {times} times is too many"));
                }
                repeat.repeat(*times)
            }
        };
        out.push((name.clone(), text));
    }
    Ok(out)
}

/// Replaces `${NAME}` by the variable NAME; an unknown name is an error.
pub fn substitute(text: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("`${` without a closing `}`".into());
        };
        let name = &after[..end];
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => return Err(format!("unknown variable `${{{name}}}` (declare it in [vars])")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `line N: MESSAGE` for a TOML or schema error.
fn toml_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> ProofFile {
        match parse(Path::new("tools/proofs/hello.toml"), text) {
            Ok(file) => file,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(Path::new("tools/proofs/hello.toml"), text) {
            Ok(file) => panic!("expected an error, got {file:?}"),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = r#"
# The first user program.
cmdline = "harness init=hello:console,log"
smp = 2
mem = "256M"
timeout = 2.5
qemu-args = ["-cpu", "max"]
fail-on = ["hello: FAILED", "${secret}"]
allow-fail-line = ["re:EXCEPTION: #PF.*"]
steps = [
  { expect = "init: starting hello with 2 cap(s)", within = 5 },
  { send = 'hi ${long}\r' },
  { expect-log = 're:.* info cpu: SMEP on, SMAP on' },
  { exit = "success", within = 60 },
]

[vars]
secret = "s3cret"
long = { repeat = "ab", times = 3 }
"#;

    #[test]
    fn good_file() {
        let f = ok(GOOD);
        assert_eq!(f.name, "hello");
        assert_eq!(f.images.len(), 1);
        assert_eq!(f.images[0].cmdline, "harness init=hello:console,log");
        assert_eq!(f.images[0].iso, PathBuf::from("target/iso/hello/hello.iso"));
        assert!(f.images[0].manifest.is_none());
        assert_eq!(f.runs.len(), 1);
        let c = &f.runs[0].config;
        assert_eq!(c.name, "hello");
        assert_eq!(c.image, PathBuf::from("target/iso/hello/hello.iso"));
        assert_eq!(c.out_dir, PathBuf::from("target/proofs/hello"));
        assert_eq!((c.smp, c.mem.as_str()), (2, "256M"));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.qemu_args, ["-cpu", "max"]);
        let fails: Vec<String> = c.fail_on.iter().map(|p| p.to_string()).collect();
        assert_eq!(fails, ["hello: FAILED", "s3cret"]);
        assert_eq!(c.allow_fail[0].to_string(), "re:EXCEPTION: #PF.*");
        let shown: Vec<String> = c.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            shown,
            [
                "expect com1 \"init: starting hello with 2 cap(s)\"",
                "send \"hi ababab\\r\"",
                "expect com2 \"re:.* info cpu: SMEP on, SMAP on\"",
                "exit success",
            ]
        );
        assert!(
            matches!(c.steps[0], Step::Expect { within: Some(d), .. } if d == Duration::from_secs(5))
        );
        assert!(
            matches!(c.steps[3], Step::Exit { within: Some(d), .. } if d == Duration::from_secs(60))
        );
        assert_eq!(f.vars, [("long".into(), "ababab".into()), ("secret".into(), "s3cret".into())]);
    }

    #[test]
    fn defaults_and_implied_exit() {
        let f = ok("cmdline = \"harness\"\nsteps = [{ expect = \"capOS kernel ready\" }]\n");
        let c = &f.runs[0].config;
        assert_eq!(
            (c.smp, c.mem.as_str(), c.machine, c.firmware),
            (1, "128M", MachineType::Q35, Firmware::Bios)
        );
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(matches!(
            c.steps.last(),
            Some(Step::Exit { expect: ExitExpect::Success, within: None })
        ));
        assert_eq!(c.steps.len(), 2);
    }

    #[test]
    fn runs_inherit_and_override() {
        let f = ok(r#"
smp = 2
mem = "256M"
fail-on = ["panic"]
steps = [{ expect = "a" }]
[images.one]
cmdline = "harness a"
[images.two]
cmdline = "harness b"
manifest = "tools/proofs/manifests/services.cue"
decoded-contains = ["greeter"]
truncate = 100
flip = { byte = 4, mask = 0x80 }
[[run]]
name = "first"
image = "one"
show = "^sched:"
[[run]]
name = "second"
image = "two"
smp = 1
steps = [{ expect = "b" }, { exit = "failure" }]
"#);
        assert_eq!(f.images.len(), 2);
        let two = f.image("two").unwrap();
        let m = two.manifest.as_ref().unwrap();
        assert_eq!(m.out, PathBuf::from("target/manifests/hello/two/manifest.bin"));
        assert_eq!((m.truncate, m.flip, m.overlay), (Some(100), Some((4, 0x80)), false));
        assert_eq!(m.decoded_contains, ["greeter"]);
        assert_eq!(f.runs.len(), 2);
        let (a, b) = (&f.runs[0], &f.runs[1]);
        assert_eq!((a.config.smp, b.config.smp), (2, 1));
        assert_eq!(b.config.mem, "256M");
        assert_eq!(b.config.fail_on.len(), 1);
        assert_eq!(a.config.image, PathBuf::from("target/iso/hello/one.iso"));
        assert_eq!(b.config.out_dir, PathBuf::from("target/proofs/second"));
        assert!(a.show.as_ref().unwrap().is_match("sched: x"));
        assert_eq!(b.config.steps.len(), 2);
        assert!(matches!(b.config.steps[1], Step::Exit { expect: ExitExpect::Failure, .. }));
    }

    #[test]
    fn shown_lines_and_default_image() {
        let f = ok(r#"
image = "b"
steps = [{ expect = "x" }]
show = '^sched: scale: '
[images.a]
cmdline = "harness a"
[images.b]
cmdline = "harness ${caps}"
[vars]
caps = "init=scale:console"
[[run]]
name = "one"
show-as = "bench: scale, 1 CPU(s): "
[[run]]
name = "two"
image = "a"
"#);
        assert_eq!(f.image("b").unwrap().cmdline, "harness init=scale:console");
        let (one, two) = (&f.runs[0], &f.runs[1]);
        assert_eq!((one.image.as_str(), two.image.as_str()), ("b", "a"));
        let show = one.show.as_ref().unwrap();
        let with = one.show_as.as_deref().unwrap();
        assert_eq!(
            show.replace("sched: scale: 9 Mcycles", regex::NoExpand(with)),
            "bench: scale, 1 CPU(s): 9 Mcycles"
        );
        assert!(two.show_as.is_none());
        assert_eq!(
            err("cmdline = 'h'\nsteps = [{ expect = 'a' }]\nshow-as = 'x'\n"),
            "tools/proofs/hello.toml: show-as needs show"
        );
    }

    #[test]
    fn script_proof() {
        let f = ok("script = 'tools/proofs/faults.sh \"$HARNESS\" \"$ISO_DIR\"'\n[images.panic]\ncmdline = \"harness test=panic\"\n");
        assert!(f.runs.is_empty());
        assert_eq!(f.images[0].iso, PathBuf::from("target/iso/hello/panic.iso"));
        assert!(err("script = 'x'\ncmdline = 'harness'\nsteps = [{ expect = 'a' }]\n")
            .ends_with("script: a proof run by a script has no steps and no [[run]]"));
    }

    #[test]
    fn unknown_step_key_is_named() {
        let text = GOOD.replace("{ expect-log =", "{ expct =");
        assert_eq!(
            err(&text),
            "tools/proofs/hello.toml: step 3: unknown key `expct` (a step is one of expect, \
             expect-log, send, exit, with an optional within)"
        );
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let text = GOOD.replace("smp = 2", "smpp = 2");
        let e = err(&text);
        assert!(e.starts_with("tools/proofs/hello.toml: line 4: unknown field `smpp`"), "{e}");
    }

    #[test]
    fn bad_exit() {
        let text = GOOD.replace("exit = \"success\"", "exit = \"maybe\"");
        assert_eq!(
            err(&text),
            "tools/proofs/hello.toml: step 4: exit: `maybe` (success, failure, none or a guest \
             code 0-127)"
        );
        let text = GOOD.replace("{ send = 'hi ${long}\\r' }", "{ exit = \"none\" }");
        assert_eq!(err(&text), "tools/proofs/hello.toml: step 3: exit must be the last step");
        let text = GOOD.replace("exit = \"success\"", "exit = 200");
        assert_eq!(err(&text), "tools/proofs/hello.toml: step 4: exit: a string, not integer");
    }

    #[test]
    fn empty_and_missing_steps() {
        assert_eq!(
            err("cmdline = 'harness'\nsteps = []\n"),
            "tools/proofs/hello.toml: steps: the list is empty"
        );
        assert_eq!(err("cmdline = 'harness'\n"), "tools/proofs/hello.toml: steps: missing");
        assert_eq!(
            err("cmdline = 'harness'\nsteps = [{}]\n"),
            "tools/proofs/hello.toml: step 1: empty step (one of expect, expect-log, send, exit)"
        );
        assert_eq!(
            err("cmdline = 'harness'\nsteps = [{ expect = 'a', send = 'b' }]\n"),
            "tools/proofs/hello.toml: step 1: one step, one action: expect, send given together"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let base = "cmdline = 'harness'\nsteps = [{ expect = 'a' }]\n";
        let e = |extra: &str| err(&format!("{extra}\n{base}"));
        assert_eq!(e("smp = 0"), "tools/proofs/hello.toml: smp: 0 (1 to 255)");
        assert_eq!(e("mem = 'lots'"), "tools/proofs/hello.toml: mem: `lots` (e.g. 128M or 1G)");
        assert_eq!(
            e("machine = 'microvm'"),
            "tools/proofs/hello.toml: machine: `microvm` (q35 or pc)"
        );
        assert_eq!(
            e("firmware = 'coreboot'"),
            "tools/proofs/hello.toml: firmware: `coreboot` (bios or uefi)"
        );
        assert!(e("timeout = 0").starts_with("tools/proofs/hello.toml: timeout: 0"));
        assert!(e("qemu-args = ['-enable-kvm']").ends_with("proofs run under TCG, never KVM"));
        assert!(
            e("fail-on = ['re:(']").starts_with("tools/proofs/hello.toml: fail-on: invalid regex")
        );
        assert!(e("smp = 'two'").starts_with("tools/proofs/hello.toml: line 1: invalid type"));
        assert_eq!(
            err("cmdline = 'harness'\nsteps = [{ send = 'a\\q' }]\n"),
            "tools/proofs/hello.toml: step 1: send: unknown escape \\q"
        );
        assert_eq!(
            err("cmdline = 'harness'\nsteps = [{ send = 'a', within = 3 }]\n"),
            "tools/proofs/hello.toml: step 1: within: a send does not wait"
        );
        assert_eq!(
            err("cmdline = 'harness'\nsteps = [{ expect = '${nope}' }]\n"),
            "tools/proofs/hello.toml: step 1: unknown variable `${nope}` (declare it in [vars])"
        );
    }

    #[test]
    fn images_and_runs_must_agree() {
        assert_eq!(
            err("steps = [{ expect = 'a' }]\n"),
            "tools/proofs/hello.toml: no image: give a cmdline or [images.NAME]"
        );
        let two = "[images.a]\ncmdline = 'x'\n[images.b]\ncmdline = 'y'\n";
        assert_eq!(
            err(&format!("steps = [{{ expect = 'a' }}]\n{two}")),
            "tools/proofs/hello.toml: image: which one? (the proof has several)"
        );
        assert_eq!(
            err(&format!("steps = [{{ expect = 'a' }}]\n{two}[[run]]\nname = 'r'\nimage = 'c'\n")),
            "tools/proofs/hello.toml: run `r`: image: no image `c`"
        );
        assert_eq!(
            err(&format!("steps = [{{ expect = 'a' }}]\nimage = 'a'\n{two}[[run]]\nname = 'r'\n[[run]]\nname = 'r'\n")),
            "tools/proofs/hello.toml: run `r`: the name is used twice"
        );
        assert_eq!(
            err("cmdline = 'h'\nsteps = [{ expect = 'a' }]\n[[run]]\nname = 'r'\nstep = []\n"),
            "tools/proofs/hello.toml: line 5: unknown field `step`, expected one of `name`, `image`, `machine`, `smp`, `mem`, `firmware`, `timeout`, `qemu-args`, `fail-on`, `allow-fail-line`, `steps`, `show`, `show-as`, `note`"
        );
    }
}
