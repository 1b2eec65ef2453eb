//! QEMU exit statuses and the `isa-debug-exit` convention.
//!
//! The guest ends a run by writing a value `code` to I/O port `0xf4` (the `isa-debug-exit`
//! device); QEMU then exits with status `(code << 1) | 1`, truncated to 8 bits by the host.
//! capOS writes `0x10` for success, so a successful run ends with QEMU status 33. An even
//! status never comes from the device: 0 is what QEMU returns when the guest resets
//! (with `-no-reboot`, a triple fault included) or powers off. Status 1 is ambiguous: guest
//! code 0, or QEMU failing on its own (bad option, missing file).

use std::fmt;
use std::process::ExitStatus;

/// The guest code capOS writes to `isa-debug-exit` on success.
pub const SUCCESS_GUEST_CODE: u8 = 0x10;

/// The QEMU exit status produced by guest `code`.
pub fn status_for_guest_code(code: u8) -> i32 {
    (i32::from(code) << 1) | 1
}

/// The guest code behind a QEMU exit status, if the status can come from `isa-debug-exit`.
pub fn guest_code(status: i32) -> Option<u8> {
    if (0..=255).contains(&status) && status & 1 == 1 {
        u8::try_from(status >> 1).ok()
    } else {
        None
    }
}

/// How the QEMU process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QemuStatus {
    /// Normal exit with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl From<ExitStatus> for QemuStatus {
    fn from(status: ExitStatus) -> QemuStatus {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => QemuStatus::Code(code),
            (None, Some(signal)) => QemuStatus::Signal(signal),
            (None, None) => QemuStatus::Code(-1),
        }
    }
}

/// `status 33 (guest code 16)`, `status 0 (guest reset or power-off)`, `signal 9`.
impl fmt::Display for QemuStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            QemuStatus::Code(status) => {
                write!(f, "status {status}")?;
                match guest_code(status) {
                    Some(code) => write!(f, " (guest code {code})"),
                    None if status == 0 => f.write_str(" (guest reset or power-off)"),
                    None => Ok(()),
                }
            }
            QemuStatus::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// What the final `--exit` step waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitExpect {
    /// QEMU status 33: the guest wrote 0x10.
    Success,
    /// Any QEMU exit status other than 33 (a kill by signal does not count).
    Failure,
    /// The guest wrote exactly this code.
    GuestCode(u8),
    /// Do not wait: QEMU is killed once the steps before are done.
    None,
}

impl ExitExpect {
    /// Parses `success`, `failure`, `none` or a guest code (decimal or `0x` hex, 0..=127).
    pub fn parse(text: &str) -> Result<ExitExpect, String> {
        let invalid = || {
            format!(
                "invalid --exit value {text:?} (expected success, failure, none or a guest code \
                 0-127)"
            )
        };
        match text {
            "success" => Ok(ExitExpect::Success),
            "failure" => Ok(ExitExpect::Failure),
            "none" => Ok(ExitExpect::None),
            _ => {
                let value = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => text.parse::<u32>(),
                }
                .map_err(|_| invalid())?;
                // The host keeps only 8 bits of (code << 1) | 1.
                match u8::try_from(value) {
                    Ok(code) if code <= 127 => Ok(ExitExpect::GuestCode(code)),
                    _ => Err(invalid()),
                }
            }
        }
    }

    /// Whether QEMU ending with `status` fulfils the expectation.
    pub fn accepts(self, status: QemuStatus) -> bool {
        let success = status_for_guest_code(SUCCESS_GUEST_CODE);
        match (self, status) {
            (ExitExpect::None, _) => true,
            (_, QemuStatus::Signal(_)) => false,
            (ExitExpect::Success, QemuStatus::Code(s)) => s == success,
            (ExitExpect::Failure, QemuStatus::Code(s)) => s != success,
            (ExitExpect::GuestCode(code), QemuStatus::Code(s)) => s == status_for_guest_code(code),
        }
    }
}

impl fmt::Display for ExitExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitExpect::Success => f.write_str("success"),
            ExitExpect::Failure => f.write_str("failure"),
            ExitExpect::None => f.write_str("none"),
            ExitExpect::GuestCode(code) => {
                write!(f, "guest code {code} (status {})", status_for_guest_code(code))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_code_round_trip() {
        assert_eq!(status_for_guest_code(0x10), 33);
        assert_eq!(status_for_guest_code(0), 1);
        assert_eq!(status_for_guest_code(127), 255);
        for code in 0..=127u8 {
            assert_eq!(guest_code(status_for_guest_code(code)), Some(code));
        }
    }

    #[test]
    fn even_or_out_of_range_statuses_have_no_guest_code() {
        assert_eq!(guest_code(0), None);
        assert_eq!(guest_code(32), None);
        assert_eq!(guest_code(-1), None);
        assert_eq!(guest_code(257), None);
        assert_eq!(guest_code(33), Some(16));
        assert_eq!(guest_code(35), Some(17));
    }

    #[test]
    fn status_display() {
        assert_eq!(QemuStatus::Code(33).to_string(), "status 33 (guest code 16)");
        assert_eq!(QemuStatus::Code(0).to_string(), "status 0 (guest reset or power-off)");
        assert_eq!(QemuStatus::Code(2).to_string(), "status 2");
        assert_eq!(QemuStatus::Signal(9).to_string(), "signal 9");
    }

    #[test]
    fn parse_exit_expectations() {
        assert_eq!(ExitExpect::parse("success"), Ok(ExitExpect::Success));
        assert_eq!(ExitExpect::parse("failure"), Ok(ExitExpect::Failure));
        assert_eq!(ExitExpect::parse("none"), Ok(ExitExpect::None));
        assert_eq!(ExitExpect::parse("17"), Ok(ExitExpect::GuestCode(17)));
        assert_eq!(ExitExpect::parse("0x11"), Ok(ExitExpect::GuestCode(17)));
        assert_eq!(ExitExpect::parse("0"), Ok(ExitExpect::GuestCode(0)));
        assert_eq!(ExitExpect::parse("127"), Ok(ExitExpect::GuestCode(127)));
        for bad in ["128", "-1", "ok", "", "0x", "1e3"] {
            let err = ExitExpect::parse(bad).unwrap_err();
            assert!(err.starts_with("invalid --exit value"), "{bad}: {err}");
        }
    }

    #[test]
    fn accepted_statuses() {
        use QemuStatus::{Code, Signal};
        assert!(ExitExpect::Success.accepts(Code(33)));
        assert!(!ExitExpect::Success.accepts(Code(35)));
        assert!(!ExitExpect::Success.accepts(Code(0)));
        assert!(!ExitExpect::Success.accepts(Signal(9)));
        assert!(ExitExpect::Failure.accepts(Code(35)));
        assert!(ExitExpect::Failure.accepts(Code(0)));
        assert!(ExitExpect::Failure.accepts(Code(1)));
        assert!(!ExitExpect::Failure.accepts(Code(33)));
        assert!(!ExitExpect::Failure.accepts(Signal(15)));
        assert!(ExitExpect::GuestCode(17).accepts(Code(35)));
        assert!(!ExitExpect::GuestCode(17).accepts(Code(33)));
        assert!(ExitExpect::GuestCode(16).accepts(Code(33)));
        assert!(ExitExpect::None.accepts(Signal(9)));
    }

    #[test]
    fn expectation_display() {
        assert_eq!(ExitExpect::Success.to_string(), "success");
        assert_eq!(ExitExpect::GuestCode(17).to_string(), "guest code 17 (status 35)");
    }
}
