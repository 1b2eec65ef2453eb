//! The command language of `capos-shell`: the tokenizer, the commands and
//! their arguments (with the `run` grammar), the help table, and the
//! formatting of durations, CPU times, how a process ended, and tables.
//!
//! Unlike the rest of this crate, this module allocates (`alloc`): it works
//! on lines a person typed and returns owned words.
//!
//! Nothing here panics on input: every line parses to a command or to a
//! [`ParseError`] whose `Display` is the one line the shell prints.

extern crate alloc;

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Longest line the shell reads, in bytes.
pub const MAX_LINE: u32 = 1024;
/// Records `log` and `audit` show without a count.
pub const DEFAULT_RECORDS: u32 = 10;
/// Most records `log` and `audit` show.
pub const MAX_RECORDS: u32 = 200;
/// Longest grant name a child can be given (the spawner's limit).
pub const MAX_GRANT_NAME: usize = 32;
/// Most grants one `run` may give (the spawner's limit).
pub const MAX_GRANTS: usize = 64;

// --- tokenizer ------------------------------------------------------------

/// A line split into words.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Words {
    /// The words, with quotes and escapes removed.
    pub words: Vec<String>,
    /// The line ended with an unquoted `&`.
    pub background: bool,
}

/// Why a line could not be split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// A quote (`'` or `"`) was opened and never closed.
    UnterminatedQuote(char),
    /// The line ends with a backslash that escapes nothing.
    TrailingBackslash,
    /// An unquoted `&` somewhere other than the end of the line.
    MisplacedAmpersand,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::UnterminatedQuote('\'') => f.write_str("unterminated single quote"),
            TokenError::UnterminatedQuote(_) => f.write_str("unterminated double quote"),
            TokenError::TrailingBackslash => f.write_str("the line ends with a lone backslash"),
            TokenError::MisplacedAmpersand => {
                f.write_str("`&` may only end a line (quote it to use it in a word)")
            }
        }
    }
}

/// The word being built and whether one has started (`''` starts an empty
/// word).
#[derive(Default)]
struct Builder {
    words: Vec<String>,
    current: String,
    started: bool,
}

impl Builder {
    fn push(&mut self, c: char) {
        self.current.push(c);
        self.started = true;
    }

    fn end_word(&mut self) {
        if self.started {
            self.words.push(core::mem::take(&mut self.current));
            self.started = false;
        }
    }
}

/// Splits `line` into words.
///
/// Words are separated by spaces and tabs. Inside single quotes every
/// character is literal. Inside double quotes `\"` and `\\` stand for `"`
/// and `\`; any other backslash is literal. Outside quotes a backslash
/// makes the next character literal. An unquoted `&` at the end of the line
/// (a word of its own, or glued to the last word) sets
/// [`Words::background`]; anywhere else it is an error.
pub fn tokenize(line: &str) -> Result<Words, TokenError> {
    let mut b = Builder::default();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => b.end_word(),
            '\'' => {
                b.started = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => b.push(c),
                        None => return Err(TokenError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                b.started = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\'))) => b.push(c),
                            Some((_, c)) => {
                                b.push('\\');
                                b.push(c);
                            }
                            None => return Err(TokenError::UnterminatedQuote('"')),
                        },
                        Some((_, c)) => b.push(c),
                        None => return Err(TokenError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => match chars.next() {
                Some((_, c)) => b.push(c),
                None => return Err(TokenError::TrailingBackslash),
            },
            '&' => {
                let rest = line.get(i + 1..).unwrap_or("");
                if !rest.chars().all(|c| c == ' ' || c == '\t') {
                    return Err(TokenError::MisplacedAmpersand);
                }
                b.end_word();
                return Ok(Words { words: b.words, background: true });
            }
            c => b.push(c),
        }
    }
    b.end_word();
    Ok(Words { words: b.words, background: false })
}

/// `word` quoted so that [`tokenize`] gives it back as one word: as is when
/// it holds nothing special, else in single quotes (a `'` inside becomes
/// `'\''`).
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word.chars().all(|c| !matches!(c, ' ' | '\t' | '\'' | '"' | '\\' | '&'));
    if plain {
        return Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

// --- commands -------------------------------------------------------------

/// One cap the child of `run` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// The name the child looks the cap up by.
    pub name: String,
    /// The name of the shell's own cap that is granted.
    pub source: String,
}

/// What `run` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The boot module to start.
    pub binary: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The caps it gets, in the order given; nothing else is granted.
    pub grants: Vec<GrantSpec>,
}

/// What `kill` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// A process id.
    Pid(u64),
    /// A job number of this shell (`%N`).
    Job(u32),
}

/// A command with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help [command]`: the name is a known command.
    Help(Option<&'static str>),
    /// `caps`.
    Caps,
    /// `session`.
    Session,
    /// `whoami`.
    Whoami,
    /// `ps`.
    Ps,
    /// `devices`.
    Devices,
    /// `run ...`.
    Run(RunSpec),
    /// `jobs`.
    Jobs,
    /// `kill <pid|%job>`.
    Kill(KillTarget),
    /// `date`.
    Date,
    /// `hostname`.
    Hostname,
    /// `uptime`.
    Uptime,
    /// `log [n]`: how many records.
    Log(u32),
    /// `audit [n]`: how many records.
    Audit(u32),
    /// `echo [words...]`.
    Echo(Vec<String>),
    /// `clear`.
    Clear,
    /// `logout` or `exit`.
    Logout,
}

/// A parsed line: a command, and whether it runs in the background (only
/// `run` may).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// The line ended with `&`.
    pub background: bool,
}

/// Why a line is not a command. `Display` gives the whole line the shell
/// prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The line could not be split into words.
    Token(TokenError),
    /// The first word names no command.
    Unknown(String),
    /// A command was given arguments it does not take.
    Usage {
        /// The command.
        command: &'static str,
        /// What was wrong, and with which value.
        problem: String,
    },
    /// `&` after a command other than `run`, or alone.
    Background(Option<&'static str>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Token(e) => write!(f, "shell: {e}"),
            ParseError::Unknown(name) => write!(f, "shell: unknown command: {name} (try help)"),
            ParseError::Usage { command, problem } => {
                let usage = help_entry(command).map_or(*command, |h| h.usage);
                write!(f, "{command}: {problem} (usage: {usage})")
            }
            ParseError::Background(Some(command)) => {
                write!(f, "shell: {command} cannot run in the background; only run can (`&`)")
            }
            ParseError::Background(None) => f.write_str("shell: `&` needs a command before it"),
        }
    }
}

/// Help for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// The command word.
    pub name: &'static str,
    /// The usage line.
    pub usage: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// The caps it calls, by name.
    pub caps: &'static [&'static str],
    /// More lines `help <name>` prints.
    pub details: &'static [&'static str],
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "help",
        usage: "help [command]",
        summary: "list the commands, or explain one",
        caps: &[],
        details: &[],
    },
    CommandHelp {
        name: "caps",
        usage: "caps",
        summary: "the caps this shell holds, with their interfaces",
        caps: &[],
        details: &[],
    },
    CommandHelp {
        name: "session",
        usage: "session",
        summary: "this session: who, profile, authentication, login time, duration",
        caps: &["session"],
        details: &["The duration is measured with timer, else sysinfo, else clock."],
    },
    CommandHelp {
        name: "whoami",
        usage: "whoami",
        summary: "the principal of this session and its profile",
        caps: &["session"],
        details: &[],
    },
    CommandHelp {
        name: "ps",
        usage: "ps",
        summary: "every process: PID PPID STATE CPU NAME",
        caps: &["processes"],
        details: &[],
    },
    CommandHelp {
        name: "devices",
        usage: "devices",
        summary: "every PCI function: ADDRESS VENDOR:DEVICE CLASS BARS IRQ CLAIMED",
        caps: &["devices"],
        details: &["Lists only; a driver claims a function through the devices cap itself."],
    },
    CommandHelp {
        name: "run",
        usage: "run [-g name[=cap]]... <binary> [args...] [&]",
        summary: "start a program with only the caps given by -g (see help run)",
        caps: &["spawner"],
        details: &[
            "Starts <binary> (a boot module) with [args...]. The program gets only the caps",
            "given with -g: `-g name` grants this shell's cap `name` under the same name;",
            "`-g name=cap` grants this shell's cap `cap` under the name `name`.",
            "Options come before <binary>; every word after it is an argument. `--` ends",
            "the options. Without `&` the shell waits and reports how the program ended;",
            "with `&` it runs as a background job (see jobs and kill).",
            "Example: run -g console -g log hello",
        ],
    },
    CommandHelp {
        name: "jobs",
        usage: "jobs",
        summary: "the background programs this shell started that still run",
        caps: &[],
        details: &[],
    },
    CommandHelp {
        name: "kill",
        usage: "kill <pid|%job>",
        summary: "end a process: one of this shell's jobs, else any process",
        caps: &["processes"],
        details: &[
            "A pid of one of this shell's jobs, or %N for job N, is ended through the",
            "job's own handle; any other pid needs the processes cap.",
        ],
    },
    CommandHelp {
        name: "date",
        usage: "date",
        summary: "the date and time, UTC",
        caps: &["clock"],
        details: &[],
    },
    CommandHelp {
        name: "hostname",
        usage: "hostname",
        summary: "the name of this system",
        caps: &["sysinfo"],
        details: &[],
    },
    CommandHelp {
        name: "uptime",
        usage: "uptime",
        summary: "the time since boot",
        caps: &["sysinfo"],
        details: &[],
    },
    CommandHelp {
        name: "log",
        usage: "log [n]",
        summary: "the newest n records of the system log (default 10, at most 200)",
        caps: &["log_reader"],
        details: &["Each line: [seconds.milliseconds since boot] level source: message"],
    },
    CommandHelp {
        name: "audit",
        usage: "audit [n]",
        summary: "the newest n records of the audit trail (default 10, at most 200)",
        caps: &["audit"],
        details: &[],
    },
    CommandHelp {
        name: "echo",
        usage: "echo [words...]",
        summary: "print the words, separated by one space",
        caps: &[],
        details: &[],
    },
    CommandHelp {
        name: "clear",
        usage: "clear",
        summary: "clear the screen",
        caps: &[],
        details: &[],
    },
    CommandHelp {
        name: "logout",
        usage: "logout",
        summary: "end the session: its caps are revoked, background jobs keep running",
        caps: &["session"],
        details: &[],
    },
    CommandHelp {
        name: "exit",
        usage: "exit",
        summary: "the same as logout",
        caps: &["session"],
        details: &[],
    },
];

/// The help entry of command `name`.
pub fn help_entry(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|h| h.name == name)
}

fn usage(command: &'static str, problem: impl Into<String>) -> ParseError {
    ParseError::Usage { command, problem: problem.into() }
}

/// Parses a line. `Ok(None)` for a line with no words.
pub fn parse(line: &str) -> Result<Option<Invocation>, ParseError> {
    let Words { words, background } = tokenize(line).map_err(ParseError::Token)?;
    let Some((first, rest)) = words.split_first() else {
        return if background { Err(ParseError::Background(None)) } else { Ok(None) };
    };
    let Some(help) = help_entry(first) else {
        return Err(ParseError::Unknown(first.clone()));
    };
    let command = parse_command(help.name, rest)?;
    if background && !matches!(command, Command::Run(_)) {
        return Err(ParseError::Background(Some(help.name)));
    }
    Ok(Some(Invocation { command, background }))
}

fn parse_command(name: &'static str, args: &[String]) -> Result<Command, ParseError> {
    let simple = match name {
        "caps" => Some(Command::Caps),
        "session" => Some(Command::Session),
        "whoami" => Some(Command::Whoami),
        "ps" => Some(Command::Ps),
        "devices" => Some(Command::Devices),
        "jobs" => Some(Command::Jobs),
        "date" => Some(Command::Date),
        "hostname" => Some(Command::Hostname),
        "uptime" => Some(Command::Uptime),
        "clear" => Some(Command::Clear),
        "logout" | "exit" => Some(Command::Logout),
        _ => None,
    };
    if let Some(command) = simple {
        return match args.first() {
            None => Ok(command),
            Some(_) => Err(usage(name, "takes no arguments")),
        };
    }
    match name {
        "help" => parse_help(args),
        "run" => parse_run(args).map(Command::Run),
        "kill" => parse_kill(args).map(Command::Kill),
        "log" => parse_count("log", args).map(Command::Log),
        "audit" => parse_count("audit", args).map(Command::Audit),
        _ => Ok(Command::Echo(args.to_vec())),
    }
}

fn parse_help(args: &[String]) -> Result<Command, ParseError> {
    match args {
        [] => Ok(Command::Help(None)),
        [topic] => match help_entry(topic) {
            Some(h) => Ok(Command::Help(Some(h.name))),
            None => Err(usage("help", format!("no command named {topic}"))),
        },
        _ => Err(usage("help", "takes at most one command")),
    }
}

fn parse_count(command: &'static str, args: &[String]) -> Result<u32, ParseError> {
    match args {
        [] => Ok(DEFAULT_RECORDS),
        [n] => match n.parse::<u32>() {
            Ok(n) if (1..=MAX_RECORDS).contains(&n) => Ok(n),
            _ => Err(usage(command, format!("bad count {n}: expected 1 to {MAX_RECORDS}"))),
        },
        _ => Err(usage(command, "takes at most one count")),
    }
}

fn parse_kill(args: &[String]) -> Result<KillTarget, ParseError> {
    let [target] = args else {
        return Err(usage("kill", "takes exactly one pid or %job"));
    };
    if let Some(job) = target.strip_prefix('%') {
        return match job.parse::<u32>() {
            Ok(n) if n > 0 => Ok(KillTarget::Job(n)),
            _ => Err(usage("kill", format!("bad job {target}"))),
        };
    }
    match target.parse::<u64>() {
        Ok(pid) if pid > 0 => Ok(KillTarget::Pid(pid)),
        _ => Err(usage("kill", format!("bad pid {target}"))),
    }
}

/// Parses the words after `run`: `[-g name[=cap]]... [--] <binary> [args...]`.
pub fn parse_run(args: &[String]) -> Result<RunSpec, ParseError> {
    let mut grants: Vec<GrantSpec> = Vec::new();
    let mut words = args.iter();
    let binary = loop {
        let Some(word) = words.next() else {
            return Err(usage("run", "no binary named"));
        };
        match word.as_str() {
            "-g" => {
                let Some(spec) = words.next() else {
                    return Err(usage("run", "-g needs a grant: name or name=cap"));
                };
                let grant = parse_grant(spec)?;
                if grants.iter().any(|g| g.name == grant.name) {
                    return Err(usage("run", format!("the name {} is granted twice", grant.name)));
                }
                grants.push(grant);
            }
            "--" => match words.next() {
                Some(binary) => break binary,
                None => return Err(usage("run", "no binary named after --")),
            },
            w if w.starts_with('-') => {
                return Err(usage("run", format!("unknown option {w}")));
            }
            _ => break word,
        }
    };
    if grants.len() > MAX_GRANTS {
        return Err(usage("run", format!("{} grants; at most {MAX_GRANTS}", grants.len())));
    }
    Ok(RunSpec { binary: binary.clone(), args: words.cloned().collect(), grants })
}

fn parse_grant(spec: &str) -> Result<GrantSpec, ParseError> {
    let (name, source) = spec.split_once('=').unwrap_or((spec, spec));
    if name.is_empty() || source.is_empty() {
        return Err(usage("run", format!("bad grant {spec}: expected name or name=cap")));
    }
    if name.len() > MAX_GRANT_NAME {
        return Err(usage(
            "run",
            format!("grant name {name} is {} bytes; at most {MAX_GRANT_NAME}", name.len()),
        ));
    }
    Ok(GrantSpec { name: name.to_string(), source: source.to_string() })
}

// --- formatting -----------------------------------------------------------

const NS_PER_SEC: u64 = 1_000_000_000;

/// A duration in nanoseconds as days, hours, minutes and seconds, largest
/// first: `42s`, `1m 23s`, `2h 0m 5s`, `3d 4h 5m`.
pub fn format_duration(ns: u64) -> String {
    let secs = ns / NS_PER_SEC;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// CPU time: milliseconds with one decimal below a second (`12.3ms`), else
/// seconds with one decimal (`4.5s`). Truncated, never rounded up.
pub fn format_cpu(ns: u64) -> String {
    if ns < NS_PER_SEC {
        format!("{}.{}ms", ns / 1_000_000, ns / 100_000 % 10)
    } else {
        format!("{}.{}s", ns / NS_PER_SEC, ns / 100_000_000 % 10)
    }
}

/// A time since boot as `seconds.milliseconds` (`12.345`).
pub fn format_log_time(ns: u64) -> String {
    format!("{}.{:03}", ns / NS_PER_SEC, ns / 1_000_000 % 1000)
}

/// How a process ended, as `ProcessHandle.status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending<'a> {
    /// `exited`, `killed`, or the CPU exception (`page fault`, ...).
    pub cause: &'a str,
    /// The exit code.
    pub exit_code: i64,
    /// The faulting instruction, for an exception.
    pub fault_rip: u64,
    /// The faulting address (CR2) of a page fault.
    pub fault_address: u64,
}

impl Ending<'_> {
    /// The long form, after `name (pid N) `: `exited with code 0`, `killed`,
    /// `page fault at rip=0x401000 addr=0x8`.
    pub fn describe(&self) -> String {
        match self.cause {
            "exited" | "" => format!("exited with code {}", self.exit_code),
            "killed" => "killed".to_string(),
            cause => self.fault(cause),
        }
    }

    /// The short form a finished job is reported with: `exit 0`, `killed`,
    /// or the exception as in [`Ending::describe`].
    pub fn short(&self) -> String {
        match self.cause {
            "exited" | "" => format!("exit {}", self.exit_code),
            "killed" => "killed".to_string(),
            cause => self.fault(cause),
        }
    }

    fn fault(&self, cause: &str) -> String {
        let cause = sanitize(cause);
        if self.fault_rip == 0 {
            format!("{cause} (code {})", self.exit_code)
        } else {
            format!("{cause} at rip={:#x} addr={:#x}", self.fault_rip, self.fault_address)
        }
    }
}

/// `text` with control characters made visible, so that text another
/// program wrote cannot move the cursor or change the terminal: C0 controls
/// and DEL in caret notation (`^[`, `^?`), C1 controls as U+FFFD. Tabs stay.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\x7f' => out.push_str("^?"),
            c if (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Lays `rows` out in columns two spaces apart, each as wide as its widest
/// cell; columns whose flag in `right` is true are aligned right. The last
/// column is not padded. Widths count characters.
pub fn format_table(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c].saturating_sub(cell.chars().count());
                let last = c + 1 == row.len();
                if right.get(c).copied().unwrap_or(false) {
                    line.extend(core::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if !last {
                        line.extend(core::iter::repeat_n(' ', pad));
                    }
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn words(line: &str) -> Vec<String> {
        tokenize(line).expect("tokenizes").words
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn command(line: &str) -> Command {
        parse(line).expect("parses").expect("has a command").command
    }

    fn error(line: &str) -> String {
        parse(line).expect_err("is refused").to_string()
    }

    #[test]
    fn splits_on_spaces_and_tabs() {
        assert_eq!(words("  echo  a\tb  "), strings(&["echo", "a", "b"]));
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("echo 'a b' \"c d\""), strings(&["echo", "a b", "c d"]));
        assert_eq!(words("echo a'b c'd"), strings(&["echo", "ab cd"]));
        assert_eq!(words("echo '' \"\""), strings(&["echo", "", ""]));
        assert_eq!(
            words(r#"echo 'it''s' "say \"hi\"" a\ b"#),
            strings(&["echo", "its", "say \"hi\"", "a b"])
        );
        assert_eq!(words(r#"echo "a\b" "\\" '\'"#), strings(&["echo", "a\\b", "\\", "\\"]));
        assert_eq!(words(r"echo \'\&\\"), strings(&["echo", "'&\\"]));
        assert_eq!(words("echo 'a&b' \"&\""), strings(&["echo", "a&b", "&"]));
        assert_eq!(words("héllo wörld"), strings(&["héllo", "wörld"]));
    }

    #[test]
    fn tokenizer_errors() {
        assert_eq!(tokenize("echo 'abc"), Err(TokenError::UnterminatedQuote('\'')));
        assert_eq!(tokenize("echo \"abc"), Err(TokenError::UnterminatedQuote('"')));
        assert_eq!(tokenize("echo \"abc\\"), Err(TokenError::UnterminatedQuote('"')));
        assert_eq!(tokenize("echo abc\\"), Err(TokenError::TrailingBackslash));
        assert_eq!(tokenize("a & b"), Err(TokenError::MisplacedAmpersand));
        assert_eq!(tokenize("a&&"), Err(TokenError::MisplacedAmpersand));
        assert_eq!(tokenize("a&b"), Err(TokenError::MisplacedAmpersand));
    }

    #[test]
    fn trailing_ampersand_means_background() {
        let w = tokenize("run hello &").expect("tokenizes");
        assert_eq!((w.words, w.background), (strings(&["run", "hello"]), true));
        let w = tokenize("run hello&  ").expect("tokenizes");
        assert_eq!((w.words, w.background), (strings(&["run", "hello"]), true));
        let w = tokenize("run 'a b'&").expect("tokenizes");
        assert_eq!((w.words, w.background), (strings(&["run", "a b"]), true));
        let w = tokenize("run hello \\&").expect("tokenizes");
        assert_eq!((w.words, w.background), (strings(&["run", "hello", "&"]), false));
    }

    #[test]
    fn quote_round_trips() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(words(&quote("it's & \"x\"")), strings(&["it's & \"x\""]));
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(command("caps"), Command::Caps);
        assert_eq!(command("exit"), Command::Logout);
        assert_eq!(command("logout"), Command::Logout);
        assert_eq!(command("help"), Command::Help(None));
        assert_eq!(command("help run"), Command::Help(Some("run")));
        assert_eq!(command("echo a  'b c'"), Command::Echo(strings(&["a", "b c"])));
        assert_eq!(command("echo"), Command::Echo(vec![]));
        assert_eq!(error("caps now"), "caps: takes no arguments (usage: caps)");
        assert_eq!(error("help nope"), "help: no command named nope (usage: help [command])");
    }

    #[test]
    fn unknown_commands_and_background_misuse() {
        assert_eq!(error("foo bar"), "shell: unknown command: foo (try help)");
        assert_eq!(
            error("echo hi &"),
            "shell: echo cannot run in the background; only run can (`&`)"
        );
        assert_eq!(error("&"), "shell: `&` needs a command before it");
        assert_eq!(error("echo 'oops"), "shell: unterminated single quote");
    }

    #[test]
    fn counts() {
        assert_eq!(command("log"), Command::Log(DEFAULT_RECORDS));
        assert_eq!(command("log 200"), Command::Log(200));
        assert_eq!(command("audit 1"), Command::Audit(1));
        assert_eq!(error("log 0"), "log: bad count 0: expected 1 to 200 (usage: log [n])");
        assert_eq!(error("log 201"), "log: bad count 201: expected 1 to 200 (usage: log [n])");
        assert_eq!(error("audit x"), "audit: bad count x: expected 1 to 200 (usage: audit [n])");
        assert_eq!(error("log 1 2"), "log: takes at most one count (usage: log [n])");
        assert_eq!(error("log -1"), "log: bad count -1: expected 1 to 200 (usage: log [n])");
    }

    #[test]
    fn kill_targets() {
        assert_eq!(command("kill 7"), Command::Kill(KillTarget::Pid(7)));
        assert_eq!(command("kill %2"), Command::Kill(KillTarget::Job(2)));
        assert_eq!(error("kill"), "kill: takes exactly one pid or %job (usage: kill <pid|%job>)");
        assert_eq!(error("kill 0"), "kill: bad pid 0 (usage: kill <pid|%job>)");
        assert_eq!(error("kill x"), "kill: bad pid x (usage: kill <pid|%job>)");
        assert_eq!(error("kill %0"), "kill: bad job %0 (usage: kill <pid|%job>)");
        assert_eq!(
            error("kill 1 2"),
            "kill: takes exactly one pid or %job (usage: kill <pid|%job>)"
        );
    }

    fn grant(name: &str, source: &str) -> GrantSpec {
        GrantSpec { name: name.into(), source: source.into() }
    }

    #[test]
    fn run_grammar() {
        let parsed = parse("run -g console -g out=log hello a -g 'b c' &").expect("parses");
        let Some(Invocation { command: Command::Run(spec), background: true }) = parsed else {
            panic!("not a background run: {parsed:?}");
        };
        assert_eq!(spec.binary, "hello");
        assert_eq!(spec.args, strings(&["a", "-g", "b c"]));
        assert_eq!(spec.grants, vec![grant("console", "console"), grant("out", "log")]);

        assert_eq!(
            command("run hello"),
            Command::Run(RunSpec { binary: "hello".into(), args: vec![], grants: vec![] })
        );
        assert_eq!(
            command("run -- -odd x"),
            Command::Run(RunSpec { binary: "-odd".into(), args: strings(&["x"]), grants: vec![] })
        );
        let Command::Run(spec) = command("run -g a=b=c x") else { panic!("not a run") };
        assert_eq!(spec.grants, vec![grant("a", "b=c")]);
    }

    #[test]
    fn run_errors() {
        let u = "(usage: run [-g name[=cap]]... <binary> [args...] [&])";
        assert_eq!(error("run"), format!("run: no binary named {u}"));
        assert_eq!(error("run -g console"), format!("run: no binary named {u}"));
        assert_eq!(error("run -g"), format!("run: -g needs a grant: name or name=cap {u}"));
        assert_eq!(error("run --"), format!("run: no binary named after -- {u}"));
        assert_eq!(error("run -x hello"), format!("run: unknown option -x {u}"));
        assert_eq!(
            error("run -g =log x"),
            format!("run: bad grant =log: expected name or name=cap {u}")
        );
        assert_eq!(
            error("run -g log= x"),
            format!("run: bad grant log=: expected name or name=cap {u}")
        );
        assert_eq!(
            error("run -g a=log -g a=console x"),
            format!("run: the name a is granted twice {u}")
        );
        let long = "n".repeat(MAX_GRANT_NAME + 1);
        assert_eq!(
            error(&format!("run -g {long}=log x")),
            format!("run: grant name {long} is 33 bytes; at most 32 {u}")
        );
        let many: String = (0..=MAX_GRANTS).map(|i| format!("-g g{i}=log ")).collect();
        assert_eq!(error(&format!("run {many} x")), format!("run: 65 grants; at most 64 {u}"));
    }

    #[test]
    fn every_command_has_help_and_parses() {
        for h in COMMANDS {
            assert!(h.usage.starts_with(h.name), "{}", h.name);
            assert!(!h.summary.is_empty(), "{}", h.name);
            let line = match h.name {
                "run" => "run hello",
                "kill" => "kill 3",
                name => name,
            };
            assert!(matches!(parse(line), Ok(Some(_))), "{line}");
        }
    }

    #[test]
    fn help_lines_fit_80_columns() {
        let widest = COMMANDS.iter().map(|h| h.name.len()).max().unwrap_or(0);
        for h in COMMANDS {
            assert!(widest + 2 + h.summary.chars().count() < 80, "{}", h.name);
            for line in h.details {
                assert!(line.chars().count() < 80, "{line}");
            }
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(999_999_999), "0s");
        assert_eq!(format_duration(42 * NS_PER_SEC), "42s");
        assert_eq!(format_duration(83 * NS_PER_SEC), "1m 23s");
        assert_eq!(format_duration(7205 * NS_PER_SEC), "2h 0m 5s");
        assert_eq!(format_duration((3 * 86_400 + 4 * 3600 + 5 * 60 + 6) * NS_PER_SEC), "3d 4h 5m");
        assert_eq!(format_duration(u64::MAX), "213503d 23h 34m");
    }

    #[test]
    fn cpu_and_log_times() {
        assert_eq!(format_cpu(0), "0.0ms");
        assert_eq!(format_cpu(450_000), "0.4ms");
        assert_eq!(format_cpu(123_456_789), "123.4ms");
        assert_eq!(format_cpu(999_999_999), "999.9ms");
        assert_eq!(format_cpu(NS_PER_SEC), "1.0s");
        assert_eq!(format_cpu(12_345_000_000), "12.3s");
        assert_eq!(format_log_time(0), "0.000");
        assert_eq!(format_log_time(12_345_678_901), "12.345");
        assert_eq!(format_log_time(5_000_000), "0.005");
    }

    #[test]
    fn endings() {
        let e = |cause, exit_code, fault_rip, fault_address| Ending {
            cause,
            exit_code,
            fault_rip,
            fault_address,
        };
        assert_eq!(e("exited", 3, 0, 0).describe(), "exited with code 3");
        assert_eq!(e("exited", -1, 0, 0).short(), "exit -1");
        assert_eq!(e("killed", -9, 0, 0).describe(), "killed");
        assert_eq!(e("killed", -9, 0, 0).short(), "killed");
        assert_eq!(
            e("page fault", -270, 0x40_1000, 8).describe(),
            "page fault at rip=0x401000 addr=0x8"
        );
        assert_eq!(e("invalid opcode", -262, 0, 0).short(), "invalid opcode (code -262)");
        assert_eq!(e("bad\x1b[2J", -1, 0, 0).short(), "bad^[[2J (code -1)");
    }

    #[test]
    fn sanitizes_control_characters() {
        assert_eq!(sanitize("plain\ttext é"), "plain\ttext é");
        assert!(matches!(sanitize("plain"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\x1b[31mb\r\n\x7f\u{9b}"), "a^[[31mb^M^J^?\u{fffd}");
        assert_eq!(sanitize("\0"), "^@");
    }

    #[test]
    fn tables() {
        let rows = vec![
            strings(&["PID", "STATE", "NAME"]),
            strings(&["1", "blocked", "init"]),
            strings(&["12", "running", "capos-shell"]),
        ];
        assert_eq!(
            format_table(&rows, &[true, false, false]),
            strings(&["PID  STATE    NAME", "  1  blocked  init", " 12  running  capos-shell",])
        );
        assert!(format_table(&[], &[]).is_empty());
        assert_eq!(
            format_table(&[strings(&["a", "bb"]), strings(&["ccc"])], &[]),
            strings(&["a    bb", "ccc"])
        );
    }

    /// Words made only of characters with no meaning to the tokenizer.
    fn plain_word() -> impl Strategy<Value = String> {
        "[^ \t'\"\\\\&]{1,12}"
    }

    proptest! {
        #[test]
        fn tokenize_never_panics(line in any::<String>()) {
            let _ = tokenize(&line);
        }

        #[test]
        fn tokenize_never_panics_on_shell_characters(line in "[ \t'\"\\\\&a-c\u{e9}]{0,40}") {
            let _ = tokenize(&line);
        }

        #[test]
        fn parse_never_panics(line in any::<String>()) {
            let _ = parse(&line);
        }

        #[test]
        fn parse_never_panics_on_commands(
            command in prop::sample::select(COMMANDS.iter().map(|h| h.name).collect::<Vec<_>>()),
            rest in "[ \t'\"\\\\&%=a-c0-9-]{0,30}",
        ) {
            let _ = parse(&format!("{command} {rest}"));
        }

        #[test]
        fn plain_words_round_trip(ws in prop::collection::vec(plain_word(), 0..8)) {
            let line = ws.join(" ");
            prop_assert_eq!(tokenize(&line), Ok(Words { words: ws, background: false }));
        }

        #[test]
        fn quoted_words_round_trip(ws in prop::collection::vec(any::<String>(), 0..6), bg in any::<bool>()) {
            let mut line: String = ws.iter().map(|w| quote(w).into_owned()).collect::<Vec<_>>().join(" ");
            if bg {
                line.push('&');
            }
            prop_assert_eq!(tokenize(&line), Ok(Words { words: ws, background: bg }));
        }

        #[test]
        fn sanitized_text_has_no_controls(text in any::<String>()) {
            prop_assert!(!sanitize(&text).chars().any(|c| c.is_control() && c != '\t'));
        }

        #[test]
        fn formatting_never_panics(ns in any::<u64>(), code in any::<i64>(), rip in any::<u64>()) {
            let _ = (format_duration(ns), format_cpu(ns), format_log_time(ns));
            let ending = Ending { cause: "page fault", exit_code: code, fault_rip: rip, fault_address: ns };
            let _ = (ending.describe(), ending.short());
        }
    }
}
