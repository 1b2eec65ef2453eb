//! Transport error codes: the `status` of a [`Cqe`](crate::Cqe), and the
//! negated return value of a failed `cap_enter`.

use core::fmt;

/// `Cqe::status` of an operation that succeeded.
pub const STATUS_OK: u32 = 0;

/// Why the kernel could not carry out a ring operation.
///
/// These are transport errors: the request never reached, or never came
/// back from, the object it named. An object's own failure is an application
/// error, reported as [`AppError`](TransportError::AppError) with the details
/// in the results message. Values are fixed by the ABI and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum TransportError {
    /// The `CapId` slot index is out of range for the cap table, or the slot is empty.
    InvalidCap = 1,
    /// The `CapId` generation does not match the slot: the cap was released and
    /// the id is stale (or forged).
    StaleCap = 2,
    /// The cap does not speak the interface the SQE's `interface_id` names.
    WrongInterface = 3,
    /// The interface has no method with the SQE's `method` ordinal.
    BadMethod = 4,
    /// A params, results or transfer address range is not mapped with the needed
    /// access in the caller's user address space, or leaves user space.
    BadPointer = 5,
    /// A field holds a value the ABI does not allow (unknown flag bits, nonzero
    /// reserved fields, a malformed message, a corrupted ring header).
    Malformed = 6,
    /// The peer process died or closed its endpoint before answering.
    Disconnected = 7,
    /// The object's creator revoked this cap.
    Revoked = 8,
    /// The kernel ran out of memory while handling the request.
    NoMemory = 9,
    /// A bounded queue or buffer had no room (pending calls, in-flight
    /// requests, a results buffer too small for the results and result caps).
    Overflow = 10,
    /// The operation did not complete before its deadline.
    Timeout = 11,
    /// The SQE opcode (or the system call number) is unknown, reserved or not
    /// supported yet.
    BadOpcode = 12,
    /// A params or results length, or a transfer count, exceeds the ABI limit.
    TooLarge = 13,
    /// The callee reported an application error; the details are in the results message.
    AppError = 14,
    /// A RETURN names a call id the endpoint is not serving: never received,
    /// or already answered.
    UnknownCall = 15,
    /// An address the operation works on is not aligned as it requires
    /// (a `ParkSpace` word must be 4-byte aligned).
    Misaligned = 16,
    /// A per-process limit was reached (the number of threads).
    LimitReached = 17,
    /// The object's state does not allow the operation (a thread joined
    /// twice).
    BadState = 18,
    /// A limit of the caller's resource profile was reached (frames,
    /// kernel memory, threads, cap slots or open calls), or the kernel
    /// keeps what is left for itself.
    QuotaExceeded = 19,
}

impl TransportError {
    /// Every error code, in value order.
    pub const ALL: [TransportError; 19] = [
        TransportError::InvalidCap,
        TransportError::StaleCap,
        TransportError::WrongInterface,
        TransportError::BadMethod,
        TransportError::BadPointer,
        TransportError::Malformed,
        TransportError::Disconnected,
        TransportError::Revoked,
        TransportError::NoMemory,
        TransportError::Overflow,
        TransportError::Timeout,
        TransportError::BadOpcode,
        TransportError::TooLarge,
        TransportError::AppError,
        TransportError::UnknownCall,
        TransportError::Misaligned,
        TransportError::LimitReached,
        TransportError::BadState,
        TransportError::QuotaExceeded,
    ];

    /// The error with code `value`; `None` for [`STATUS_OK`] and unknown codes.
    pub const fn from_u32(value: u32) -> Option<TransportError> {
        Some(match value {
            1 => TransportError::InvalidCap,
            2 => TransportError::StaleCap,
            3 => TransportError::WrongInterface,
            4 => TransportError::BadMethod,
            5 => TransportError::BadPointer,
            6 => TransportError::Malformed,
            7 => TransportError::Disconnected,
            8 => TransportError::Revoked,
            9 => TransportError::NoMemory,
            10 => TransportError::Overflow,
            11 => TransportError::Timeout,
            12 => TransportError::BadOpcode,
            13 => TransportError::TooLarge,
            14 => TransportError::AppError,
            15 => TransportError::UnknownCall,
            16 => TransportError::Misaligned,
            17 => TransportError::LimitReached,
            18 => TransportError::BadState,
            19 => TransportError::QuotaExceeded,
            _ => return None,
        })
    }

    /// The numeric code, as stored in `Cqe::status`.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The variant name, e.g. `"InvalidCap"`.
    pub const fn name(self) -> &'static str {
        match self {
            TransportError::InvalidCap => "InvalidCap",
            TransportError::StaleCap => "StaleCap",
            TransportError::WrongInterface => "WrongInterface",
            TransportError::BadMethod => "BadMethod",
            TransportError::BadPointer => "BadPointer",
            TransportError::Malformed => "Malformed",
            TransportError::Disconnected => "Disconnected",
            TransportError::Revoked => "Revoked",
            TransportError::NoMemory => "NoMemory",
            TransportError::Overflow => "Overflow",
            TransportError::Timeout => "Timeout",
            TransportError::BadOpcode => "BadOpcode",
            TransportError::TooLarge => "TooLarge",
            TransportError::AppError => "AppError",
            TransportError::UnknownCall => "UnknownCall",
            TransportError::Misaligned => "Misaligned",
            TransportError::LimitReached => "LimitReached",
            TransportError::BadState => "BadState",
            TransportError::QuotaExceeded => "QuotaExceeded",
        }
    }

    /// A one-line meaning of the code.
    pub const fn meaning(self) -> &'static str {
        match self {
            TransportError::InvalidCap => "cap slot index out of range or slot empty",
            TransportError::StaleCap => "cap generation does not match its slot (cap released)",
            TransportError::WrongInterface => "cap does not speak the requested interface",
            TransportError::BadMethod => "interface has no method with this ordinal",
            TransportError::BadPointer => "address range not accessible in the user address space",
            TransportError::Malformed => "a field holds a value the ABI does not allow",
            TransportError::Disconnected => "peer died or closed before answering",
            TransportError::Revoked => "cap was revoked by the object's creator",
            TransportError::NoMemory => "kernel out of memory",
            TransportError::Overflow => "a bounded queue or buffer had no room",
            TransportError::Timeout => "deadline passed before completion",
            TransportError::BadOpcode => "opcode or system call number unknown or unsupported",
            TransportError::TooLarge => "length or count over the ABI limit",
            TransportError::AppError => "callee reported an application error (see results)",
            TransportError::UnknownCall => "RETURN names a call the endpoint is not serving",
            TransportError::Misaligned => "address not aligned as the operation requires",
            TransportError::LimitReached => "a per-process limit (threads) was reached",
            TransportError::BadState => "the object's state does not allow the operation",
            TransportError::QuotaExceeded => "a resource profile limit was reached",
        }
    }

    /// The value `cap_enter` leaves in `rax` for this error: the code negated,
    /// as a two's-complement `u64`.
    pub const fn to_syscall_return(self) -> u64 {
        (self as u32 as i64).wrapping_neg() as u64
    }

    /// The error encoded by a negative syscall return value; `None` when `rax`
    /// is not negative or not a known negated code.
    pub const fn from_syscall_return(rax: u64) -> Option<TransportError> {
        let signed = rax as i64;
        if signed < 0 && signed >= -(u32::MAX as i64) {
            TransportError::from_u32(signed.unsigned_abs() as u32)
        } else {
            None
        }
    }
}

/// Shows `Name (meaning)`, e.g. `StaleCap (cap generation does not match ...)`.
impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.meaning())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn codes_round_trip_and_are_fixed() {
        assert_eq!(TransportError::from_u32(STATUS_OK), None);
        assert_eq!(TransportError::from_u32(20), None);
        assert_eq!(TransportError::from_u32(u32::MAX), None);
        for (i, e) in TransportError::ALL.iter().enumerate() {
            assert_eq!(e.code(), i as u32 + 1, "{e} must keep its ABI value");
            assert_eq!(TransportError::from_u32(e.code()), Some(*e));
            assert!(!e.meaning().is_empty());
        }
        assert_eq!(TransportError::InvalidCap as u32, 1);
        assert_eq!(TransportError::Overflow as u32, 10);
        assert_eq!(TransportError::AppError as u32, 14);
        assert_eq!(TransportError::UnknownCall as u32, 15);
    }

    #[test]
    fn names_match_variants() {
        assert_eq!(TransportError::WrongInterface.name(), "WrongInterface");
        assert_eq!(std::format!("{:?}", TransportError::TooLarge), TransportError::TooLarge.name());
        for e in TransportError::ALL {
            assert_eq!(std::format!("{e:?}"), e.name());
            assert!(e.to_string().starts_with(e.name()));
        }
        assert_eq!(
            TransportError::StaleCap.to_string(),
            "StaleCap (cap generation does not match its slot (cap released))"
        );
    }

    #[test]
    fn syscall_return_encoding_round_trips() {
        assert_eq!(TransportError::InvalidCap.to_syscall_return(), u64::MAX);
        assert_eq!(TransportError::Malformed.to_syscall_return() as i64, -6);
        for e in TransportError::ALL {
            assert_eq!(TransportError::from_syscall_return(e.to_syscall_return()), Some(e));
        }
        assert_eq!(TransportError::from_syscall_return(0), None);
        assert_eq!(TransportError::from_syscall_return(5), None);
        assert_eq!(TransportError::from_syscall_return((-20i64) as u64), None);
        assert_eq!(TransportError::from_syscall_return(i64::MIN as u64), None);
    }
}
