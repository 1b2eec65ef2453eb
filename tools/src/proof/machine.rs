//! The proof state machine: fed with serial lines, QEMU's exit and clock ticks, it runs the
//! steps and decides pass or fail. It does no I/O, so it is tested without QEMU.
//!
//! Semantics:
//! - Every line of both ports is kept ([`Proof::history`]). Each port has a cursor: an
//!   expect step looks at the lines of its port after the line matched by the previous
//!   expect on that port, including lines that arrived before the step began.
//! - Every incoming line is checked against the fail patterns first, unless an allow
//!   pattern matches it; a fail line ends the proof even if a step expects that line.
//! - A step times out when its timeout (its `--within`, else the default) has passed since
//!   the step before finished.
//! - When QEMU exits the runner delivers all lines already written first, then
//!   [`Event::Exited`]; a pending expect step then fails, the exit step is decided.

use std::fmt;
use std::time::Duration;

use super::cli::{ProofConfig, Step, Stream};
use super::pattern::{quote, Pattern};
use super::status::{ExitExpect, QemuStatus};

/// What the machine is fed. Times are measured from QEMU's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete line arrived on `stream`.
    Line { stream: Stream, text: String, at: Duration },
    /// QEMU ended.
    Exited { status: QemuStatus, at: Duration },
    /// Time passed.
    Tick { now: Duration },
}

/// What the machine asks the runner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to COM1.
    Send(Vec<u8>),
    /// Print this progress line.
    Report(String),
}

/// One received line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub at: Duration,
}

/// Why a proof failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// An expect step (`stream` is set) or the exit step (`stream` is `None`) timed out.
    Timeout { stream: Option<Stream>, pattern: String, after: Duration },
    /// A line matched a fail pattern.
    FailLine { stream: Stream, line: String },
    /// QEMU ended while step `step` (1-based) was pending.
    ExitedEarly { status: QemuStatus, step: usize, what: String },
    /// QEMU ended, but not the way the exit step wants.
    WrongExit { status: QemuStatus, expected: ExitExpect },
    /// QEMU could not be started or did not connect the serial ports.
    Startup(String),
    /// Any other runner error.
    Io(String),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Timeout { stream: Some(stream), pattern, after } => write!(
                f,
                "timed out waiting for {stream} line {} after {}",
                quote(pattern),
                secs(*after)
            ),
            FailReason::Timeout { stream: None, pattern, after } => {
                write!(f, "timed out waiting for QEMU to exit ({pattern}) after {}", secs(*after))
            }
            FailReason::FailLine { stream, line } => {
                write!(f, "fail line on {stream}: {}", quote(line))
            }
            FailReason::ExitedEarly { status, step, what } => match status {
                QemuStatus::Code(_) => {
                    write!(f, "QEMU exited with {status} before step {step} ({what})")
                }
                QemuStatus::Signal(_) => {
                    write!(f, "QEMU was killed by {status} before step {step} ({what})")
                }
            },
            FailReason::WrongExit { status, expected } => match status {
                QemuStatus::Code(_) => write!(f, "QEMU exit {status}, expected {expected}"),
                QemuStatus::Signal(_) => write!(f, "QEMU killed by {status}, expected {expected}"),
            },
            FailReason::Startup(message) => write!(f, "could not start QEMU: {message}"),
            FailReason::Io(message) => f.write_str(message),
        }
    }
}

/// The end of a proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step passed; `elapsed` is the time of the last one.
    Pass { elapsed: Duration },
    /// The proof failed at `at`.
    Fail { reason: FailReason, at: Duration },
}

/// `1.8s`: seconds with one decimal.
pub fn elapsed(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `30s`, `2.5s`: a timeout as given on the command line.
pub fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The running proof.
#[derive(Debug)]
pub struct Proof {
    steps: Vec<Step>,
    default_timeout: Duration,
    fail: Vec<Pattern>,
    allow: Vec<Pattern>,
    /// Index of the pending step.
    next: usize,
    /// When the pending step began.
    step_started: Duration,
    started: bool,
    history: [Vec<Line>; 2],
    /// Per stream: index of the first line the next expect may match.
    cursor: [usize; 2],
    exited: Option<QemuStatus>,
    outcome: Option<Outcome>,
}

impl Proof {
    /// A proof of `config`'s steps and fail rules.
    pub fn new(config: &ProofConfig) -> Proof {
        Proof::with_rules(
            config.steps.clone(),
            config.timeout,
            config.fail_patterns(),
            config.allow_fail.clone(),
        )
    }

    /// A proof from its parts: `fail` are all fail patterns (built-ins included), `allow`
    /// exempts lines from them.
    pub fn with_rules(
        steps: Vec<Step>,
        default_timeout: Duration,
        fail: Vec<Pattern>,
        allow: Vec<Pattern>,
    ) -> Proof {
        Proof {
            steps,
            default_timeout,
            fail,
            allow,
            next: 0,
            step_started: Duration::ZERO,
            started: false,
            history: [Vec::new(), Vec::new()],
            cursor: [0, 0],
            exited: None,
            outcome: None,
        }
    }

    /// Begins the first step at `now` (QEMU is up and both ports are connected).
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.started && self.outcome.is_none() {
            self.started = true;
            self.step_started = now;
            self.advance(now, &mut actions);
        }
        actions
    }

    /// Feeds one event. After the outcome is decided lines are only recorded.
    pub fn feed(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.outcome.is_some() || !self.started {
            if let Event::Line { stream, text, at } = event {
                self.history[stream.index()].push(Line { text, at });
            }
            return actions;
        }
        match event {
            Event::Line { stream, text, at } => {
                if self.check_deadline(at) {
                    self.history[stream.index()].push(Line { text, at });
                    return actions;
                }
                let is_fail = self.is_fail_line(&text);
                if is_fail {
                    self.fail(FailReason::FailLine { stream, line: text.clone() }, at);
                }
                self.history[stream.index()].push(Line { text, at });
                if !is_fail {
                    self.advance(at, &mut actions);
                }
            }
            Event::Exited { status, at } => {
                if self.exited.is_none() && !self.check_deadline(at) {
                    self.exited = Some(status);
                    self.advance(at, &mut actions);
                }
            }
            Event::Tick { now } => {
                self.check_deadline(now);
            }
        }
        actions
    }

    /// Ends the proof with `reason` unless it already ended.
    pub fn abort(&mut self, reason: FailReason, at: Duration) {
        self.fail(reason, at);
    }

    /// The outcome, once decided.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// When the pending step times out, if a step is pending.
    pub fn deadline(&self) -> Option<Duration> {
        if self.outcome.is_some() || !self.started {
            return None;
        }
        self.timeout_of_pending().map(|t| self.step_started + t)
    }

    /// Every line received on `stream`.
    pub fn history(&self, stream: Stream) -> &[Line] {
        &self.history[stream.index()]
    }

    /// Whether `line` fails the proof.
    pub fn is_fail_line(&self, line: &str) -> bool {
        self.fail.iter().any(|p| p.matches(line)) && !self.allow.iter().any(|p| p.matches(line))
    }

    fn timeout_of_pending(&self) -> Option<Duration> {
        match self.steps.get(self.next)? {
            Step::Expect { within, .. } => Some(within.unwrap_or(self.default_timeout)),
            Step::Exit { expect, within } => {
                (*expect != ExitExpect::None).then(|| within.unwrap_or(self.default_timeout))
            }
            Step::Send { .. } => None,
        }
    }

    /// Fails the proof with a timeout if the pending step's deadline is before `now`.
    fn check_deadline(&mut self, now: Duration) -> bool {
        let Some(deadline) = self.deadline() else {
            return false;
        };
        if now <= deadline {
            return false;
        }
        let after = self.timeout_of_pending().unwrap_or_default();
        let reason = match &self.steps[self.next] {
            Step::Expect { stream, pattern, .. } => {
                FailReason::Timeout { stream: Some(*stream), pattern: pattern.to_string(), after }
            }
            step => FailReason::Timeout {
                stream: None,
                pattern: match step {
                    Step::Exit { expect, .. } => expect.to_string(),
                    other => other.to_string(),
                },
                after,
            },
        };
        self.fail(reason, now);
        true
    }

    fn fail(&mut self, reason: FailReason, at: Duration) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Fail { reason, at });
        }
    }

    fn finish_step(&mut self, now: Duration) {
        self.next += 1;
        self.step_started = now;
    }

    /// Runs steps until one has to wait or the outcome is decided.
    fn advance(&mut self, now: Duration, actions: &mut Vec<Action>) {
        while self.outcome.is_none() {
            let Some(step) = self.steps.get(self.next).cloned() else {
                // Only reachable for a step list without an exit step.
                self.outcome = Some(Outcome::Pass { elapsed: now });
                return;
            };
            match step {
                Step::Expect { stream, ref pattern, .. } => {
                    let i = stream.index();
                    let found = self.history[i][self.cursor[i]..]
                        .iter()
                        .position(|line| pattern.matches(&line.text));
                    match found {
                        Some(offset) => {
                            let line = &self.history[i][self.cursor[i] + offset];
                            actions.push(Action::Report(format!(
                                "  ok  {stream} {} ({})",
                                quote(&line.text),
                                elapsed(line.at)
                            )));
                            self.cursor[i] += offset + 1;
                            self.finish_step(now);
                        }
                        None => {
                            if let Some(status) = self.exited {
                                let reason = FailReason::ExitedEarly {
                                    status,
                                    step: self.next + 1,
                                    what: step.to_string(),
                                };
                                self.fail(reason, now);
                            }
                            return;
                        }
                    }
                }
                Step::Send { ref bytes } => {
                    actions.push(Action::Report(format!(
                        "  >>  com1 {} ({})",
                        quote(&String::from_utf8_lossy(bytes)),
                        elapsed(now)
                    )));
                    actions.push(Action::Send(bytes.clone()));
                    self.finish_step(now);
                }
                Step::Exit { expect: ExitExpect::None, .. } => {
                    self.outcome = Some(Outcome::Pass { elapsed: now });
                }
                Step::Exit { expect, .. } => {
                    if let Some(status) = self.exited {
                        if expect.accepts(status) {
                            actions.push(Action::Report(format!(
                                "  ok  exit {status} ({})",
                                elapsed(now)
                            )));
                            self.outcome = Some(Outcome::Pass { elapsed: now });
                        } else {
                            self.fail(FailReason::WrongExit { status, expected: expect }, now);
                        }
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::cli::{parse_args, Command};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A started proof built from command-line steps (after the `--name`/`--image` part).
    fn proof(args: &[&str]) -> (Proof, Vec<Action>) {
        let all = ["--name", "t", "--image", "x.iso"].iter().chain(args).map(|s| s.to_string());
        let Ok(Command::Run(config)) = parse_args(all) else {
            panic!("bad test arguments {args:?}");
        };
        let mut proof = Proof::new(&config);
        let actions = proof.start(Duration::ZERO);
        (proof, actions)
    }

    fn line(proof: &mut Proof, stream: Stream, text: &str, at: f64) -> Vec<Action> {
        proof.feed(Event::Line { stream, text: text.to_string(), at: secs(at) })
    }

    fn exited(proof: &mut Proof, status: i32, at: f64) -> Vec<Action> {
        proof.feed(Event::Exited { status: QemuStatus::Code(status), at: secs(at) })
    }

    fn fail_reason(proof: &Proof) -> String {
        match proof.outcome() {
            Some(Outcome::Fail { reason, .. }) => reason.to_string(),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn passed(proof: &Proof) -> bool {
        matches!(proof.outcome(), Some(Outcome::Pass { .. }))
    }

    use Stream::{Com1, Com2};

    #[test]
    fn expects_then_success_exit() {
        let (mut p, actions) =
            proof(&["--expect", "capOS kernel ready", "--expect-log", "re:log \\d"]);
        assert!(actions.is_empty());
        assert!(line(&mut p, Com1, "booting", 0.5).is_empty());
        assert_eq!(
            line(&mut p, Com1, "capOS kernel ready", 1.8),
            [Action::Report("  ok  com1 \"capOS kernel ready\" (1.8s)".into())]
        );
        assert_eq!(
            line(&mut p, Com2, "log 7", 2.0),
            [Action::Report("  ok  com2 \"log 7\" (2.0s)".into())]
        );
        assert!(p.outcome().is_none());
        assert_eq!(
            exited(&mut p, 33, 2.3),
            [Action::Report("  ok  exit status 33 (guest code 16) (2.3s)".into())]
        );
        assert_eq!(p.outcome(), Some(&Outcome::Pass { elapsed: secs(2.3) }));
    }

    #[test]
    fn history_counts_lines_that_arrived_before_the_step() {
        let (mut p, _) = proof(&["--expect", "a", "--expect-log", "x", "--expect", "b"]);
        // "b" arrives before "a" is matched: still after the cursor once "a" is matched.
        line(&mut p, Com1, "a", 0.1);
        line(&mut p, Com1, "b", 0.2);
        assert_eq!(p.history(Com1).len(), 2);
        let actions = line(&mut p, Com2, "x", 0.3);
        assert_eq!(actions.len(), 2, "{actions:?}");
        exited(&mut p, 33, 1.0);
        assert!(passed(&p));
    }

    #[test]
    fn line_before_the_cursor_does_not_match() {
        let (mut p, _) = proof(&["--expect", "ready", "--expect", "ready", "--within", "5"]);
        line(&mut p, Com1, "ready", 1.0);
        line(&mut p, Com1, "other", 2.0);
        // The first "ready" was used by step 1; step 2 needs a new one.
        p.feed(Event::Tick { now: secs(5.5) });
        assert!(p.outcome().is_none());
        p.feed(Event::Tick { now: secs(6.1) });
        assert_eq!(fail_reason(&p), "timed out waiting for com1 line \"ready\" after 5s");
        // History is kept, the failure does not erase it.
        assert_eq!(p.history(Com1).len(), 2);
    }

    #[test]
    fn same_line_twice_matches_two_steps() {
        let (mut p, _) = proof(&["--expect", "tick", "--expect", "tick", "--exit", "none"]);
        line(&mut p, Com1, "tick", 1.0);
        assert!(p.outcome().is_none());
        line(&mut p, Com1, "tock", 1.5);
        line(&mut p, Com1, "tick", 2.0);
        assert_eq!(p.outcome(), Some(&Outcome::Pass { elapsed: secs(2.0) }));
    }

    #[test]
    fn cursors_are_per_stream() {
        let (mut p, _) = proof(&["--expect-log", "b", "--expect", "a", "--exit", "none"]);
        line(&mut p, Com1, "a", 0.1);
        line(&mut p, Com2, "b", 0.2);
        assert!(passed(&p));
    }

    #[test]
    fn send_happens_after_the_previous_expect() {
        let (mut p, actions) = proof(&["--send", "x", "--expect", "prompt", "--send", "help\\r"]);
        assert_eq!(
            actions,
            [Action::Report("  >>  com1 \"x\" (0.0s)".into()), Action::Send(b"x".to_vec())]
        );
        let actions = line(&mut p, Com1, "prompt", 3.0);
        assert_eq!(actions.len(), 3);
        assert_eq!(actions[2], Action::Send(b"help\r".to_vec()));
        assert_eq!(actions[1], Action::Report("  >>  com1 \"help\\r\" (3.0s)".into()));
    }

    #[test]
    fn step_timeout_counts_from_the_previous_step() {
        let (mut p, _) = proof(&["--timeout", "10", "--expect", "a", "--expect", "b"]);
        line(&mut p, Com1, "a", 8.0);
        assert_eq!(p.deadline(), Some(secs(18.0)));
        p.feed(Event::Tick { now: secs(17.9) });
        assert!(p.outcome().is_none());
        p.feed(Event::Tick { now: secs(18.1) });
        assert_eq!(fail_reason(&p), "timed out waiting for com1 line \"b\" after 10s");
    }

    #[test]
    fn late_line_is_a_timeout() {
        let (mut p, _) = proof(&["--expect-log", "re:done.*", "--within", "2.5"]);
        line(&mut p, Com2, "done now", 2.6);
        assert_eq!(fail_reason(&p), "timed out waiting for com2 line \"re:done.*\" after 2.5s");
    }

    #[test]
    fn exit_timeout() {
        let (mut p, _) = proof(&["--exit", "success", "--within", "3"]);
        p.feed(Event::Tick { now: secs(3.5) });
        assert_eq!(fail_reason(&p), "timed out waiting for QEMU to exit (success) after 3s");
    }

    #[test]
    fn builtin_fail_lines() {
        let (mut p, _) = proof(&["--expect", "never"]);
        line(&mut p, Com2, "[1.0] KERNEL PANIC: out of frames", 1.0);
        assert_eq!(fail_reason(&p), "fail line on com2: \"[1.0] KERNEL PANIC: out of frames\"");
        let (mut p, _) = proof(&[]);
        line(&mut p, Com1, "EXCEPTION: #GP", 1.0);
        assert_eq!(fail_reason(&p), "fail line on com1: \"EXCEPTION: #GP\"");
    }

    #[test]
    fn fail_line_wins_over_a_matching_expect() {
        let (mut p, _) = proof(&["--expect", "EXCEPTION: #PF"]);
        line(&mut p, Com1, "EXCEPTION: #PF", 1.0);
        assert_eq!(fail_reason(&p), "fail line on com1: \"EXCEPTION: #PF\"");
    }

    #[test]
    fn extra_fail_patterns() {
        let (mut p, _) = proof(&["--fail-on", "assertion failed", "--fail-on", "re:ERR \\d+"]);
        line(&mut p, Com1, "ERR x", 0.1);
        line(&mut p, Com1, "ERR 1 extra", 0.2);
        assert!(p.outcome().is_none());
        line(&mut p, Com2, "ERR 12", 0.3);
        assert_eq!(fail_reason(&p), "fail line on com2: \"ERR 12\"");
        let (mut p, _) = proof(&["--fail-on", "assertion failed"]);
        line(&mut p, Com2, "test: assertion failed: x", 0.3);
        assert!(p.outcome().is_some());
    }

    #[test]
    fn allowed_fail_lines() {
        let (mut p, _) = proof(&[
            "--allow-fail-line",
            "EXCEPTION: #PF",
            "--expect-log",
            "re:EXCEPTION: #PF at 0x[0-9a-f]+",
            "--expect",
            "recovered",
        ]);
        line(&mut p, Com2, "EXCEPTION: #PF at 0xdead", 1.0);
        assert!(p.outcome().is_none());
        line(&mut p, Com1, "recovered", 1.5);
        // Other faults still fail.
        line(&mut p, Com2, "EXCEPTION: #GP", 1.6);
        assert_eq!(fail_reason(&p), "fail line on com2: \"EXCEPTION: #GP\"");
    }

    #[test]
    fn exit_before_a_pending_step() {
        let (mut p, _) = proof(&["--expect", "a", "--expect", "b"]);
        line(&mut p, Com1, "a", 0.5);
        exited(&mut p, 35, 0.7);
        assert_eq!(
            fail_reason(&p),
            "QEMU exited with status 35 (guest code 17) before step 2 (expect com1 \"b\")"
        );
        let (mut p, _) = proof(&["--expect", "a"]);
        p.feed(Event::Exited { status: QemuStatus::Signal(9), at: secs(1.0) });
        assert_eq!(
            fail_reason(&p),
            "QEMU was killed by signal 9 before step 1 (expect com1 \"a\")"
        );
    }

    #[test]
    fn exit_expectations() {
        let (mut p, _) = proof(&[]);
        exited(&mut p, 0, 1.0);
        assert_eq!(
            fail_reason(&p),
            "QEMU exit status 0 (guest reset or power-off), expected success"
        );

        let (mut p, _) = proof(&["--exit", "failure"]);
        exited(&mut p, 33, 1.0);
        assert_eq!(fail_reason(&p), "QEMU exit status 33 (guest code 16), expected failure");
        let (mut p, _) = proof(&["--exit", "failure"]);
        exited(&mut p, 3, 1.0);
        assert!(passed(&p));

        let (mut p, _) = proof(&["--exit", "17"]);
        exited(&mut p, 33, 1.0);
        assert_eq!(
            fail_reason(&p),
            "QEMU exit status 33 (guest code 16), expected guest code 17 (status 35)"
        );
        let (mut p, _) = proof(&["--exit", "17"]);
        exited(&mut p, 35, 1.0);
        assert!(passed(&p));
    }

    #[test]
    fn exit_none_passes_after_the_last_step_and_never_times_out() {
        let (p, _) = proof(&["--exit", "none"]);
        assert!(passed(&p));
        let (mut p, _) = proof(&["--expect", "up", "--exit", "none"]);
        assert!(p.outcome().is_none());
        line(&mut p, Com1, "up", 4.0);
        assert_eq!(p.outcome(), Some(&Outcome::Pass { elapsed: secs(4.0) }));
        assert_eq!(p.deadline(), None);
    }

    #[test]
    fn lines_after_the_outcome_are_recorded_only() {
        let (mut p, _) = proof(&["--exit", "none"]);
        line(&mut p, Com1, "KERNEL PANIC", 1.0);
        assert!(passed(&p));
        assert_eq!(p.history(Com1).len(), 1);
    }

    #[test]
    fn abort_keeps_the_first_reason() {
        let (mut p, _) = proof(&[]);
        p.abort(FailReason::Io("could not write to com1: broken pipe".into()), secs(1.0));
        p.abort(FailReason::Io("second".into()), secs(2.0));
        assert_eq!(fail_reason(&p), "could not write to com1: broken pipe");
    }

    #[test]
    fn startup_reason_text() {
        let reason = FailReason::Startup("image x.iso: No such file or directory".into());
        assert_eq!(
            reason.to_string(),
            "could not start QEMU: image x.iso: No such file or directory"
        );
    }
}
