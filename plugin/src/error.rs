//! weavice's errors and the one mapping from them to CNI error codes.

use conf::{ConfError, ErrorCode};
use ipam::IpamError;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("network namespace {path}: {why}")]
    Netns { path: String, why: String },
    #[error("{op}: {source}")]
    Netlink { op: String, source: crate::link::socket::NlError },
    #[error("interface {ifname} already exists in {netns}; each attachment needs its own CNI_IFNAME")]
    InterfaceExists { ifname: String, netns: String },
    #[error("sysctl {key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
    #[error("firewall: {0}")]
    Firewall(String),
    #[error("{0}")]
    Kernel(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("state {path}: {why}")]
    State { path: String, why: String },
    #[error("IPAM plugin {plugin}: {msg}")]
    Delegate { plugin: String, msg: String, code: Option<u32> },
    #[error("no attachment {container_id}/{ifname} in network {network}: it was never added, or was deleted")]
    UnknownAttachment { network: String, container_id: String, ifname: String },
    #[error("host port {mapping} is already mapped by {holder}; pick another hostPort")]
    PortInUse { mapping: String, holder: String },
    #[error("CHECK: {0}")]
    Check(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<PluginError>),
}

impl PluginError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PluginError {
        let what = what.into();
        move |source| PluginError::Io { what, source }
    }

    pub fn netlink(op: impl Into<String>) -> impl FnOnce(crate::link::socket::NlError) -> PluginError {
        let op = op.into();
        move |source| PluginError::Netlink { op, source }
    }

    /// Ok for no errors, the error itself for one, `Multiple` for more:
    /// for verbs that run every step and report all failures (DEL, GC).
    pub fn all(mut errors: Vec<PluginError>) -> Result<(), PluginError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(PluginError::Multiple(errors)),
        }
    }

    /// The CNI code for this error. Every variant decides here, nowhere else.
    pub fn code(&self) -> u32 {
        let code = match self {
            PluginError::Conf(e) => e.code(),
            PluginError::Ipam(e) => e.code(),
            PluginError::Netns { .. } => ErrorCode::InvalidEnvironment,
            PluginError::Netlink { .. }
            | PluginError::Sysctl { .. }
            | PluginError::Firewall(_)
            | PluginError::Kernel(_) => ErrorCode::Kernel,
            PluginError::InterfaceExists { .. } => ErrorCode::InterfaceExists,
            PluginError::Io { .. } => ErrorCode::Io,
            PluginError::State { .. } => ErrorCode::State,
            PluginError::Delegate { code: Some(c), .. } => return *c,
            PluginError::Delegate { code: None, .. } => ErrorCode::Delegate,
            PluginError::UnknownAttachment { .. } => ErrorCode::UnknownContainer,
            PluginError::Check(_) => ErrorCode::CheckFailed,
            PluginError::PortInUse { .. } => ErrorCode::PortInUse,
            PluginError::Multiple(errs) => return errs.first().map_or(ErrorCode::Kernel.code(), PluginError::code),
        };
        code.code()
    }

    /// STATUS answers 50 (cannot work) or 51 (cannot ADD now).
    pub fn status_code(&self) -> u32 {
        match self {
            PluginError::Conf(e) => e.code().code(),
            PluginError::Ipam(IpamError::Conf(e)) => e.code().code(),
            PluginError::Ipam(e) => e.status_code().code(),
            PluginError::Delegate { code: Some(c @ (50 | 51)), .. } => *c,
            _ => ErrorCode::PluginNotAvailable.code(),
        }
    }
}
