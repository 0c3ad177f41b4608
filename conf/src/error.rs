//! The CNI error wire type, its codes, and the errors of parsing.

use serde::Serialize;

/// Error codes from the CNI specification, plus weavice's own (100 and up,
/// documented in docs/errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decode,
    InvalidConfig,
    TryAgainLater,
    /// STATUS: the plugin cannot service ADD requests.
    NotAvailable,
    /// STATUS: not available, and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// weavice: a kernel (netlink, sysctl, netfilter) operation failed.
    Kernel,
    /// weavice: the interface already exists in the container.
    InterfaceExists,
    /// weavice: no free address is left in the configured ranges.
    RangeExhausted,
    /// weavice: a requested static address is taken or outside every range.
    AddressUnavailable,
    /// weavice: a delegated plugin (IPAM) failed or answered nonsense.
    Delegate,
    /// weavice: saved state is unreadable or inconsistent.
    State,
    /// weavice: CHECK found the attachment differs from what ADD made.
    CheckFailed,
    /// weavice: a requested host port is mapped by another pod.
    PortInUse,
}

impl ErrorCode {
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Kernel => 100,
            ErrorCode::InterfaceExists => 101,
            ErrorCode::RangeExhausted => 102,
            ErrorCode::AddressUnavailable => 103,
            ErrorCode::Delegate => 104,
            ErrorCode::State => 105,
            ErrorCode::CheckFailed => 106,
            ErrorCode::PortInUse => 107,
        }
    }
}

/// The error object a plugin prints on stdout (spec section "Error").
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(version: &str, code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError { cni_version: version.to_string(), code: code.code(), msg: msg.into(), details: details.into() }
    }
}

/// What can be wrong with the input: environment or configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    #[error("missing environment variable {0}")]
    MissingEnv(&'static str),
    #[error("invalid environment variable {var}: {why}")]
    InvalidEnv { var: &'static str, why: String },
    #[error("cannot decode network configuration: {0}")]
    Decode(String),
    #[error("invalid network configuration: {0}")]
    Invalid(String),
    #[error("cniVersion {0:?} is not supported (supported: {1})")]
    UnsupportedVersion(String, String),
    #[error("{verb} is not defined for cniVersion {version}; use {needs} or newer")]
    VerbNeedsVersion { verb: &'static str, version: String, needs: &'static str },
}

impl ConfError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfError::MissingEnv(_) | ConfError::InvalidEnv { .. } => ErrorCode::InvalidEnvironment,
            ConfError::Decode(_) => ErrorCode::Decode,
            ConfError::Invalid(_) => ErrorCode::InvalidConfig,
            ConfError::UnsupportedVersion(..) | ConfError::VerbNeedsVersion { .. } => ErrorCode::IncompatibleVersion,
        }
    }
}

/// Deserializes `v`, naming the offending key in the error ("ipam.ranges[0]: ...").
pub fn typed<T: serde::de::DeserializeOwned>(v: &serde_json::Value, prefix: &str) -> Result<T, ConfError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ConfError::Invalid(format!("{prefix}{inner}"))
        } else {
            ConfError::Invalid(format!("{prefix}{path}: {inner}"))
        }
    })
}
