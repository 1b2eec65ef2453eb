//! Shared by the cap proof programs (`transfer`, `notify`): a tally of
//! checks, each printed as one exact line for the proof harness.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;

use capos_rt::{println, Runtime};

/// Counts passed and failed checks and prints one line per check:
/// `<program>: <line>`, or `<program>: FAILED <line>`.
pub struct Checks<'a> {
    rt: &'a Runtime,
    program: &'static str,
    /// Checks that passed.
    pub passed: u32,
    /// Checks that failed.
    pub failed: u32,
}

impl<'a> Checks<'a> {
    /// A tally for `program`'s lines.
    pub fn new(rt: &'a Runtime, program: &'static str) -> Self {
        Self { rt, program, passed: 0, failed: 0 }
    }

    /// Prints `line` as a passed check when `ok`, else as a failed one.
    pub fn check(&mut self, ok: bool, line: String) {
        if ok {
            self.passed += 1;
            println!(self.rt, "{}: {line}", self.program);
        } else {
            self.failed += 1;
            println!(self.rt, "{}: FAILED {line}", self.program);
        }
    }
}
