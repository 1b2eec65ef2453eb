//! The rules a manifest must follow.
//!
//! [`validate`] checks them all and returns every broken rule, in a stable
//! order: the version, the kernel parameters, then each service in
//! declaration order (name, binary, arguments, grants, exports, restart
//! policy, resources), then dependency cycles. Each [`ValidationError`]'s message starts
//! with `manifest: ` and names the service and the field.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::model::{GrantSource, Manifest, Quoted};
use crate::{
    EXPORTER_GRANT, KERNEL_CAP_SOURCES, LOG_LEVELS, MANIFEST_VERSION, MAX_ARGS, MAX_ARGS_BYTES,
    MAX_BACKOFF_MS, MAX_GRANTS, MAX_GRANT_NAME_BYTES, MAX_HOSTNAME_LABEL_LEN, MAX_HOSTNAME_LEN,
    MAX_RESOURCE_CAPS, MAX_RESOURCE_FRAMES, MAX_RESOURCE_KERNEL_BYTES, MAX_RESOURCE_OPEN_CALLS,
    MAX_RESOURCE_THREADS, MAX_RESTARTS, MIN_RESOURCE_FRAMES, MIN_RESOURCE_KERNEL_BYTES,
};

/// What a manifest is checked against: the binaries in the boot package and
/// the kernel cap sources init can grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    binaries: BTreeSet<String>,
    kernel_sources: BTreeSet<String>,
}

impl Context {
    /// A boot package holding `binaries`, with the kernel cap sources of
    /// [`KERNEL_CAP_SOURCES`].
    pub fn new<I, S>(binaries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            binaries: binaries.into_iter().map(Into::into).collect(),
            kernel_sources: KERNEL_CAP_SOURCES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The same boot package with `sources` as the kernel cap sources instead.
    pub fn with_kernel_sources<I, S>(mut self, sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.kernel_sources = sources.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the boot package holds `binary`.
    pub fn has_binary(&self, binary: &str) -> bool {
        self.binaries.contains(binary)
    }

    /// Whether init can grant the kernel cap source `source`.
    pub fn has_kernel_source(&self, source: &str) -> bool {
        self.kernel_sources.contains(source)
    }
}

/// Which name of a grant's source is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceField {
    /// The kernel cap source.
    Kernel,
    /// The service of an export.
    Service,
    /// The export of a service.
    Export,
}

impl SourceField {
    fn describe(self) -> &'static str {
        match self {
            Self::Kernel => "kernel source name",
            Self::Service => "service name",
            Self::Export => "export name",
        }
    }
}

/// Why a host name is not a valid RFC 1123 host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostnameError {
    /// It is empty.
    Empty,
    /// It is longer than [`MAX_HOSTNAME_LEN`].
    TooLong {
        /// Its length (it is ASCII).
        len: usize,
    },
    /// Two dots in a row, or a dot at the start or the end.
    EmptyLabel,
    /// A label has a character other than `a-z`, `0-9` and `-`.
    BadCharacter {
        /// The label.
        label: String,
        /// The first such character.
        character: char,
    },
    /// A label is longer than [`MAX_HOSTNAME_LABEL_LEN`].
    LabelTooLong {
        /// The label.
        label: String,
    },
    /// A label starts with `-`.
    LeadingHyphen {
        /// The label.
        label: String,
    },
    /// A label ends with `-`.
    TrailingHyphen {
        /// The label.
        label: String,
    },
}

impl fmt::Display for HostnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "it is empty"),
            Self::TooLong { len } => {
                write!(f, "it is {len} characters long, more than {MAX_HOSTNAME_LEN}")
            }
            Self::EmptyLabel => {
                write!(f, "it has an empty label (two dots in a row, or a dot at an end)")
            }
            Self::BadCharacter { label, character } => write!(
                f,
                "label {} has '{}', which is not one of a-z, 0-9 and '-'",
                Quoted(label),
                character.escape_debug()
            ),
            Self::LabelTooLong { label } => write!(
                f,
                "label {} is {} characters long, more than {MAX_HOSTNAME_LABEL_LEN}",
                Quoted(label),
                label.len()
            ),
            Self::LeadingHyphen { label } => write!(f, "label {} starts with '-'", Quoted(label)),
            Self::TrailingHyphen { label } => write!(f, "label {} ends with '-'", Quoted(label)),
        }
    }
}

/// Checks that `hostname` is an RFC 1123 host name in lower case: labels of
/// 1 to 63 characters from `a-z`, `0-9` and `-`, neither starting nor ending
/// with `-`, separated by dots, 253 characters at most in all.
pub fn check_hostname(hostname: &str) -> Result<(), HostnameError> {
    if hostname.is_empty() {
        return Err(HostnameError::Empty);
    }
    // Characters first: past this point the name is ASCII, so lengths in
    // bytes are lengths in characters.
    for label in hostname.split('.') {
        if label.is_empty() {
            return Err(HostnameError::EmptyLabel);
        }
        if let Some(character) =
            label.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(HostnameError::BadCharacter { label: label.into(), character });
        }
    }
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(HostnameError::TooLong { len: hostname.len() });
    }
    for label in hostname.split('.') {
        if label.len() > MAX_HOSTNAME_LABEL_LEN {
            return Err(HostnameError::LabelTooLong { label: label.into() });
        }
        if label.starts_with('-') {
            return Err(HostnameError::LeadingHyphen { label: label.into() });
        }
        if label.ends_with('-') {
            return Err(HostnameError::TrailingHyphen { label: label.into() });
        }
    }
    Ok(())
}

/// A rule the manifest breaks. Positions count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// `version` is not [`MANIFEST_VERSION`].
    UnsupportedVersion {
        /// The version given.
        version: u32,
    },
    /// `kernel.hostname` is not an RFC 1123 host name.
    InvalidHostname {
        /// The host name given.
        hostname: String,
        /// What is wrong with it.
        problem: HostnameError,
    },
    /// `kernel.logLevel` is not one of [`LOG_LEVELS`].
    InvalidLogLevel {
        /// The level given.
        level: String,
    },
    /// A service has an empty name.
    EmptyServiceName {
        /// The service's position in `services`.
        position: usize,
    },
    /// Two services have the same name.
    DuplicateService {
        /// The name.
        service: String,
    },
    /// A service has an empty binary name.
    EmptyBinary {
        /// The service.
        service: String,
    },
    /// A service runs a binary the boot package does not hold.
    UnknownBinary {
        /// The service.
        service: String,
        /// The binary.
        binary: String,
        /// The binaries the boot package holds, sorted.
        known: Vec<String>,
    },
    /// A service has more than [`MAX_ARGS`] arguments.
    TooManyArgs {
        /// The service.
        service: String,
        /// How many it has.
        count: usize,
    },
    /// A service's arguments take more than [`MAX_ARGS_BYTES`].
    ArgsTooLong {
        /// The service.
        service: String,
        /// Their size, one NUL per argument included.
        bytes: usize,
    },
    /// An argument has a NUL byte (arguments reach the process NUL-terminated).
    ArgHasNul {
        /// The service.
        service: String,
        /// The argument's position in `args`.
        position: usize,
    },
    /// A grant has an empty name.
    EmptyGrantName {
        /// The service.
        service: String,
        /// The grant's position in `grants`.
        position: usize,
    },
    /// A grant's name is longer than [`MAX_GRANT_NAME_BYTES`].
    GrantNameTooLong {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
    },
    /// A grant's name has a NUL byte.
    GrantNameHasNul {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
    },
    /// Two grants of one service have the same name.
    DuplicateGrant {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
    },
    /// A service that exports caps also grants a cap under the name init
    /// uses for its `ServiceExporter` cap.
    ReservedGrantName {
        /// The service.
        service: String,
    },
    /// A service has more than [`MAX_GRANTS`] grants.
    TooManyGrants {
        /// The service.
        service: String,
        /// How many it has.
        count: usize,
    },
    /// A grant's source names an empty kernel source, service or export.
    EmptyGrantSource {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
        /// Which name is empty.
        field: SourceField,
    },
    /// A grant names a kernel cap source init does not hold.
    UnknownKernelSource {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
        /// The source.
        source: String,
        /// The kernel cap sources there are, sorted.
        known: Vec<String>,
    },
    /// A service is granted one of its own exports.
    SelfGrant {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
        /// The export.
        export: String,
    },
    /// A grant names a service the manifest does not have.
    UnknownService {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
        /// The service it names.
        provider: String,
    },
    /// A grant names an export its service does not export.
    UnknownExport {
        /// The service.
        service: String,
        /// The grant.
        grant: String,
        /// The service it names.
        provider: String,
        /// The export it names.
        export: String,
    },
    /// An export has an empty name.
    EmptyExportName {
        /// The service.
        service: String,
        /// The export's position in `exports`.
        position: usize,
    },
    /// A service lists the same export twice.
    DuplicateExport {
        /// The service.
        service: String,
        /// The export.
        export: String,
    },
    /// `restart.maxRestarts` is more than [`MAX_RESTARTS`].
    MaxRestartsOutOfRange {
        /// The service.
        service: String,
        /// The value given.
        value: u32,
    },
    /// `restart.backoffMs` is more than [`MAX_BACKOFF_MS`].
    BackoffOutOfRange {
        /// The service.
        service: String,
        /// The value given.
        value: u32,
    },
    /// A `resources` field is more than its bound ([`MAX_RESOURCE_FRAMES`],
    /// [`MAX_RESOURCE_KERNEL_BYTES`], [`MAX_RESOURCE_THREADS`],
    /// [`MAX_RESOURCE_CAPS`], [`MAX_RESOURCE_OPEN_CALLS`]).
    ResourceAboveLimit {
        /// The service.
        service: String,
        /// The field's schema name: `frames`, `kernelBytes`, `threads`,
        /// `caps` or `openCalls`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The bound.
        limit: u64,
    },
    /// `resources.frames` or `resources.kernelBytes` is set (not 0) but
    /// less than [`MIN_RESOURCE_FRAMES`] or [`MIN_RESOURCE_KERNEL_BYTES`].
    ResourceBelowMinimum {
        /// The service.
        service: String,
        /// The field's schema name: `frames` or `kernelBytes`.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The minimum.
        minimum: u64,
    },
    /// `resources.caps` is set (not 0) but less than the caps the service is
    /// started with (its grants, and `exporter` if it exports).
    TooFewCapSlots {
        /// The service.
        service: String,
        /// The value given.
        caps: u32,
        /// The caps it is started with.
        needed: usize,
    },
    /// Services are granted each other's exports in a cycle, so none of them
    /// can start first.
    Cycle {
        /// The services of the cycle, each granted an export of the next and
        /// the last one an export of the first; it starts with the one
        /// declared first.
        path: Vec<String>,
    },
    /// `auth.broker` names no service.
    UnknownBroker {
        /// The name given.
        broker: String,
    },
    /// `auth.shell` is not a binary of the boot package.
    UnknownShell {
        /// The binary given.
        shell: String,
    },
    /// A profile has an empty name or shares it with another.
    BadProfileName {
        /// The name.
        profile: String,
    },
    /// A profile names a cap the broker service is not granted.
    ProfileCapNotGranted {
        /// The profile.
        profile: String,
        /// The cap.
        cap: String,
        /// The broker service.
        broker: String,
    },
    /// A profile names `terminal` or `session`, which the broker gives every
    /// session itself.
    ProfileCapReserved {
        /// The profile.
        profile: String,
        /// The cap.
        cap: String,
    },
    /// An account name is not 1..=32 of `a-z 0-9 _ -` starting with a
    /// letter or `_`, is `anonymous`, or is used twice.
    BadAccountName {
        /// The name.
        account: String,
    },
    /// An account names a profile that does not exist.
    UnknownAccountProfile {
        /// The account.
        account: String,
        /// The profile.
        profile: String,
    },
    /// An account's verifier is not an Argon2id PHC string.
    BadVerifier {
        /// The account.
        account: String,
    },
}

/// Caps the broker gives every session itself; profiles may not name them.
pub const SESSION_CAPS: &[&str] = &["terminal", "session"];

/// Writes `items` as a comma-separated list.
struct List<'a>(&'a [String]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", item.escape_debug())?;
        }
        Ok(())
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("manifest: ")?;
        match self {
            Self::UnsupportedVersion { version } => write!(
                f,
                "version is {version}, but this build reads only version {MANIFEST_VERSION}"
            ),
            Self::InvalidHostname { hostname, problem } => write!(
                f,
                "kernel hostname {} is not a valid RFC 1123 host name: {problem}",
                Quoted(hostname)
            ),
            Self::InvalidLogLevel { level } => write!(
                f,
                "kernel logLevel {} is not one of {}",
                Quoted(level),
                LOG_LEVELS.join(", ")
            ),
            Self::EmptyServiceName { position } => {
                write!(f, "the service at position {position} has an empty name")
            }
            Self::DuplicateService { service } => {
                write!(f, "service {} is declared more than once", Quoted(service))
            }
            Self::EmptyBinary { service } => {
                write!(f, "service {} has an empty binary name", Quoted(service))
            }
            Self::UnknownBinary { service, binary, known } => {
                write!(
                    f,
                    "service {} runs binary {}, which is not in the boot package",
                    Quoted(service),
                    Quoted(binary)
                )?;
                if known.is_empty() {
                    write!(f, " (it holds no binaries)")
                } else {
                    write!(f, " (it holds: {})", List(known))
                }
            }
            Self::TooManyArgs { service, count } => write!(
                f,
                "service {} has {count} arguments, more than the {MAX_ARGS} a process may receive",
                Quoted(service)
            ),
            Self::ArgsTooLong { service, bytes } => write!(
                f,
                "service {} has {bytes} bytes of arguments (one NUL each included), \
                 more than the {MAX_ARGS_BYTES} a process may receive",
                Quoted(service)
            ),
            Self::ArgHasNul { service, position } => write!(
                f,
                "service {} has a NUL byte in its argument at position {position}",
                Quoted(service)
            ),
            Self::EmptyGrantName { service, position } => write!(
                f,
                "service {} has a grant with an empty name (grant at position {position})",
                Quoted(service)
            ),
            Self::GrantNameTooLong { service, grant } => write!(
                f,
                "service {} grants {}, a name of {} bytes, more than the {MAX_GRANT_NAME_BYTES} \
                 a cap set entry holds",
                Quoted(service),
                Quoted(grant),
                grant.len()
            ),
            Self::GrantNameHasNul { service, grant } => write!(
                f,
                "service {} grants {}, a name with a NUL byte",
                Quoted(service),
                Quoted(grant)
            ),
            Self::DuplicateGrant { service, grant } => {
                write!(f, "service {} grants {} more than once", Quoted(service), Quoted(grant))
            }
            Self::ReservedGrantName { service } => write!(
                f,
                "service {} exports caps, so init grants it `{EXPORTER_GRANT}`; it cannot grant another cap under that name",
                Quoted(service)
            ),
            Self::TooManyGrants { service, count } => write!(
                f,
                "service {} has {count} grants, more than the {MAX_GRANTS} a cap set holds",
                Quoted(service)
            ),
            Self::EmptyGrantSource { service, grant, field } => write!(
                f,
                "service {} grants {} from an empty {}",
                Quoted(service),
                Quoted(grant),
                field.describe()
            ),
            Self::UnknownKernelSource { service, grant, source, known } => write!(
                f,
                "service {} grants {} from kernel source {}, which does not exist \
                 (kernel sources: {})",
                Quoted(service),
                Quoted(grant),
                Quoted(source),
                List(known)
            ),
            Self::SelfGrant { service, grant, export } => write!(
                f,
                "service {} grants {} from its own export {}",
                Quoted(service),
                Quoted(grant),
                Quoted(export)
            ),
            Self::UnknownService { service, grant, provider } => write!(
                f,
                "service {} grants {} from {}, which is not a service of this manifest",
                Quoted(service),
                Quoted(grant),
                Quoted(provider)
            ),
            Self::UnknownExport { service, grant, provider, export } => write!(
                f,
                "service {} grants {} from {}, which exports no {}",
                Quoted(service),
                Quoted(grant),
                Quoted(provider),
                Quoted(export)
            ),
            Self::EmptyExportName { service, position } => write!(
                f,
                "service {} has an export with an empty name (export at position {position})",
                Quoted(service)
            ),
            Self::DuplicateExport { service, export } => {
                write!(f, "service {} exports {} more than once", Quoted(service), Quoted(export))
            }
            Self::MaxRestartsOutOfRange { service, value } => write!(
                f,
                "service {} restart maxRestarts is {value}, more than the limit of {MAX_RESTARTS}",
                Quoted(service)
            ),
            Self::BackoffOutOfRange { service, value } => write!(
                f,
                "service {} restart backoffMs is {value}, more than the limit of {MAX_BACKOFF_MS}",
                Quoted(service)
            ),
            Self::ResourceAboveLimit { service, field, value, limit } => {
                write!(f, "service {} resources: {field} {value} exceeds {limit}", Quoted(service))
            }
            Self::ResourceBelowMinimum { service, field, value, minimum } => write!(
                f,
                "service {} resources: {field} {value} is below the minimum of {minimum} \
                 (0 means the default)",
                Quoted(service)
            ),
            Self::TooFewCapSlots { service, caps, needed } => write!(
                f,
                "service {} resources: caps {caps} is fewer than the {needed} caps it is started with",
                Quoted(service)
            ),
            Self::UnknownBroker { broker } => {
                write!(f, "auth.broker {} is not a service of this manifest", Quoted(broker))
            }
            Self::UnknownShell { shell } => {
                write!(f, "auth.shell {} is not a binary of the boot package", Quoted(shell))
            }
            Self::BadProfileName { profile } => {
                write!(f, "auth.profiles: profile name {} is empty or used twice", Quoted(profile))
            }
            Self::ProfileCapNotGranted { profile, cap, broker } => write!(
                f,
                "auth.profiles.{}: cap {} is not a grant of the broker service {}",
                profile.escape_debug(),
                Quoted(cap),
                Quoted(broker)
            ),
            Self::ProfileCapReserved { profile, cap } => write!(
                f,
                "auth.profiles.{}: cap {} is given to every session by the broker; a profile may not name it",
                profile.escape_debug(),
                Quoted(cap)
            ),
            Self::BadAccountName { account } => write!(
                f,
                "auth.accounts: account name {} is used twice or is not 1 to 32 of a-z 0-9 _ - starting with a letter or _ (nor \"anonymous\")",
                Quoted(account)
            ),
            Self::UnknownAccountProfile { account, profile } => write!(
                f,
                "auth.accounts.{}: profile {} is not in auth.profiles",
                account.escape_debug(),
                Quoted(profile)
            ),
            Self::BadVerifier { account } => write!(
                f,
                "auth.accounts.{}: verifier is not an Argon2id PHC string ($argon2id$...; make one with mkverifier)",
                account.escape_debug()
            ),
            Self::Cycle { path } => {
                f.write_str("services depend on each other in a cycle: ")?;
                for name in path {
                    write!(f, "{} -> ", Quoted(name))?;
                }
                if let Some(first) = path.first() {
                    write!(f, "{}", Quoted(first))?;
                }
                f.write_str(" (each is granted an export of the next)")
            }
        }
    }
}

impl core::error::Error for ValidationError {}

/// Checks `manifest` against every rule and `context`; returns every broken
/// rule, in the order the module documentation gives.
pub fn validate(manifest: &Manifest, context: &Context) -> Result<(), Vec<ValidationError>> {
    let mut errors = Vec::new();
    if manifest.version != MANIFEST_VERSION {
        errors.push(ValidationError::UnsupportedVersion { version: manifest.version });
    }
    if let Err(problem) = check_hostname(&manifest.kernel.hostname) {
        errors.push(ValidationError::InvalidHostname {
            hostname: manifest.kernel.hostname.clone(),
            problem,
        });
    }
    if !LOG_LEVELS.contains(&manifest.kernel.log_level.as_str()) {
        errors.push(ValidationError::InvalidLogLevel { level: manifest.kernel.log_level.clone() });
    }

    // The first service of each name: grants of exports resolve to it.
    let mut providers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut duplicates: BTreeSet<&str> = BTreeSet::new();
    for (index, service) in manifest.services.iter().enumerate() {
        if service.name.is_empty() {
            continue;
        }
        if providers.contains_key(service.name.as_str()) {
            duplicates.insert(&service.name);
        } else {
            providers.insert(&service.name, index);
        }
    }
    let mut reported_duplicates = BTreeSet::new();

    for (index, service) in manifest.services.iter().enumerate() {
        let name = &service.name;
        if name.is_empty() {
            errors.push(ValidationError::EmptyServiceName { position: index + 1 });
        } else if duplicates.contains(name.as_str()) && reported_duplicates.insert(name.as_str()) {
            errors.push(ValidationError::DuplicateService { service: name.clone() });
        }

        if service.binary.is_empty() {
            errors.push(ValidationError::EmptyBinary { service: name.clone() });
        } else if !context.has_binary(&service.binary) {
            errors.push(ValidationError::UnknownBinary {
                service: name.clone(),
                binary: service.binary.clone(),
                known: context.binaries.iter().cloned().collect(),
            });
        }

        check_args(service, &mut errors);
        check_grants(manifest, &providers, context, index, &mut errors);

        let mut exports = BTreeSet::new();
        let mut reported = BTreeSet::new();
        for (position, export) in service.exports.iter().enumerate() {
            if export.is_empty() {
                errors.push(ValidationError::EmptyExportName {
                    service: name.clone(),
                    position: position + 1,
                });
            } else if !exports.insert(export.as_str()) && reported.insert(export.as_str()) {
                errors.push(ValidationError::DuplicateExport {
                    service: name.clone(),
                    export: export.clone(),
                });
            }
        }

        if service.restart.max_restarts > MAX_RESTARTS {
            errors.push(ValidationError::MaxRestartsOutOfRange {
                service: name.clone(),
                value: service.restart.max_restarts,
            });
        }
        if service.restart.backoff_ms > MAX_BACKOFF_MS {
            errors.push(ValidationError::BackoffOutOfRange {
                service: name.clone(),
                value: service.restart.backoff_ms,
            });
        }

        check_resources(service, &mut errors);
    }

    if let Err(cycle) = crate::start_order(manifest) {
        errors.push(cycle);
    }

    if let Some(auth) = &manifest.auth {
        check_auth(manifest, auth, context, &mut errors);
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Whether `name` is an account name: 1..=32 of `a-z 0-9 _ -`, first a
/// letter or `_`, not `anonymous`.
pub fn is_account_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 32
        && name != "anonymous"
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_auth(
    manifest: &Manifest,
    auth: &crate::AuthConfig,
    context: &Context,
    errors: &mut Vec<ValidationError>,
) {
    let broker = manifest.service(&auth.broker);
    if broker.is_none() {
        errors.push(ValidationError::UnknownBroker { broker: auth.broker.clone() });
    }
    if !context.has_binary(&auth.shell) {
        errors.push(ValidationError::UnknownShell { shell: auth.shell.clone() });
    }
    let mut profiles = BTreeSet::new();
    for profile in &auth.profiles {
        if profile.name.is_empty() || !profiles.insert(profile.name.as_str()) {
            errors.push(ValidationError::BadProfileName { profile: profile.name.clone() });
        }
        for cap in &profile.caps {
            if SESSION_CAPS.contains(&cap.as_str()) {
                errors.push(ValidationError::ProfileCapReserved {
                    profile: profile.name.clone(),
                    cap: cap.clone(),
                });
            } else if let Some(broker) = broker {
                if !broker.grants.iter().any(|g| &g.name == cap) {
                    errors.push(ValidationError::ProfileCapNotGranted {
                        profile: profile.name.clone(),
                        cap: cap.clone(),
                        broker: broker.name.clone(),
                    });
                }
            }
        }
    }
    let mut accounts = BTreeSet::new();
    for account in &auth.accounts {
        if !is_account_name(&account.name) || !accounts.insert(account.name.as_str()) {
            errors.push(ValidationError::BadAccountName { account: account.name.clone() });
        }
        if !profiles.contains(account.profile.as_str()) {
            errors.push(ValidationError::UnknownAccountProfile {
                account: account.name.clone(),
                profile: account.profile.clone(),
            });
        }
        if !account.verifier.starts_with("$argon2id$") {
            errors.push(ValidationError::BadVerifier { account: account.name.clone() });
        }
    }
}

fn check_resources(service: &crate::Service, errors: &mut Vec<ValidationError>) {
    let r = &service.resources;
    let name = &service.name;
    let limits = [
        ("frames", r.frames, MIN_RESOURCE_FRAMES, MAX_RESOURCE_FRAMES),
        ("kernelBytes", r.kernel_bytes, MIN_RESOURCE_KERNEL_BYTES, MAX_RESOURCE_KERNEL_BYTES),
        ("threads", r.threads.into(), 1, MAX_RESOURCE_THREADS.into()),
        ("caps", r.caps.into(), 1, MAX_RESOURCE_CAPS.into()),
        ("openCalls", r.open_calls.into(), 1, MAX_RESOURCE_OPEN_CALLS.into()),
    ];
    for (field, value, minimum, limit) in limits {
        // 0 is "the default", not a limit.
        if value == 0 {
            continue;
        }
        if value > limit {
            errors.push(ValidationError::ResourceAboveLimit {
                service: name.clone(),
                field,
                value,
                limit,
            });
        } else if value < minimum {
            errors.push(ValidationError::ResourceBelowMinimum {
                service: name.clone(),
                field,
                value,
                minimum,
            });
        }
    }
    let needed = service.grants.len() + usize::from(!service.exports.is_empty());
    if r.caps != 0 && (r.caps as usize) < needed {
        errors.push(ValidationError::TooFewCapSlots {
            service: name.clone(),
            caps: r.caps,
            needed,
        });
    }
}

fn check_args(service: &crate::Service, errors: &mut Vec<ValidationError>) {
    let name = &service.name;
    if service.args.len() > MAX_ARGS {
        errors.push(ValidationError::TooManyArgs {
            service: name.clone(),
            count: service.args.len(),
        });
    }
    let bytes: usize = service.args.iter().map(|a| a.len() + 1).sum();
    if bytes > MAX_ARGS_BYTES {
        errors.push(ValidationError::ArgsTooLong { service: name.clone(), bytes });
    }
    for (position, arg) in service.args.iter().enumerate() {
        if arg.contains('\0') {
            errors
                .push(ValidationError::ArgHasNul { service: name.clone(), position: position + 1 });
        }
    }
}

fn check_grants(
    manifest: &Manifest,
    providers: &BTreeMap<&str, usize>,
    context: &Context,
    index: usize,
    errors: &mut Vec<ValidationError>,
) {
    let service = &manifest.services[index];
    let name = &service.name;
    // A service with exports also gets init's `exporter` cap.
    let exporter = usize::from(!service.exports.is_empty());
    if service.grants.len() + exporter > MAX_GRANTS {
        errors.push(ValidationError::TooManyGrants {
            service: name.clone(),
            count: service.grants.len() + exporter,
        });
    }
    if exporter == 1 && service.grants.iter().any(|g| g.name == EXPORTER_GRANT) {
        errors.push(ValidationError::ReservedGrantName { service: name.clone() });
    }
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for (position, grant) in service.grants.iter().enumerate() {
        let g = &grant.name;
        if g.is_empty() {
            errors.push(ValidationError::EmptyGrantName {
                service: name.clone(),
                position: position + 1,
            });
        } else if g.len() > MAX_GRANT_NAME_BYTES {
            errors.push(ValidationError::GrantNameTooLong {
                service: name.clone(),
                grant: g.clone(),
            });
        } else if g.contains('\0') {
            errors
                .push(ValidationError::GrantNameHasNul { service: name.clone(), grant: g.clone() });
        }
        if !g.is_empty() && !seen.insert(g.as_str()) && reported.insert(g.as_str()) {
            errors
                .push(ValidationError::DuplicateGrant { service: name.clone(), grant: g.clone() });
        }

        let empty = |field| ValidationError::EmptyGrantSource {
            service: name.clone(),
            grant: g.clone(),
            field,
        };
        match &grant.source {
            GrantSource::Kernel(source) if source.is_empty() => {
                errors.push(empty(SourceField::Kernel))
            }
            GrantSource::Kernel(source) => {
                if !context.has_kernel_source(source) {
                    errors.push(ValidationError::UnknownKernelSource {
                        service: name.clone(),
                        grant: g.clone(),
                        source: source.clone(),
                        known: context.kernel_sources.iter().cloned().collect(),
                    });
                }
            }
            GrantSource::Service(from) if from.service.is_empty() => {
                errors.push(empty(SourceField::Service))
            }
            GrantSource::Service(from) if from.export.is_empty() => {
                errors.push(empty(SourceField::Export))
            }
            GrantSource::Service(from) if from.service == *name => {
                errors.push(ValidationError::SelfGrant {
                    service: name.clone(),
                    grant: g.clone(),
                    export: from.export.clone(),
                });
            }
            GrantSource::Service(from) => match providers.get(from.service.as_str()) {
                None => errors.push(ValidationError::UnknownService {
                    service: name.clone(),
                    grant: g.clone(),
                    provider: from.service.clone(),
                }),
                Some(&provider) => {
                    if !manifest.services[provider].exports.contains(&from.export) {
                        errors.push(ValidationError::UnknownExport {
                            service: name.clone(),
                            grant: g.clone(),
                            provider: from.service.clone(),
                            export: from.export.clone(),
                        });
                    }
                }
            },
        }
    }
}
