//! Why a manifest could not be read.

use alloc::string::String;
use core::fmt;

/// Why a manifest could not be read (as opposed to [`crate::ValidationError`]:
/// read, but breaking a rule).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The JSON is malformed or does not have the manifest's shape (serde's
    /// message, with line and column).
    Json(String),
    /// The JSON parsed, but a part of it contradicts itself.
    Shape {
        /// Where, as a path of keys: `services.hello.grants.console`.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The bytes are not a `SystemManifest` message.
    Decode(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(message) => write!(f, "manifest JSON: {message}"),
            Self::Shape { path, message } => write!(f, "manifest JSON: {path}: {message}"),
            Self::Decode(message) => write!(f, "manifest: not a SystemManifest: {message}"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl From<capnp::Error> for ConfigError {
    fn from(error: capnp::Error) -> Self {
        Self::Decode(alloc::format!("{error}"))
    }
}

impl From<capnp::NotInSchema> for ConfigError {
    fn from(error: capnp::NotInSchema) -> Self {
        Self::Decode(alloc::format!("{error}"))
    }
}
