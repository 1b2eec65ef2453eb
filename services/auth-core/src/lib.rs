//! Identity logic of capOS without I/O, shared by the credential store, the
//! session manager and the host tool `mkverifier`:
//!
//! - [`Verifier`]: a password verifier, Argon2id (RustCrypto `argon2`) in PHC
//!   string form (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Hashing
//!   takes its working memory from the caller ([`Verifier::blocks`]), so a
//!   service with a small heap can map it through `VirtualMemory`.
//! - [`check_account_name`] and [`check_new_password`]: what an account may be
//!   called and what a new password must be.
//! - [`Throttle`]: the growing delay after failed logins, per account name.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

pub use argon2::Block;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB (= 1 KiB blocks).
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// The cost new verifiers get: the first of the OWASP Argon2id
/// configurations (19 MiB, 2 passes, 1 lane).
pub const DEFAULT_COST: Cost = Cost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };

/// The most memory a verifier may ask for (64 MiB): a seeded verifier cannot
/// make the store map more.
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// The most passes a verifier may ask for.
pub const MAX_ITERATIONS: u32 = 16;
/// Salt bytes of new verifiers.
pub const SALT_LEN: usize = 16;
/// Hash bytes of new verifiers.
pub const HASH_LEN: usize = 32;
/// Shortest accepted password, in bytes.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password, in bytes.
pub const MAX_PASSWORD_LEN: usize = 128;
/// Longest account name.
pub const MAX_NAME_LEN: usize = 32;

/// Why a verifier string or a hashing request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifierError {
    /// Not a PHC string.
    NotPhc(String),
    /// A PHC string of another algorithm.
    Algorithm(String),
    /// Not Argon2 version 19.
    Version,
    /// Parameters Argon2 rejects.
    Params(String),
    /// Parameters over this system's limits.
    TooCostly(Cost),
    /// No salt, or one of a bad length.
    Salt,
    /// No hash, or one of a bad length.
    Hash,
    /// The working memory given is smaller than the cost needs.
    Memory { needed: usize, given: usize },
}

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPhc(e) => write!(f, "not a PHC verifier string: {e}"),
            Self::Algorithm(a) => write!(f, "algorithm {a:?} is not argon2id"),
            Self::Version => f.write_str("argon2 version must be 19 (v=19)"),
            Self::Params(e) => write!(f, "bad argon2 parameters: {e}"),
            Self::TooCostly(c) => write!(
                f,
                "cost m={},t={},p={} is over the limit m<={MAX_MEMORY_KIB},t<={MAX_ITERATIONS},p=1",
                c.memory_kib, c.iterations, c.parallelism
            ),
            Self::Salt => write!(f, "the salt is missing or not 8..=64 bytes"),
            Self::Hash => write!(f, "the hash is missing or not 16..=64 bytes"),
            Self::Memory { needed, given } => {
                write!(f, "hashing needs {needed} blocks of memory, {given} given")
            }
        }
    }
}

/// A password verifier: cost, salt and Argon2id hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    cost: Cost,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the salt nor the hash is printed by accident.
        f.debug_struct("Verifier").field("cost", &self.cost).finish_non_exhaustive()
    }
}

fn argon2(cost: Cost, out_len: usize) -> Result<Argon2<'static>, VerifierError> {
    check_cost(cost)?;
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(out_len))
        .map_err(|e| VerifierError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn check_cost(cost: Cost) -> Result<(), VerifierError> {
    if cost.memory_kib > MAX_MEMORY_KIB
        || cost.iterations > MAX_ITERATIONS
        || cost.parallelism != 1
        || cost.iterations == 0
    {
        return Err(VerifierError::TooCostly(cost));
    }
    Ok(())
}

impl Verifier {
    /// Blocks of working memory hashing with `cost` needs.
    pub fn blocks(cost: Cost) -> usize {
        cost.memory_kib as usize
    }

    /// Hashes `password` with `salt` (8..=64 bytes) and `cost`, working in
    /// `memory` (at least [`Verifier::blocks`] blocks).
    pub fn make(
        password: &[u8],
        salt: &[u8],
        cost: Cost,
        memory: &mut [Block],
    ) -> Result<Verifier, VerifierError> {
        if !(8..=64).contains(&salt.len()) {
            return Err(VerifierError::Salt);
        }
        let hash = hash(password, salt, cost, HASH_LEN, memory)?;
        Ok(Verifier { cost, salt: salt.to_vec(), hash })
    }

    /// Reads a PHC string.
    pub fn parse(phc: &str) -> Result<Verifier, VerifierError> {
        let parsed = PasswordHash::new(phc).map_err(|e| VerifierError::NotPhc(e.to_string()))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(VerifierError::Algorithm(parsed.algorithm.as_str().into()));
        }
        if parsed.version != Some(19) {
            return Err(VerifierError::Version);
        }
        let params = Params::try_from(&parsed).map_err(|e| VerifierError::Params(e.to_string()))?;
        let cost = Cost {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        };
        check_cost(cost)?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed
            .salt
            .ok_or(VerifierError::Salt)?
            .decode_b64(&mut salt_buf)
            .map_err(|_| VerifierError::Salt)?
            .to_vec();
        if salt.len() < 8 {
            return Err(VerifierError::Salt);
        }
        let hash = parsed.hash.ok_or(VerifierError::Hash)?.as_bytes().to_vec();
        if !(16..=64).contains(&hash.len()) {
            return Err(VerifierError::Hash);
        }
        Ok(Verifier { cost, salt, hash })
    }

    /// The PHC string.
    pub fn to_phc(&self) -> String {
        let salt = SaltString::encode_b64(&self.salt).map(|s| s.as_str().to_string());
        let hash = Output::new(&self.hash).map(|o| o.to_string());
        match (salt, hash) {
            (Ok(salt), Ok(hash)) => alloc::format!(
                "$argon2id$v=19$m={},t={},p={}${salt}${hash}",
                self.cost.memory_kib,
                self.cost.iterations,
                self.cost.parallelism
            ),
            // Lengths were checked when the verifier was made or parsed.
            _ => String::new(),
        }
    }

    /// The cost.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// Whether `password` matches, comparing in constant time.
    pub fn verify(&self, password: &[u8], memory: &mut [Block]) -> Result<bool, VerifierError> {
        let computed = hash(password, &self.salt, self.cost, self.hash.len(), memory)?;
        Ok(constant_time_eq(&computed, &self.hash))
    }
}

fn hash(
    password: &[u8],
    salt: &[u8],
    cost: Cost,
    out_len: usize,
    memory: &mut [Block],
) -> Result<Vec<u8>, VerifierError> {
    let needed = Verifier::blocks(cost);
    let given = memory.len();
    let memory = memory.get_mut(..needed).ok_or(VerifierError::Memory { needed, given })?;
    let mut out = alloc::vec![0u8; out_len];
    argon2(cost, out_len)?
        .hash_password_into_with_memory(password, salt, &mut out, memory)
        .map_err(|e| VerifierError::Params(e.to_string()))?;
    Ok(out)
}

/// Equality whose time does not depend on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an account name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong(usize),
    /// A character outside `a-z 0-9 _ -`, or a first character that is not
    /// a letter or `_`.
    BadChar(char),
    /// The name of the anonymous session.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the account name is empty"),
            Self::TooLong(n) => {
                write!(f, "the account name has {n} characters (at most {MAX_NAME_LEN})")
            }
            Self::BadChar(c) => write!(
                f,
                "the account name may not contain {c:?} (a-z, 0-9, _ and -; first a letter or _)"
            ),
            Self::Reserved => f.write_str("\"anonymous\" is reserved for anonymous sessions"),
        }
    }
}

/// Checks an account name: 1..=32 of `a-z 0-9 _ -`, starting with a letter
/// or `_`, and not `anonymous`.
pub fn check_account_name(name: &str) -> Result<(), NameError> {
    let first = name.chars().next().ok_or(NameError::Empty)?;
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.chars().count()));
    }
    if !(first.is_ascii_lowercase() || first == '_') {
        return Err(NameError::BadChar(first));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        return Err(NameError::BadChar(c));
    }
    if name == ANONYMOUS {
        return Err(NameError::Reserved);
    }
    Ok(())
}

/// The principal of anonymous sessions.
pub const ANONYMOUS: &str = "anonymous";

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_LEN`] bytes.
    TooShort,
    /// More than [`MAX_PASSWORD_LEN`] bytes.
    TooLong,
    /// Contains a control character.
    ControlChar,
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => write!(f, "the password is shorter than {MIN_PASSWORD_LEN} bytes"),
            Self::TooLong => write!(f, "the password is longer than {MAX_PASSWORD_LEN} bytes"),
            Self::ControlChar => f.write_str("the password contains a control character"),
        }
    }
}

/// Checks a new password: 8..=128 bytes, no control characters.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    if password.len() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordError::ControlChar);
    }
    Ok(())
}

/// Delay after the first failed login of a name, in ns.
pub const FIRST_DELAY_NS: u64 = 1_000_000_000;
/// The longest delay, in ns.
pub const MAX_DELAY_NS: u64 = 32_000_000_000;
/// Names whose failures are remembered; beyond it the oldest window goes.
pub const MAX_TRACKED: usize = 256;

/// Failed-login delays per account name: after the n-th failure in a row a
/// name waits `FIRST_DELAY_NS * 2^(n-1)` (at most [`MAX_DELAY_NS`]); an
/// attempt is only checked once its name's delay is over, and a success
/// clears the count.
#[derive(Debug, Default)]
pub struct Throttle {
    names: BTreeMap<String, Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    until_ns: u64,
}

/// The delay after `failures` failures in a row.
pub fn delay_after(failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    let shift = (failures - 1).min(16);
    FIRST_DELAY_NS.saturating_mul(1 << shift).min(MAX_DELAY_NS)
}

impl Throttle {
    /// A throttle that remembers nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// When an attempt for `name` may be checked (0: now).
    pub fn not_before(&self, name: &str) -> u64 {
        self.names.get(name).map_or(0, |w| w.until_ns)
    }

    /// Failures in a row for `name`.
    pub fn failures(&self, name: &str) -> u32 {
        self.names.get(name).map_or(0, |w| w.failures)
    }

    /// Records a failure at `now_ns`; returns the delay it imposes.
    pub fn fail(&mut self, name: &str, now_ns: u64) -> u64 {
        if !self.names.contains_key(name) && self.names.len() >= MAX_TRACKED {
            let oldest = self.names.iter().min_by_key(|(_, w)| w.until_ns).map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                self.names.remove(&oldest);
            }
        }
        let window = self.names.entry(name.into()).or_insert(Window { failures: 0, until_ns: 0 });
        window.failures = window.failures.saturating_add(1);
        let delay = delay_after(window.failures);
        window.until_ns = now_ns.saturating_add(delay);
        delay
    }

    /// Records a success: the name starts afresh.
    pub fn succeed(&mut self, name: &str) {
        self.names.remove(name);
    }
}

#[cfg(test)]
mod tests;
