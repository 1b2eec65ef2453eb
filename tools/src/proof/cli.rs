//! Command-line parsing of `qemu-proof`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::escape::decode_escapes;
use super::pattern::{quote, Pattern};
use super::status::ExitExpect;

/// The usage text printed by `--help` and after usage errors.
pub const USAGE: &str = "\
usage: qemu-proof --name NAME --image PATH [options] [steps]
       qemu-proof --proof FILE --kernel ELF [--module PATH]... [--run NAME]
       qemu-proof --proof FILE --check

Boots a capOS image in QEMU (TCG), watches COM1 and COM2 and runs the steps in order.

options:
  --name NAME                proof name (letters, digits, '.', '_', '-'); names the output dir
  --image PATH               image to boot: *.iso as a CD-ROM, anything else as a raw disk
  --firmware bios|uefi       default bios (SeaBIOS); uefi uses OVMF
  --smp N                    number of CPUs, default 1
  --mem SIZE                 guest memory (QEMU -m syntax, e.g. 128M, 1G), default 128M
  --machine q35|pc           default q35
  --timeout SECS             default timeout of each step, default 30
  --out DIR                  output dir, default target/proofs/NAME
  --qemu-arg ARG             extra raw QEMU argument, repeatable (e.g. --qemu-arg -cpu --qemu-arg max)
  --fail-on TEXT             fail if a line on either port contains TEXT (repeatable);
                             \"KERNEL PANIC\" and \"EXCEPTION:\" are always checked
  --allow-fail-line TEXT     a line containing TEXT is never a fail line (repeatable);
                             for proofs that provoke a fault on purpose

steps (in order):
  --expect TEXT              wait for a COM1 line equal to TEXT
  --expect-log TEXT          wait for a COM2 (debug log) line equal to TEXT
  --within SECS              timeout of the step just before (--expect, --expect-log or --exit)
  --send TEXT                write TEXT to COM1 (escapes: \\r \\n \\t \\0 \\e \\\\ \\xNN,
                             and \\B: a break on the line)
  --exit success|failure|CODE|none
                             last step: wait for QEMU to exit. success = the guest wrote 0x10
                             to isa-debug-exit (QEMU status 33); failure = any other status;
                             CODE = that guest code (QEMU status CODE*2+1); none = kill QEMU
                             after the steps before. Default: --exit success

--proof FILE reads a proof file (tools/proofs/NAME.toml, see docs/src/testing.md): builds
its images with tools/mkiso.sh (and tools/manifest.sh), then runs each of its runs, or its
script; --run NAME runs only that one; --check only reads the file.

TEXT starting with \"re:\" is a regular expression matched against the whole line.
Lines are compared after removing ANSI escape sequences, leading \\r and trailing
whitespace.
";

/// Default guest memory size.
pub const DEFAULT_MEM: &str = "128M";
/// Default per-step timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The substrings that fail every proof unless a line is allowed by `--allow-fail-line`.
pub const BUILTIN_FAIL_SUBSTRINGS: [&str; 2] = ["KERNEL PANIC", "EXCEPTION:"];

/// One of the two serial ports the harness watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// COM1: the console; `--send` writes here.
    Com1,
    /// COM2: the debug log.
    Com2,
}

impl Stream {
    /// Both streams, in index order.
    pub const ALL: [Stream; 2] = [Stream::Com1, Stream::Com2];

    /// 0 for COM1, 1 for COM2.
    pub fn index(self) -> usize {
        match self {
            Stream::Com1 => 0,
            Stream::Com2 => 1,
        }
    }

    /// `com1` or `com2`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Com1 => "com1",
            Stream::Com2 => "com2",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Firmware QEMU boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default SeaBIOS.
    Bios,
    /// OVMF.
    Uefi,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

/// QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineType {
    /// `-machine q35`.
    Q35,
    /// `-machine pc` (i440FX).
    Pc,
}

impl MachineType {
    /// The QEMU machine name.
    pub fn qemu_name(self) -> &'static str {
        match self {
            MachineType::Q35 => "q35",
            MachineType::Pc => "pc",
        }
    }
}

/// One step of a proof.
#[derive(Clone, Debug)]
pub enum Step {
    /// Wait for a line matching `pattern` on `stream`.
    Expect { stream: Stream, pattern: Pattern, within: Option<Duration> },
    /// Write `bytes` (the decoded argument) to COM1.
    Send { bytes: Vec<u8> },
    /// Wait for QEMU to exit; always the last step.
    Exit { expect: ExitExpect, within: Option<Duration> },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Expect { stream, pattern, .. } => {
                write!(f, "expect {stream} {}", quote(&pattern.to_string()))
            }
            Step::Send { bytes } => {
                write!(f, "send {}", quote(&String::from_utf8_lossy(bytes)))
            }
            Step::Exit { expect, .. } => write!(f, "exit {expect}"),
        }
    }
}

/// Everything one proof run needs.
#[derive(Clone, Debug)]
pub struct ProofConfig {
    pub name: String,
    pub image: PathBuf,
    pub firmware: Firmware,
    pub smp: u32,
    pub mem: String,
    pub machine: MachineType,
    /// Default per-step timeout.
    pub timeout: Duration,
    pub out_dir: PathBuf,
    pub qemu_args: Vec<String>,
    /// Extra fail patterns from `--fail-on`.
    pub fail_on: Vec<Pattern>,
    /// Patterns from `--allow-fail-line`.
    pub allow_fail: Vec<Pattern>,
    /// The steps; the last one is always [`Step::Exit`].
    pub steps: Vec<Step>,
}

impl ProofConfig {
    /// All fail patterns: the built-in ones and those of `--fail-on`.
    pub fn fail_patterns(&self) -> Vec<Pattern> {
        BUILTIN_FAIL_SUBSTRINGS
            .iter()
            .map(|s| Pattern::Contains((*s).to_string()))
            .chain(self.fail_on.iter().cloned())
            .collect()
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a proof.
    Run(Box<ProofConfig>),
    /// Build the images of a proof file and run it (`--proof FILE`).
    File(FileCommand),
    /// Print [`USAGE`].
    Help,
}

/// `qemu-proof --proof FILE [--kernel ELF] [--module PATH]... [--run NAME] [--check]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileCommand {
    /// The proof file (`tools/proofs/NAME.toml`).
    pub path: PathBuf,
    /// The kernel packed into every image.
    pub kernel: Option<PathBuf>,
    /// Boot modules packed into every image (the user programs).
    pub modules: Vec<PathBuf>,
    /// Only the run of this name.
    pub only: Option<String>,
    /// Only read and check the file.
    pub check: bool,
}

/// A command-line mistake; the binary prints it and exits with status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// Parses the arguments after the program name.
///
/// Options take their value from the next argument (`--send --x` sends `--x`) or after `=`
/// (`--smp=2`).
pub fn parse_args<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = String>,
{
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|a| a == "--proof" || a.starts_with("--proof=")) {
        return parse_file_args(args);
    }
    let mut args = args.into_iter();
    let mut name = None;
    let mut image = None;
    let mut firmware = Firmware::Bios;
    let mut smp = 1;
    let mut mem = DEFAULT_MEM.to_string();
    let mut machine = MachineType::Q35;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut out_dir = None;
    let mut qemu_args = Vec::new();
    let mut fail_on = Vec::new();
    let mut allow_fail = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut exit_given = false;

    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        if !arg.starts_with("--") {
            return usage(format!("unexpected argument {}", quote(&arg)));
        }
        let (option, inline_value) = match arg.split_once('=') {
            Some((option, value)) => (option.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            match inline_value.clone().or_else(|| args.next()) {
                Some(value) => Ok(value),
                None => usage(format!("{option} needs a value")),
            }
        };
        let is_step = matches!(option.as_str(), "--expect" | "--expect-log" | "--send" | "--exit");
        if is_step && exit_given {
            return usage(format!("{option} after --exit: --exit must be the last step"));
        }
        match option.as_str() {
            "--name" => name = Some(parse_name(&value()?)?),
            "--image" => image = Some(PathBuf::from(non_empty(&option, value()?)?)),
            "--firmware" => {
                firmware = match value()?.as_str() {
                    "bios" => Firmware::Bios,
                    "uefi" => Firmware::Uefi,
                    other => {
                        return usage(format!("invalid --firmware {} (bios or uefi)", quote(other)))
                    }
                }
            }
            "--smp" => {
                let text = value()?;
                smp = match text.parse::<u32>() {
                    Ok(n) if (1..=255).contains(&n) => n,
                    _ => return usage(format!("invalid --smp {} (1 to 255)", quote(&text))),
                }
            }
            "--mem" => mem = parse_mem(&value()?)?,
            "--machine" => {
                machine = match value()?.as_str() {
                    "q35" => MachineType::Q35,
                    "pc" => MachineType::Pc,
                    other => {
                        return usage(format!("invalid --machine {} (q35 or pc)", quote(other)))
                    }
                }
            }
            "--timeout" => timeout = parse_secs(&option, &value()?)?,
            "--out" => out_dir = Some(PathBuf::from(non_empty(&option, value()?)?)),
            "--qemu-arg" => qemu_args.push(value()?),
            "--fail-on" => fail_on.push(pattern(&option, Pattern::substring(&value()?))?),
            "--allow-fail-line" => {
                allow_fail.push(pattern(&option, Pattern::substring(&value()?))?)
            }
            "--expect" | "--expect-log" => {
                let stream = if option == "--expect" { Stream::Com1 } else { Stream::Com2 };
                let pattern = pattern(&option, Pattern::line(&value()?))?;
                steps.push(Step::Expect { stream, pattern, within: None });
            }
            "--send" => {
                let text = value()?;
                let bytes = decode_escapes(&text)
                    .map_err(|e| UsageError(format!("--send {}: {e}", quote(&text))))?;
                steps.push(Step::Send { bytes });
            }
            "--exit" => {
                let expect = ExitExpect::parse(&value()?).map_err(UsageError)?;
                steps.push(Step::Exit { expect, within: None });
                exit_given = true;
            }
            "--within" => {
                let secs = parse_secs(&option, &value()?)?;
                match steps.last_mut() {
                    Some(Step::Expect { within, .. } | Step::Exit { within, .. }) => {
                        if within.is_some() {
                            return usage("--within given twice for the same step");
                        }
                        *within = Some(secs);
                    }
                    _ => return usage("--within must follow --expect, --expect-log or --exit"),
                }
            }
            _ => return usage(format!("unknown option {}", quote(&option))),
        }
    }

    let Some(name) = name else {
        return usage("missing --name");
    };
    let Some(image) = image else {
        return usage("missing --image");
    };
    check_no_kvm(&qemu_args)?;
    if !exit_given {
        steps.push(Step::Exit { expect: ExitExpect::Success, within: None });
    }
    let out_dir = out_dir.unwrap_or_else(|| PathBuf::from("target/proofs").join(&name));
    Ok(Command::Run(Box::new(ProofConfig {
        name,
        image,
        firmware,
        smp,
        mem,
        machine,
        timeout,
        out_dir,
        qemu_args,
        fail_on,
        allow_fail,
        steps,
    })))
}

/// The options of `--proof FILE` mode; the others do not mix with it.
fn parse_file_args(args: Vec<String>) -> Result<Command, UsageError> {
    let mut command = FileCommand::default();
    let mut path = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        if arg == "--check" {
            command.check = true;
            continue;
        }
        let (option, inline_value) = match arg.split_once('=') {
            Some((option, value)) => (option.to_string(), Some(value.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || -> Result<String, UsageError> {
            match inline_value.clone().or_else(|| args.next()) {
                Some(value) if !value.is_empty() => Ok(value),
                Some(_) => usage(format!("{option} must not be empty")),
                None => usage(format!("{option} needs a value")),
            }
        };
        match option.as_str() {
            "--proof" if path.is_some() => return usage("--proof given twice"),
            "--proof" => path = Some(PathBuf::from(value()?)),
            "--kernel" => command.kernel = Some(PathBuf::from(value()?)),
            "--module" => command.modules.push(PathBuf::from(value()?)),
            "--run" => command.only = Some(value()?),
            other => {
                return usage(format!(
                    "{} does not go with --proof (only --kernel, --module, --run, --check)",
                    quote(other)
                ))
            }
        }
    }
    command.path = path.unwrap_or_default();
    if !command.check && command.kernel.is_none() {
        return usage("--proof needs --kernel (or --check)");
    }
    Ok(Command::File(command))
}

fn pattern(option: &str, parsed: Result<Pattern, String>) -> Result<Pattern, UsageError> {
    parsed.map_err(|e| UsageError(format!("{option}: {e}")))
}

fn non_empty(option: &str, value: String) -> Result<String, UsageError> {
    if value.is_empty() {
        usage(format!("{option} must not be empty"))
    } else {
        Ok(value)
    }
}

fn parse_name(text: &str) -> Result<String, UsageError> {
    let valid = !text.is_empty()
        && !text.starts_with('.')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(text.to_string())
    } else {
        usage(format!(
            "invalid --name {} (letters, digits, '.', '_', '-'; not starting with '.')",
            quote(text)
        ))
    }
}

/// Accepts QEMU `-m` sizes of the form `DIGITS[KMGT]` (no suffix means MiB).
fn parse_mem(text: &str) -> Result<String, UsageError> {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let suffix_len = text.len() - digits.len();
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && suffix_len <= 1
        && digits.bytes().any(|b| b != b'0');
    if valid {
        Ok(text.to_string())
    } else {
        usage(format!("invalid --mem {} (e.g. 128M or 1G)", quote(text)))
    }
}

/// Positive, finite seconds; fractions allowed.
fn parse_secs(option: &str, text: &str) -> Result<Duration, UsageError> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => usage(format!("invalid {option} {} (seconds, e.g. 30 or 2.5)", quote(text))),
    }
}

/// Proofs always run under TCG; refuse arguments that would switch to KVM.
pub(crate) fn check_no_kvm(qemu_args: &[String]) -> Result<(), UsageError> {
    let mut previous = "";
    for arg in qemu_args {
        let kvm = arg == "-enable-kvm"
            || arg == "--enable-kvm"
            || arg.contains("accel=kvm")
            || ((previous == "-accel" || previous == "--accel") && arg.starts_with("kvm"));
        if kvm {
            return usage(format!("--qemu-arg {}: proofs run under TCG, never KVM", quote(arg)));
        }
        previous = arg;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<S: AsRef<str>>(args: &[S]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(|s| s.as_ref().to_string()))
    }

    fn config<S: AsRef<str>>(args: &[S]) -> ProofConfig {
        match parse(args) {
            Ok(Command::Run(config)) => *config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn error<S: AsRef<str>>(args: &[S]) -> String {
        match parse(args) {
            Err(UsageError(message)) => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    const BASE: [&str; 4] = ["--name", "boot", "--image", "capos.iso"];

    fn with_base(extra: &[&str]) -> Vec<String> {
        BASE.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c = config(&BASE);
        assert_eq!(c.name, "boot");
        assert_eq!(c.image, PathBuf::from("capos.iso"));
        assert_eq!(c.firmware, Firmware::Bios);
        assert_eq!(c.smp, 1);
        assert_eq!(c.mem, "128M");
        assert_eq!(c.machine, MachineType::Q35);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.out_dir, PathBuf::from("target/proofs/boot"));
        assert!(c.qemu_args.is_empty());
        assert_eq!(c.steps.len(), 1);
        assert!(matches!(c.steps[0], Step::Exit { expect: ExitExpect::Success, within: None }));
        let fails: Vec<String> = c.fail_patterns().iter().map(|p| p.to_string()).collect();
        assert_eq!(fails, ["KERNEL PANIC", "EXCEPTION:"]);
    }

    #[test]
    fn all_options() {
        let c = config(&with_base(&[
            "--firmware",
            "uefi",
            "--smp=4",
            "--mem",
            "1G",
            "--machine",
            "pc",
            "--timeout",
            "2.5",
            "--out",
            "/tmp/x",
            "--qemu-arg",
            "-cpu",
            "--qemu-arg",
            "max",
            "--fail-on",
            "BUG",
            "--allow-fail-line",
            "re:EXCEPTION: #PF.*",
        ]));
        assert_eq!(c.firmware, Firmware::Uefi);
        assert_eq!(c.smp, 4);
        assert_eq!(c.mem, "1G");
        assert_eq!(c.machine, MachineType::Pc);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.out_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.qemu_args, ["-cpu", "max"]);
        assert_eq!(c.fail_on.len(), 1);
        assert_eq!(c.allow_fail[0].to_string(), "re:EXCEPTION: #PF.*");
        assert_eq!(c.fail_patterns().len(), 3);
    }

    #[test]
    fn steps_in_order_with_within() {
        let c = config(&with_base(&[
            "--expect",
            "capOS kernel ready",
            "--within",
            "5",
            "--expect-log",
            "re:cpu \\d+ up",
            "--send",
            "help\\r",
            "--send",
            "--not-an-option",
            "--exit",
            "0x11",
            "--within",
            "60",
        ]));
        let shown: Vec<String> = c.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            shown,
            [
                "expect com1 \"capOS kernel ready\"",
                "expect com2 \"re:cpu \\\\d+ up\"",
                "send \"help\\r\"",
                "send \"--not-an-option\"",
                "exit guest code 17 (status 35)",
            ]
        );
        match &c.steps[0] {
            Step::Expect { within, .. } => assert_eq!(*within, Some(Duration::from_secs(5))),
            other => panic!("{other:?}"),
        }
        match &c.steps[1] {
            Step::Expect { within, .. } => assert_eq!(*within, None),
            other => panic!("{other:?}"),
        }
        match &c.steps[2] {
            Step::Send { bytes } => assert_eq!(bytes, b"help\r"),
            other => panic!("{other:?}"),
        }
        match &c.steps[4] {
            Step::Exit { within, .. } => assert_eq!(*within, Some(Duration::from_secs(60))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn help() {
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["--name", "x", "-h"]), Ok(Command::Help)));
    }

    #[test]
    fn missing_required_options() {
        assert_eq!(error(&["--image", "a.iso"]), "missing --name");
        assert_eq!(error(&["--name", "a"]), "missing --image");
        assert_eq!(error::<&str>(&[]), "missing --name");
    }

    #[test]
    fn missing_value() {
        assert_eq!(error(&["--name", "a", "--image"]), "--image needs a value");
        assert_eq!(error(&with_base(&["--expect"])), "--expect needs a value");
    }

    #[test]
    fn unknown_and_stray_arguments() {
        assert_eq!(error(&with_base(&["--verbose"])), "unknown option \"--verbose\"");
        assert_eq!(error(&with_base(&["extra"])), "unexpected argument \"extra\"");
    }

    #[test]
    fn invalid_values() {
        assert!(error(&with_base(&["--firmware", "coreboot"])).starts_with("invalid --firmware"));
        assert!(error(&with_base(&["--machine", "microvm"])).starts_with("invalid --machine"));
        assert!(error(&with_base(&["--smp", "0"])).starts_with("invalid --smp"));
        assert!(error(&with_base(&["--smp", "two"])).starts_with("invalid --smp"));
        assert!(error(&with_base(&["--mem", "lots"])).starts_with("invalid --mem"));
        assert!(error(&with_base(&["--mem", "0M"])).starts_with("invalid --mem"));
        assert!(error(&with_base(&["--mem", "12MB"])).starts_with("invalid --mem"));
        assert_eq!(config(&with_base(&["--mem", "512"])).mem, "512");
        assert!(error(&with_base(&["--timeout", "0"])).starts_with("invalid --timeout"));
        assert!(error(&with_base(&["--timeout", "inf"])).starts_with("invalid --timeout"));
        assert!(error(&with_base(&["--exit", "maybe"])).starts_with("invalid --exit value"));
        assert!(error(&["--name", "../x", "--image", "a"]).starts_with("invalid --name"));
        assert!(error(&["--name", "", "--image", "a"]).starts_with("invalid --name"));
        assert_eq!(error(&["--name", "a", "--image", ""]), "--image must not be empty");
    }

    #[test]
    fn bad_patterns_and_escapes() {
        assert!(error(&with_base(&["--expect", "re:("])).starts_with("--expect: invalid regex"));
        assert!(error(&with_base(&["--fail-on", "re:["])).starts_with("--fail-on: invalid regex"));
        assert_eq!(error(&with_base(&["--send", "a\\q"])), "--send \"a\\\\q\": unknown escape \\q");
    }

    #[test]
    fn within_placement() {
        let misplaced = "--within must follow --expect, --expect-log or --exit";
        assert_eq!(error(&with_base(&["--within", "3"])), misplaced);
        assert_eq!(error(&with_base(&["--send", "x", "--within", "3"])), misplaced);
        assert_eq!(
            error(&with_base(&["--expect", "x", "--within", "3", "--within", "4"])),
            "--within given twice for the same step"
        );
        assert!(
            error(&with_base(&["--expect", "x", "--within", "-1"])).starts_with("invalid --within")
        );
    }

    #[test]
    fn exit_must_be_last_and_single() {
        assert_eq!(
            error(&with_base(&["--exit", "none", "--expect", "x"])),
            "--expect after --exit: --exit must be the last step"
        );
        assert_eq!(
            error(&with_base(&["--exit", "none", "--exit", "success"])),
            "--exit after --exit: --exit must be the last step"
        );
        // Non-step options may still follow.
        let c = config(&with_base(&["--exit", "failure", "--fail-on", "oops"]));
        assert!(matches!(c.steps.last(), Some(Step::Exit { expect: ExitExpect::Failure, .. })));
        assert_eq!(c.steps.len(), 1);
    }

    #[test]
    fn kvm_is_refused() {
        for args in [
            &["--qemu-arg", "-enable-kvm"][..],
            &["--qemu-arg", "-accel", "--qemu-arg", "kvm"][..],
            &["--qemu-arg", "-machine", "--qemu-arg", "q35,accel=kvm"][..],
        ] {
            assert!(error(&with_base(args)).ends_with("proofs run under TCG, never KVM"));
        }
        // A CPU model called kvm64 is fine under TCG.
        let c = config(&with_base(&["--qemu-arg", "-cpu", "--qemu-arg", "kvm64"]));
        assert_eq!(c.qemu_args, ["-cpu", "kvm64"]);
    }

    #[test]
    fn proof_file_mode() {
        let command = match parse(&[
            "--proof",
            "tools/proofs/hello.toml",
            "--kernel=k.elf",
            "--module",
            "a",
            "--module",
            "b",
            "--run",
            "hello",
        ]) {
            Ok(Command::File(command)) => command,
            other => panic!("expected a proof file, got {other:?}"),
        };
        assert_eq!(command.path, PathBuf::from("tools/proofs/hello.toml"));
        assert_eq!(command.kernel, Some(PathBuf::from("k.elf")));
        assert_eq!(command.modules, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(command.only.as_deref(), Some("hello"));
        assert!(!command.check);
        assert!(matches!(
            parse(&["--check", "--proof", "x.toml"]),
            Ok(Command::File(FileCommand { check: true, .. }))
        ));
        assert_eq!(error(&["--proof", "x.toml"]), "--proof needs --kernel (or --check)");
        assert_eq!(
            error(&["--proof", "x.toml", "--kernel", "k", "--smp", "2"]),
            "\"--smp\" does not go with --proof (only --kernel, --module, --run, --check)"
        );
        assert_eq!(error(&["--proof", "a", "--proof", "b"]), "--proof given twice");
        assert_eq!(error(&["--kernel", "k", "--proof"]), "--proof needs a value");
        assert_eq!(error(&["--proof", "", "--check"]), "--proof must not be empty");
    }

    #[test]
    fn inline_values() {
        let c = config(&["--name=a", "--image=x.img", "--expect=a=b"]);
        assert_eq!(c.name, "a");
        match &c.steps[0] {
            Step::Expect { pattern, .. } => assert_eq!(pattern.to_string(), "a=b"),
            other => panic!("{other:?}"),
        }
    }
}
