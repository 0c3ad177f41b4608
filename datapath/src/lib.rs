//! weavice's node library: everything that changes a Linux node, shared by
//! the `weavice` CNI plugin and `weavice-agent`.
//!
//! One netlink transport for every family weavice speaks ([`netlink`]); one
//! handle per kernel object on it ([`link`], [`addr`], [`route`], [`rule`]);
//! namespaces entered on a dedicated thread ([`netns`]); the firewall behind
//! one backend trait ([`firewall`]); and the state weavice keeps on disk: per
//! network ([`network`]), per attachment ([`attachment`]), per host port
//! ([`hostports`]), per security-function chain ([`chains`]). No process globals and no forks: what only a short-lived
//! process may do (finishing work in a forked child) is the plugin binary's.
//! Logs go through the `log` facade; the binary chooses where.

pub mod addr;
pub mod attachment;
pub mod chains;
pub mod conntrack;
pub mod error;
pub mod firewall;
pub mod hostports;
pub mod lingering;
pub mod link;
pub mod marks;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod route;
pub mod rule;
pub mod sockets;
pub mod sysctl;

pub use error::DatapathError;

pub type Result<T, E = DatapathError> = std::result::Result<T, E>;
