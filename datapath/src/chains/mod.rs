//! Security-function chains on the node (docs/chains.md): traffic from some
//! pods to others passes through route functions in order, replies in
//! reverse.
//!
//! How a packet is steered: nftables classifies a connection into its
//! chain and marks each of its packets with the chain, the direction and
//! the function it comes back from (firewall/nftables/steering.rs); ip
//! rules on those marks pick a routing table per hop whose default route
//! leads to the next function (hops.rs). Pods joining or leaving change only
//! set elements and, for a function's pod, its hop routes (members.rs); the
//! agent installs a chain's rules and tables (install.rs). Applied specs live
//! in the state dir (store.rs).

pub mod health;
pub mod hops;
pub mod install;
pub mod members;
pub mod store;

pub use store::Applied;

use crate::attachment::{Attachment, Pod};
use conf::chain::{Function, Mode, PodRef};
use std::net::IpAddr;

/// A pod of a network as the chains see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPod {
    pub name: Option<PodRef>,
    pub ips: Vec<IpAddr>,
    /// The host side of its veth.
    pub port: String,
}

impl ChainPod {
    pub fn new(pod: Option<&Pod>, ips: Vec<IpAddr>, port: String) -> Self {
        ChainPod { name: pod.map(|p| PodRef { namespace: p.namespace.clone(), name: p.name.clone() }), ips, port }
    }

    pub fn of(a: &Attachment) -> Self {
        ChainPod::new(a.pod.as_ref(), a.pod_ips(), a.host_veth.clone())
    }
}

/// The network's pods with readable state (weavice's own, not chained ones:
/// chains need a bridge of weavice's).
pub fn pods(state_dir: &str, network: &str) -> Vec<ChainPod> {
    Attachment::list(state_dir, network)
        .into_iter()
        .flatten()
        .filter(|a| !a.chained)
        .map(|a| ChainPod::of(&a))
        .collect()
}

/// A chain's route functions, in order: position 1 is the first.
pub fn route_functions(a: &Applied) -> Vec<&Function> {
    a.chain.spec.functions.iter().filter(|f| f.mode == Mode::Route).collect()
}
