//! CNI specification types and weavice's own configuration.
//!
//! Parsing and validation only: nothing in this crate touches the kernel or
//! the file system, so every rule here is unit-tested without root.

pub mod args;
pub mod chain;
pub mod error;
pub mod ipamconf;
pub mod names;
pub mod netconf;
pub mod portmap;
pub mod result;
pub mod version;

pub use args::{CmdArgs, Command};
pub use error::{CniError, ConfError, ErrorCode};
pub use ipamconf::{IpamConf, RangeConf};
pub use netconf::{NetConf, PodToPod};
pub use portmap::{PortMapping, Protocol};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::CniVersion;
