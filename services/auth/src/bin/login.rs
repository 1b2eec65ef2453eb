//! login: the login prompt on a terminal.
//!
//! On a system without accounts it first sets up the operator: a name
//! (default `operator`) and a password typed twice with echo off. Otherwise
//! it asks `<hostname> login:` and, for any name but `anonymous`, a password
//! (echo off). A session then gets its shell from the authority broker,
//! which runs on this terminal until it ends; the session is ended (every
//! cap handed out for it revoked) and the prompt comes back.
//!
//! login holds no authority of its own beyond the terminal, the session
//! manager and the broker: it never sees the caps a shell gets. It keeps a
//! password only as long as the login call takes, and never writes one.
//!
//! Caps from the manifest: terminal, sessions, broker, sysinfo.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use capos_rt::schema::capos_capnp::ReadStatus;
use capos_rt::schema::{
    self as schema, CallError, ProcessHandleClient, SessionManagerClient, SystemInfoClient,
    TerminalSessionClient, UserSessionClient,
};
use capos_rt::Runtime;

capos_rt::entry!(main);

/// Longest name typed.
const MAX_NAME: u32 = 64;
/// Longest password typed.
const MAX_PASSWORD: u32 = 256;

struct Login<'a> {
    rt: &'a Runtime,
    term: TerminalSessionClient<&'a Runtime>,
    sessions: SessionManagerClient<&'a Runtime>,
    broker: u64,
    hostname: String,
}

/// What reading a line gave.
enum Input {
    Line(String),
    /// Ctrl-C, too long, not UTF-8: already reported; start over.
    Again,
    /// The terminal failed: stop.
    Gone,
}

impl Login<'_> {
    fn say(&self, text: &str) {
        let _ = self.term.write(&format!("{text}\r\n"));
    }

    fn read(&self, prompt: &str, echo: bool, max: u32) -> Input {
        // The terminal reports an over-long line itself; Ctrl-C shows ^C.
        match self.term.read_line(prompt, echo, max) {
            Ok(r) => match r.status {
                ReadStatus::Ok => Input::Line(r.line),
                ReadStatus::Cancelled => Input::Again,
                ReadStatus::TooLong => Input::Again,
                ReadStatus::InvalidUtf8 => {
                    self.say("login: that was not UTF-8");
                    Input::Again
                }
            },
            Err(_) => Input::Gone,
        }
    }

    /// A password, read with echo off.
    fn password(&self, prompt: &str) -> Option<Result<String, ()>> {
        let input = self.read(prompt, false, MAX_PASSWORD);
        match input {
            // The terminal ends the line itself, even with echo off.
            Input::Line(p) => Some(Ok(p)),
            Input::Again => Some(Err(())),
            Input::Gone => None,
        }
    }

    /// First boot: make the operator account; returns its session.
    fn setup(&self) -> Option<Option<u64>> {
        self.say("");
        self.say("capOS first boot: no account exists yet. Set up the operator account.");
        let name = match self.read("operator name [operator]: ", true, MAX_NAME) {
            Input::Line(n) if n.trim().is_empty() => String::from("operator"),
            Input::Line(n) => String::from(n.trim()),
            Input::Again => return Some(None),
            Input::Gone => return None,
        };
        let Ok(mut first) = self.password("new password: ")? else { return Some(None) };
        let Ok(mut second) = self.password("repeat password: ")? else {
            wipe(&mut first);
            return Some(None);
        };
        let same = first == second;
        wipe(&mut second);
        if !same {
            wipe(&mut first);
            self.say("login: the passwords differ; try again");
            return Some(None);
        }
        let result = self.sessions.setup(&name, &first);
        wipe(&mut first);
        match result {
            Ok(session) => {
                self.say(&format!("login: operator account {name} created"));
                Some(Some(session))
            }
            Err(e) => {
                self.say(&format!("login: setup refused: {}", reason(&e)));
                Some(None)
            }
        }
    }

    /// One login attempt; returns its session.
    fn attempt(&self) -> Option<Option<u64>> {
        let name = match self.read(&format!("{} login: ", self.hostname), true, MAX_NAME) {
            Input::Line(n) => String::from(n.trim()),
            Input::Again => return Some(None),
            Input::Gone => return None,
        };
        if name.is_empty() {
            return Some(None);
        }
        if name == "anonymous" {
            return Some(match self.sessions.anonymous() {
                Ok(s) => Some(s),
                Err(e) => {
                    self.say(&format!("login: {}", reason(&e)));
                    None
                }
            });
        }
        let Ok(mut password) = self.password("Password: ")? else { return Some(None) };
        let result = self.sessions.login(&name, &password);
        wipe(&mut password);
        Some(match result {
            Ok(s) => Some(s),
            Err(CallError::Exception(e)) if e.code == 1 => {
                self.say("Login incorrect");
                None
            }
            Err(e) => {
                self.say(&format!("login: {}", reason(&e)));
                None
            }
        })
    }

    /// Runs the session's shell to its end, then ends the session.
    fn run(&self, session: u64) {
        let shell = self.rt.call_sending(
            self.broker,
            schema::authority_broker::INTERFACE_ID,
            schema::authority_broker::method::LAUNCH_SHELL,
            &schema::wire::encode::<
                schema::capos_capnp::authority_broker::launch_shell_params::Owned,
            >(|_| Ok(()))
            .unwrap_or_default(),
            &[(session, false), (self.term_cap(), false)],
        );
        match shell.and_then(|r| r.cap(0)) {
            Ok(handle) => {
                let status = ProcessHandleClient::new(self.rt, handle).wait();
                if let Ok(code) = status {
                    if code != 0 {
                        self.say(&format!("login: the shell ended with code {code}"));
                    }
                }
                let _ = self.rt.release(handle);
            }
            Err(e) => self.say(&format!("login: no shell: {}", reason(&e))),
        }
        // Ends the session if the shell did not (a second logout is refused
        // with "session ended", which is fine).
        let _ = UserSessionClient::new(self.rt, session).logout();
        let _ = self.rt.release(session);
    }

    fn term_cap(&self) -> u64 {
        self.rt.cap("terminal").map_or(0, |c| c.cap)
    }
}

/// What a failed call says, for a person.
fn reason(e: &CallError) -> String {
    match e {
        CallError::Exception(e) => e.message.clone(),
        other => format!("{other}"),
    }
}

/// Overwrites a password before it is dropped.
fn wipe(s: &mut String) {
    let mut bytes = core::mem::take(s).into_bytes();
    bytes.fill(0);
}

fn main(rt: &'static Runtime) -> i64 {
    let (Some(terminal), Some(sessions), Some(broker)) =
        (rt.cap("terminal"), rt.cap("sessions"), rt.cap("broker"))
    else {
        capos_rt::println!(rt, "login: needs the terminal, sessions and broker caps");
        return 2;
    };
    let hostname = rt
        .cap("sysinfo")
        .and_then(|s| SystemInfoClient::new(rt, s.cap).info().ok())
        .map_or_else(|| String::from("capos"), |i| i.hostname);
    let login = Login {
        rt,
        term: TerminalSessionClient::new(rt, terminal.cap),
        sessions: SessionManagerClient::new(rt, sessions.cap),
        broker: broker.cap,
        hostname,
    };
    loop {
        let needs_setup = match login.sessions.needs_setup() {
            Ok(n) => n,
            Err(e) => {
                login.say(&format!("login: the session manager failed: {}", reason(&e)));
                return 3;
            }
        };
        let session = if needs_setup { login.setup() } else { login.attempt() };
        match session {
            None => return 4,
            Some(None) => continue,
            Some(Some(session)) => login.run(session),
        }
    }
}
