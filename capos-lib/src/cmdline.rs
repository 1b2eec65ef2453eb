//! Kernel command-line options.
//!
//! The command line is a list of whitespace-separated tokens, each either
//! `key=value` or a bare flag `key`:
//!
//! | option | meaning |
//! |--------|---------|
//! | `log=error\|warn\|info\|debug\|trace` | most verbose log level printed (default `info`) |
//! | `harness` | running under the test harness (flag, takes no value) |
//! | `init=<args>` | arguments handed to init (no spaces; init defines their form) |
//! | `test=pagefault\|panic\|serial-echo\|stack-overflow` | run a built-in test action |
//!
//! Values are matched ignoring ASCII case; keys are exact. A first token
//! starting with `/` is the kernel path some boot loaders prepend and is
//! ignored silently. Anything else that does not parse is reported through
//! the warning callback and ignored. When an option appears more than once,
//! the last valid occurrence wins.

use core::fmt;

/// Log verbosity, least verbose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Normal operational messages (the default).
    #[default]
    Info,
    /// Diagnostic detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every level, least verbose first.
    pub const ALL: [LogLevel; 5] =
        [LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug, LogLevel::Trace];

    /// The option value naming this level.
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level named `name` (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Whether a message at `level` is printed when this is the configured
    /// level.
    pub fn allows(self, level: LogLevel) -> bool {
        level <= self
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A built-in kernel test action selected with `test=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestAction {
    /// Trigger a page fault to check the fault path.
    PageFault,
    /// Panic to check the panic path.
    Panic,
    /// Echo serial input back to the serial port.
    SerialEcho,
    /// Overflow the kernel stack into its guard page (double fault on the IST).
    StackOverflow,
}

impl TestAction {
    /// Every action.
    pub const ALL: [TestAction; 4] = [
        TestAction::PageFault,
        TestAction::Panic,
        TestAction::SerialEcho,
        TestAction::StackOverflow,
    ];

    /// The option value naming this action.
    pub const fn name(self) -> &'static str {
        match self {
            TestAction::PageFault => "pagefault",
            TestAction::Panic => "panic",
            TestAction::SerialEcho => "serial-echo",
            TestAction::StackOverflow => "stack-overflow",
        }
    }

    /// The action named `name` (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for TestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options parsed from the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelOptions<'a> {
    /// Most verbose level printed (`log=`, default `Info`).
    pub log_level: LogLevel,
    /// Running under the test harness (`harness`).
    pub harness: bool,
    /// Built-in test action to run (`test=`), if any.
    pub test: Option<TestAction>,
    /// Arguments for init (`init=`), if given.
    pub init: Option<&'a str>,
}

/// A problem with one command-line token; the token is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineWarning<'a> {
    /// The option is not known; carries the whole token.
    UnknownOption(&'a str),
    /// The option's value is not one it accepts.
    BadValue {
        /// The option name.
        key: &'a str,
        /// The rejected value.
        value: &'a str,
    },
    /// The option needs a value but has none (`key` or `key=`).
    MissingValue {
        /// The option name.
        key: &'a str,
    },
    /// A flag was given a value (`key=...`).
    UnexpectedValue {
        /// The option name.
        key: &'a str,
    },
}

/// The values `key` accepts, for warning messages.
fn expected_values(key: &str) -> &'static str {
    match key {
        "log" => "error|warn|info|debug|trace",
        "test" => "pagefault|panic|serial-echo|stack-overflow",
        _ => "a known value",
    }
}

impl fmt::Display for CmdlineWarning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CmdlineWarning::UnknownOption(token) => {
                write!(f, "unknown kernel option `{token}` ignored")
            }
            CmdlineWarning::BadValue { key, value } => write!(
                f,
                "kernel option `{key}` has bad value `{value}` (expected {})",
                expected_values(key)
            ),
            CmdlineWarning::MissingValue { key } => write!(
                f,
                "kernel option `{key}` needs a value (expected `{key}={}`)",
                expected_values(key)
            ),
            CmdlineWarning::UnexpectedValue { key } => {
                write!(f, "kernel option `{key}` is a flag and takes no value")
            }
        }
    }
}

/// Parses `cmdline`, calling `warn` for every token that is ignored because
/// it is unknown or malformed. Never fails: bad tokens leave the defaults (or
/// earlier values) in place.
pub fn parse<'a>(cmdline: &'a str, mut warn: impl FnMut(CmdlineWarning<'a>)) -> KernelOptions<'a> {
    let mut options = KernelOptions::default();
    for (index, token) in cmdline.split_ascii_whitespace().enumerate() {
        if index == 0 && token.starts_with('/') {
            continue;
        }
        let (key, value) = match token.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (token, None),
        };
        match key {
            "log" => match value {
                None | Some("") => warn(CmdlineWarning::MissingValue { key }),
                Some(value) => match LogLevel::from_name(value) {
                    Some(level) => options.log_level = level,
                    None => warn(CmdlineWarning::BadValue { key, value }),
                },
            },
            "test" => match value {
                None | Some("") => warn(CmdlineWarning::MissingValue { key }),
                Some(value) => match TestAction::from_name(value) {
                    Some(action) => options.test = Some(action),
                    None => warn(CmdlineWarning::BadValue { key, value }),
                },
            },
            "harness" => match value {
                None => options.harness = true,
                Some(_) => warn(CmdlineWarning::UnexpectedValue { key }),
            },
            "init" => match value {
                None | Some("") => warn(CmdlineWarning::MissingValue { key }),
                Some(value) => options.init = Some(value),
            },
            _ => warn(CmdlineWarning::UnknownOption(token)),
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmdline: &str) -> (KernelOptions<'_>, Vec<CmdlineWarning<'_>>) {
        let mut warnings = Vec::new();
        let options = parse(cmdline, |w| warnings.push(w));
        (options, warnings)
    }

    fn defaults() -> KernelOptions<'static> {
        KernelOptions { log_level: LogLevel::Info, harness: false, test: None, init: None }
    }

    #[test]
    fn init_arguments_pass_through() {
        let (options, warnings) = run("init=hello:console,log+other harness");
        assert_eq!(options.init, Some("hello:console,log+other"));
        assert!(options.harness);
        assert!(warnings.is_empty());
        assert_eq!(run("init=").1, [CmdlineWarning::MissingValue { key: "init" }]);
    }

    #[test]
    fn empty_and_blank_give_defaults() {
        assert_eq!(KernelOptions::default(), defaults());
        for line in ["", "   ", "\t\n  \r"] {
            assert_eq!(run(line), (defaults(), vec![]));
        }
    }

    #[test]
    fn every_log_level() {
        for level in LogLevel::ALL {
            let line = format!("log={level}");
            let (options, warnings) = run(&line);
            assert_eq!(options.log_level, level);
            assert!(warnings.is_empty());
        }
        assert_eq!(run("log=DEBUG").0.log_level, LogLevel::Debug);
    }

    #[test]
    fn every_test_action() {
        for (value, action) in [
            ("pagefault", TestAction::PageFault),
            ("panic", TestAction::Panic),
            ("serial-echo", TestAction::SerialEcho),
            ("stack-overflow", TestAction::StackOverflow),
        ] {
            let line = format!("test={value}");
            assert_eq!(run(&line), (KernelOptions { test: Some(action), ..defaults() }, vec![]));
        }
    }

    #[test]
    fn all_options_together() {
        let (options, warnings) = run("  log=trace\tharness  test=serial-echo\n");
        assert_eq!(
            options,
            KernelOptions {
                log_level: LogLevel::Trace,
                harness: true,
                test: Some(TestAction::SerialEcho),
                init: None,
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn leading_kernel_path_ignored_silently() {
        assert!(run("/boot/capos harness").0.harness);
        assert!(run("/boot/capos harness").1.is_empty());
        // Only the first token may be a path.
        let (_, warnings) = run("harness /boot/capos");
        assert_eq!(warnings, [CmdlineWarning::UnknownOption("/boot/capos")]);
    }

    #[test]
    fn unknown_option_warns() {
        let (options, warnings) = run("foo quiet=1 harness");
        assert_eq!(options, KernelOptions { harness: true, ..defaults() });
        assert_eq!(
            warnings,
            [CmdlineWarning::UnknownOption("foo"), CmdlineWarning::UnknownOption("quiet=1"),]
        );
        assert_eq!(warnings[0].to_string(), "unknown kernel option `foo` ignored");
        // Keys are case-sensitive.
        assert_eq!(run("LOG=info").1, [CmdlineWarning::UnknownOption("LOG=info")]);
    }

    #[test]
    fn bad_value_warns_and_keeps_previous() {
        let (options, warnings) = run("log=debug log=loud test=panic test=reboot");
        assert_eq!(options.log_level, LogLevel::Debug);
        assert_eq!(options.test, Some(TestAction::Panic));
        assert_eq!(
            warnings,
            [
                CmdlineWarning::BadValue { key: "log", value: "loud" },
                CmdlineWarning::BadValue { key: "test", value: "reboot" },
            ]
        );
        assert_eq!(
            warnings[0].to_string(),
            "kernel option `log` has bad value `loud` (expected error|warn|info|debug|trace)"
        );
        assert_eq!(
            warnings[1].to_string(),
            "kernel option `test` has bad value `reboot` (expected pagefault|panic|serial-echo|stack-overflow)"
        );
        // Only the first `=` splits key and value.
        assert_eq!(run("log=info=x").1, [CmdlineWarning::BadValue { key: "log", value: "info=x" }]);
    }

    #[test]
    fn missing_value_warns() {
        let (options, warnings) = run("log test log= test=");
        assert_eq!(options, defaults());
        assert_eq!(
            warnings,
            [
                CmdlineWarning::MissingValue { key: "log" },
                CmdlineWarning::MissingValue { key: "test" },
                CmdlineWarning::MissingValue { key: "log" },
                CmdlineWarning::MissingValue { key: "test" },
            ]
        );
        assert_eq!(
            warnings[0].to_string(),
            "kernel option `log` needs a value (expected `log=error|warn|info|debug|trace`)"
        );
    }

    #[test]
    fn flag_with_value_warns() {
        for line in ["harness=1", "harness=", "harness=true"] {
            let (options, warnings) = run(line);
            assert!(!options.harness, "{line}");
            assert_eq!(warnings, [CmdlineWarning::UnexpectedValue { key: "harness" }]);
        }
        assert_eq!(
            CmdlineWarning::UnexpectedValue { key: "harness" }.to_string(),
            "kernel option `harness` is a flag and takes no value"
        );
    }

    #[test]
    fn later_occurrences_override() {
        let (options, warnings) = run("log=error test=panic log=warn test=pagefault");
        assert_eq!(options.log_level, LogLevel::Warn);
        assert_eq!(options.test, Some(TestAction::PageFault));
        assert!(warnings.is_empty());
    }

    #[test]
    fn empty_key_is_unknown() {
        assert_eq!(run("=info").1, [CmdlineWarning::UnknownOption("=info")]);
    }

    #[test]
    fn log_level_order_and_allows() {
        assert!(LogLevel::Error < LogLevel::Warn);
        assert!(LogLevel::Debug < LogLevel::Trace);
        assert!(LogLevel::Info.allows(LogLevel::Warn));
        assert!(LogLevel::Info.allows(LogLevel::Info));
        assert!(!LogLevel::Info.allows(LogLevel::Debug));
        assert_eq!(LogLevel::from_name("nope"), None);
        assert_eq!(TestAction::from_name("Serial-Echo"), Some(TestAction::SerialEcho));
        assert_eq!(TestAction::PageFault.to_string(), "pagefault");
    }
}
