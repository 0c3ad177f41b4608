//! weavice's errors and the one mapping from them to CNI error codes.

use conf::{ConfError, ErrorCode};
use datapath::DatapathError;
use ipam::filelock::LockError;
use ipam::IpamError;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    #[error("interface {ifname} already exists in {netns}; each attachment needs its own CNI_IFNAME")]
    InterfaceExists { ifname: String, netns: String },
    #[error("IPAM plugin {plugin}: {msg}")]
    Delegate { plugin: String, msg: String, code: Option<u32> },
    #[error("no attachment {container_id}/{ifname} in network {network}: it was never added, or was deleted")]
    UnknownAttachment { network: String, container_id: String, ifname: String },
    #[error("CHECK: {0}")]
    Check(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Multiple(Vec<PluginError>),
}

impl PluginError {
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
            PluginError::Datapath(e) => match e {
                DatapathError::Invalid(_) => ErrorCode::InvalidConfig,
                DatapathError::Netns { .. } => ErrorCode::InvalidEnvironment,
                DatapathError::Netlink { .. }
                | DatapathError::Sysctl { .. }
                | DatapathError::Firewall(_)
                | DatapathError::NotInstalled(_)
                | DatapathError::Kernel(_) => ErrorCode::Kernel,
                DatapathError::Io { .. } | DatapathError::Lock(LockError::Open { .. }) => ErrorCode::Io,
                DatapathError::Lock(LockError::Timeout { .. }) => ErrorCode::TryAgainLater,
                DatapathError::State { .. } => ErrorCode::State,
                DatapathError::PortInUse { .. } => ErrorCode::PortInUse,
            },
            PluginError::InterfaceExists { .. } => ErrorCode::InterfaceExists,
            PluginError::Delegate { code: Some(c), .. } => return *c,
            PluginError::Delegate { code: None, .. } => ErrorCode::Delegate,
            PluginError::UnknownAttachment { .. } => ErrorCode::UnknownContainer,
            PluginError::Check(_) => ErrorCode::CheckFailed,
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
            _ => ErrorCode::NotAvailable.code(),
        }
    }
}
