//! `qemu-proof`: boots a capOS image in QEMU, watches both serial ports, runs a list of
//! steps and reports pass or fail. Every QEMU proof of capOS is one call of this tool.
//!
//! # Command line
//!
//! ```text
//! qemu-proof --name NAME --image PATH
//!            [--firmware bios|uefi] [--smp N] [--mem SIZE] [--machine q35|pc]
//!            [--timeout SECS] [--out DIR] [--qemu-arg ARG]...
//!            [--fail-on TEXT]... [--allow-fail-line TEXT]...
//!            STEP...
//!
//! STEP:  --expect TEXT [--within SECS]        a COM1 line equal to TEXT
//!        --expect-log TEXT [--within SECS]    a COM2 (debug log) line equal to TEXT
//!        --send TEXT                          write TEXT to COM1
//!        --exit success|failure|CODE|none [--within SECS]   last step only
//! ```
//!
//! Options:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `--name NAME` | required | names the proof and its output directory (`[A-Za-z0-9._-]`) |
//! | `--image PATH` | required | `*.iso` boots as a CD-ROM (`-cdrom`), anything else as a raw IDE disk |
//! | `--firmware bios\|uefi` | `bios` | SeaBIOS, or OVMF from `/usr/share/ovmf/OVMF.fd` (Debian `ovmf`) |
//! | `--smp N` | 1 | CPUs (1–255) |
//! | `--mem SIZE` | `128M` | guest memory, `DIGITS[KMGT]` |
//! | `--machine q35\|pc` | `q35` | QEMU machine type |
//! | `--timeout SECS` | 30 | timeout of every step without `--within`; fractions allowed |
//! | `--out DIR` | `target/proofs/NAME` | output directory |
//! | `--qemu-arg ARG` | | one extra raw QEMU argument, repeatable; `--qemu-arg -cpu --qemu-arg max` replaces the default `-cpu qemu64`; KVM is refused |
//! | `--fail-on TEXT` | | a line containing TEXT on either port fails the proof, repeatable |
//! | `--allow-fail-line TEXT` | | a line containing TEXT is never a fail line, repeatable |
//!
//! Options take their value from the next argument, even if it starts with `--`, or after
//! `=` (`--smp=2`). `--help` prints the usage.
//!
//! # Proof files
//!
//! `qemu-proof --proof tools/proofs/NAME.toml --kernel ELF --module PATH...` reads a proof
//! file ([`file`]): the images to build (kernel command line, optional boot manifest), the
//! machine, the fail lines and the steps of one or more runs, or a script to run. [`suite`]
//! builds the images with `tools/mkiso.sh` and `tools/manifest.sh` and runs each run as the
//! options below would. `--run NAME` runs one run only; `--check` only reads the file. The
//! format is described in `docs/src/testing.md`.
//!
//! # Steps
//!
//! Steps run strictly in the order given.
//!
//! - `--expect TEXT` / `--expect-log TEXT` wait for a line on COM1 / COM2 equal to TEXT.
//!   Lines are compared after removing ANSI escape sequences (colours, cursor movement),
//!   carriage returns at the start and whitespace (`\r` included) at the end; the logs and
//!   the failure output show lines in the same form. TEXT starting
//!   with `re:` is a regular expression (Rust `regex` syntax) matched against the whole
//!   line: `re:cpu \d+ online` is `^(?:cpu \d+ online)$`.
//! - Each port keeps its whole history and has its own cursor: an expect looks at the
//!   lines of its port that follow the line matched by the previous expect on the same
//!   port, including lines that arrived before the step began. A line before the cursor
//!   never matches, so the same text expected twice needs two lines.
//! - `--within SECS` sets the timeout of the step just before it (an expect or the exit);
//!   a step's time runs from the end of the step before (from the boot for the first).
//! - `--send TEXT` writes TEXT to COM1, with the escapes `\r` `\n` `\t` `\0` `\e` `\\`
//!   `\xNN`, and `\B`, a break on the line. It does not wait: put an `--expect` for the
//!   prompt before it. COM1 is a telnet connection (QEMU `telnet=on`): the harness doubles a
//!   0xff data byte, sends `\B` as `IAC BRK`, and drops the option negotiation QEMU sends
//!   when it connects.
//! - `--exit` is the last step, `--exit success` if absent:
//!   - `success`: QEMU exits with status 33, i.e. the guest wrote `0x10` to the
//!     `isa-debug-exit` device (port `0xf4`); see [`status`].
//!   - `failure`: QEMU exits with any status but 33 (being killed by a signal is not one).
//!   - `CODE` (0–127, decimal or `0x` hex): the guest wrote exactly CODE: status
//!     `(CODE << 1) | 1`.
//!   - `none`: do not wait; QEMU is killed as soon as the steps before have passed.
//!
//! # Fail lines
//!
//! Every line of both ports is checked on arrival. A line containing `KERNEL PANIC` or
//! `EXCEPTION:`, or matching a `--fail-on` pattern, fails the proof at once, even when a
//! step expects it. `--allow-fail-line TEXT` exempts the lines containing TEXT (or
//! matching `re:REGEX`): a proof that provokes a fault on purpose allows exactly the line
//! it expects, and any other panic or exception still fails it.
//!
//! # QEMU
//!
//! ```text
//! qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64 -smp N -m SIZE -display none
//!   -no-reboot -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04
//!   -chardev socket,id=com1,path=OUT/com1.sock,server=on,wait=on,telnet=on -serial chardev:com1
//!   -chardev socket,id=com2,path=OUT/com2.sock -serial chardev:com2
//!   [-bios OVMF.fd] -cdrom IMAGE | -drive file=IMAGE,format=raw,if=ide   [--qemu-arg ...]
//! ```
//!
//! The two Unix sockets live in the output directory (or a temporary directory if its
//! path is too long for a socket): QEMU listens on `com1` as a telnet server and waits for
//! the harness to connect before it starts the guest; the harness listens on `com2` and
//! QEMU connects to it. QEMU always runs
//! under TCG. It is killed and reaped when the proof ends, pass or fail; it shares the
//! harness's process group, so Ctrl-C in a terminal stops it too.
//!
//! # Output
//!
//! In the output directory (`target/proofs/NAME` by default), rewritten by each run:
//! `com1.log` and `com2.log` (every line as it arrives, flushed per line) and `qemu.log`
//! (the QEMU command line, then QEMU's stdout and stderr).
//!
//! On stdout:
//!
//! ```text
//! proof boot: boot (bios, smp 2, 128M)
//!   ok  com1 "capOS kernel ready" (1.8s)
//!   >>  com1 "help\r" (1.8s)
//!   ok  exit status 33 (guest code 16) (2.3s)
//! proof boot: PASS (2.3s)
//! ```
//!
//! Exit status 0 on PASS. On FAIL the last line is `proof NAME: FAIL: REASON`, the exit
//! status is 1, and stderr gets the last 20 lines of each port (prefixed `com1| ` and
//! `com2| `) and of QEMU's output (`qemu| `). REASON is one of:
//!
//! - `timed out waiting for com1 line "TEXT" after 30s`
//! - `timed out waiting for QEMU to exit (success) after 30s`
//! - `fail line on com2: "LINE"`
//! - `QEMU exited with status 35 (guest code 17) before step 3 (expect com1 "TEXT")`
//! - `QEMU exit status 0 (guest reset or power-off), expected success`
//! - `could not start QEMU: ...` (missing image or firmware, QEMU not installed, QEMU
//!   exiting before it connected the serial ports)
//! - `could not write to com1: ...`
//!
//! A usage error prints a message and exits with status 2.
//!
//! # Structure
//!
//! [`cli`] parses the command line into a [`cli::ProofConfig`]. [`machine::Proof`] is the
//! state machine: it is fed [`machine::Event`]s (a line, QEMU's exit, a clock tick) and
//! returns [`machine::Action`]s (write to COM1, print progress) until it reaches an
//! [`machine::Outcome`]; it does no I/O. [`runner::run`] does the I/O around it: sockets,
//! one reader thread per port, the QEMU process ([`qemu`]) and the logs.

pub mod cli;
pub mod escape;
pub mod file;
pub mod machine;
pub mod pattern;
pub mod qemu;
pub mod runner;
pub mod status;
pub mod suite;

pub use cli::{parse_args, Command, FileCommand, ProofConfig, Step, Stream, UsageError, USAGE};
pub use machine::{Action, Event, FailReason, Outcome, Proof};
pub use runner::{run, RunReport};
pub use suite::{run_file, SuiteError};
