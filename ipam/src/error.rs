//! IPAM errors and their CNI codes (the one place that chooses them).

use crate::filelock::LockError;
use conf::{ConfError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error("no free address left in {0}; widen the range or release stale reservations (weavice GC)")]
    Exhausted(String),
    #[error("requested address {ip} is {why}")]
    Unavailable { ip: String, why: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("reservation check failed: {0}")]
    Check(String),
}

impl IpamError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IpamError {
        let what = what.into();
        move |source| IpamError::Io { what, source }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            IpamError::Conf(e) => e.code(),
            IpamError::Exhausted(_) => ErrorCode::RangeExhausted,
            IpamError::Unavailable { .. } => ErrorCode::AddressUnavailable,
            IpamError::Io { .. } => ErrorCode::Io,
            IpamError::Lock(LockError::Timeout { .. }) => ErrorCode::TryAgainLater,
            IpamError::Lock(LockError::Open { .. }) => ErrorCode::Io,
            IpamError::Check(_) => ErrorCode::CheckFailed,
        }
    }

    /// STATUS has its own codes: 51 when ADD would fail for lack of
    /// addresses, 50 when the plugin cannot work at all.
    /// STATUS: whatever keeps IPAM from working means ADD cannot be served
    /// (an exhausted range included); existing pods keep their addresses.
    pub fn status_code(&self) -> ErrorCode {
        ErrorCode::NotAvailable
    }
}
