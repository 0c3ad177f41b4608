//! weavice's node-side machinery, shared by the `weavice` CNI plugin binary
//! and `weavice-agent`: verbs, netlink, netfilter, per-network setup, state.

pub mod cmd;
pub mod error;
pub mod firewall;
pub mod hostports;
pub mod ipam_client;
pub mod link;
pub mod logger;
pub mod netns;
pub mod network;
pub mod retire;
pub mod state;
pub mod sysctl;
