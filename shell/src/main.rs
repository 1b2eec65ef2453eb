//! capos-shell: the capOS native shell.
//!
//! It runs on the `TerminalSession` cap `terminal`, reads one line at a
//! time, and runs the command on it with the caps its session was granted,
//! which it looks up by name (`session`, `sysinfo`, `clock`, `timer`,
//! `log_reader`, `processes`, `spawner`, `audit`, ...). A command whose cap
//! is missing says so in one line. The command language (tokenizer,
//! commands, `run` grammar, help) is `capos_lib::shell`; the manual page is
//! `docs/src/shell.md`.
//!
//! All output goes to the terminal. The shell ends with code 0 after
//! `logout` or `exit`, and when its terminal is revoked (the session
//! ended); with code 1 when the terminal fails otherwise; with code 2 when
//! it holds no `terminal` cap. Background jobs outlive it, without the
//! session's caps.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod access;
mod info;
mod jobs;
mod terminal;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use capos_lib::shell::{parse, Command, Invocation, MAX_LINE};
use capos_rt::abi::TransportError;
use capos_rt::schema::{timer, user_session, CallError, TimerClient, UserSessionClient};
use capos_rt::{println, Runtime};

use crate::access::reason;
use crate::jobs::Job;
use crate::terminal::{say, Input, Terminal};

capos_rt::entry!(main);

/// How long the shell waits before asking again for a terminal another
/// program is reading.
const BUSY_RETRY_NS: u64 = 200_000_000;

/// The ANSI sequence that clears the screen and homes the cursor.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

fn main(rt: &'static Runtime) -> i64 {
    let Some(terminal) = rt.cap("terminal") else {
        println!(rt, "capos-shell: this session has no terminal cap; nothing to do");
        return 2;
    };
    let mut shell = Shell::new(rt, terminal.cap);
    shell.repl()
}

/// What the shell does after a command.
enum Flow {
    /// Reads the next line.
    Continue,
    /// Ends with this exit code.
    Exit(i64),
}

/// The shell's state.
pub struct Shell {
    /// The runtime: the caps, and the transport for calls.
    rt: &'static Runtime,
    /// Where every line goes.
    term: Terminal,
    /// Background jobs still running, in the order started.
    jobs: Vec<Job>,
    /// `principal@hostname$ `.
    prompt: String,
    /// A busy terminal has been reported and not yet read from since.
    busy_reported: bool,
}

impl Shell {
    fn new(rt: &'static Runtime, terminal: u64) -> Shell {
        let mut shell = Shell {
            rt,
            term: Terminal::new(rt, terminal),
            jobs: Vec::new(),
            prompt: String::new(),
            busy_reported: false,
        };
        let principal =
            info::session_info(&shell, "shell").map_or(String::from("?"), |i| i.principal);
        let host = info::host_name(&shell, "shell").unwrap_or_else(|_| String::from("?"));
        shell.prompt = format!("{}@{}$ ", capos_lib::shell::sanitize(&principal), host);
        shell
    }

    /// Reads and runs lines until `logout`, or until the terminal fails.
    fn repl(&mut self) -> i64 {
        say!(self.term, "capOS shell: type help for the commands");
        loop {
            jobs::reap(self);
            let input = self.term.read_line(&self.prompt);
            if !matches!(input, Input::Busy(_)) {
                self.busy_reported = false;
            }
            let flow = match input {
                Input::Line(line) => self.execute(&line),
                Input::Cancelled => Flow::Continue,
                Input::TooLong => {
                    say!(self.term, "shell: line too long (limit {MAX_LINE} bytes)");
                    Flow::Continue
                }
                Input::InvalidUtf8 => {
                    say!(self.term, "shell: the line is not valid UTF-8; ignored");
                    Flow::Continue
                }
                Input::Busy(message) => self.wait_for_terminal(&message),
                Input::Gone(e) => Flow::Exit(self.terminal_lost(&e)),
            };
            self.term.flush();
            if let Flow::Exit(code) = flow {
                return code;
            }
            if let Some(e) = self.term.take_failure() {
                return self.terminal_lost(&e);
            }
        }
    }

    /// Parses and runs one line.
    fn execute(&mut self, line: &str) -> Flow {
        let invocation = match parse(line) {
            Ok(Some(i)) => i,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                say!(self.term, "{e}");
                return Flow::Continue;
            }
        };
        if let Command::Logout = invocation.command {
            return Flow::Exit(self.logout());
        }
        if let Err(line) = self.dispatch(invocation) {
            say!(self.term, "{line}");
        }
        Flow::Continue
    }

    /// Runs one command; an error is the line to print.
    fn dispatch(&mut self, invocation: Invocation) -> Result<(), String> {
        match invocation.command {
            Command::Help(topic) => info::help(self, topic),
            Command::Caps => info::caps(self),
            Command::Session => info::session(self),
            Command::Whoami => info::whoami(self),
            Command::Ps => info::ps(self),
            Command::Devices => info::devices(self),
            Command::Run(spec) => jobs::run(self, &spec, invocation.background),
            Command::Jobs => jobs::jobs(self),
            Command::Kill(target) => jobs::kill(self, target),
            Command::Date => info::date(self),
            Command::Hostname => info::hostname(self),
            Command::Uptime => info::uptime(self),
            Command::Log(n) => info::log(self, n),
            Command::Audit(n) => info::audit(self, n),
            Command::Echo(words) => {
                say!(self.term, "{}", words.join(" "));
                Ok(())
            }
            Command::Clear => {
                self.term.raw(CLEAR_SCREEN);
                Ok(())
            }
            Command::Logout => Ok(()),
        }
    }

    /// `logout`/`exit`: reports the jobs that ended and those that keep
    /// running, says `logged out`, ends the session if the shell holds it
    /// (which revokes the terminal too); the exit code.
    fn logout(&mut self) -> i64 {
        jobs::reap(self);
        jobs::detach_all(self, true);
        say!(self.term, "logged out");
        self.term.flush();
        if let Some(c) = self.rt.cap("session") {
            if c.interface_id == user_session::INTERFACE_ID {
                if let Err(e) = UserSessionClient::new(self.rt, c.cap).logout() {
                    say!(self.term, "logout: {}", reason(&e));
                    self.term.flush();
                }
            }
        }
        0
    }

    /// The terminal failed: let the jobs go and end, with code 0 if it was
    /// revoked (the session ended), else 1.
    fn terminal_lost(&mut self, error: &CallError) -> i64 {
        jobs::detach_all(self, false);
        match error {
            CallError::Transport(code) if *code == TransportError::Revoked.code() => 0,
            _ => 1,
        }
    }

    /// Another program is reading the terminal: says so once, then waits a
    /// little with the `timer` cap; without one the shell cannot wait and
    /// ends with code 1.
    fn wait_for_terminal(&mut self, message: &str) -> Flow {
        if !self.busy_reported {
            say!(self.term, "shell: the terminal is busy ({message}); waiting for it");
            self.term.flush();
            self.busy_reported = true;
        }
        let slept = self
            .rt
            .cap("timer")
            .filter(|c| c.interface_id == timer::INTERFACE_ID)
            .map(|c| TimerClient::new(self.rt, c.cap).sleep(BUSY_RETRY_NS));
        match slept {
            Some(Ok(())) => Flow::Continue,
            _ => {
                say!(self.term, "shell: cannot wait for the terminal without a timer cap");
                jobs::detach_all(self, false);
                Flow::Exit(1)
            }
        }
    }
}
