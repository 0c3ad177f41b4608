//! The node library's errors. They name the operation and the object; the
//! plugin maps each variant to a CNI error code (plugin/src/error.rs).

use crate::netlink::NlError;
use ipam::filelock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// Input the node cannot act on (a route mixing families, a hostIP the
    /// pod has no address for, a backend whose tools are absent).
    #[error("invalid network configuration: {0}")]
    Invalid(String),
    #[error("network namespace {path}: {why}")]
    Netns { path: String, why: String },
    #[error("{op}: {source}")]
    Netlink { op: String, source: NlError },
    #[error("sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
    /// A netfilter tool or transaction failed.
    #[error("firewall: {0}")]
    Firewall(String),
    /// A set or table weavice installs per network (or per chain) is not
    /// there (`nft flush ruleset`): setting the network up again mends it.
    #[error("firewall: {0} (weavice's tables are missing: `weavice-agent repair` restores them)")]
    NotInstalled(String),
    /// The kernel did something other than asked.
    #[error("{0}")]
    Kernel(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("state {path}: {why}")]
    State { path: String, why: String },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("host port {mapping} is already mapped by {holder}; pick another hostPort")]
    PortInUse { mapping: String, holder: String },
}

impl DatapathError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatapathError {
        let what = what.into();
        move |source| DatapathError::Io { what, source }
    }

    pub fn netlink(op: impl Into<String>) -> impl FnOnce(NlError) -> DatapathError {
        let op = op.into();
        move |source| DatapathError::Netlink { op, source }
    }
}
