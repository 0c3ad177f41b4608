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

/// As `chain list` names it: namespace/name, else its addresses.
impl std::fmt::Display for ChainPod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}"),
            None => {
                let ips: Vec<String> = self.ips.iter().map(IpAddr::to_string).collect();
                f.write_str(&ips.join(","))
            }
        }
    }
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

/// The packet marks (under the node's chain mask) of the two passes through
/// the node where function `index` (of the spec's list) sees a chain's
/// packets: requests after the route functions before it, replies after the
/// route function right after it (or from the endpoint when none is). Queue
/// and mirror functions act there.
pub fn passes(a: &Applied, index: usize) -> [u32; 2] {
    let functions = &a.chain.spec.functions;
    let before = functions.iter().take(index).filter(|f| f.mode == Mode::Route).count() as u32;
    let after = functions.iter().skip(index + 1).any(|f| f.mode == Mode::Route);
    let (m, before) = (a.marks, u8::try_from(before).unwrap_or(u8::MAX));
    let chain = m.chain(a.id);
    [chain | m.hop(before), chain | m.reply() | m.hop(if after { before.saturating_add(1) } else { 0 })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::chain::Chain;

    #[test]
    fn a_queue_between_two_route_functions_sees_requests_after_the_first_and_replies_after_the_second() {
        let yaml = r#"
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: c}
spec:
  network: podnet
  from: {namespace: shop}
  to:   {namespace: bank}
  functions:
    - {name: ids, mode: mirror, address: 198.51.100.9}
    - {name: fw1, mode: route, pod: {namespace: sec, name: fw1}}
    - {name: ips, mode: queue, queue: 3}
    - {name: fw2, mode: route, pod: {namespace: sec, name: fw2}}
    - {name: ips2, mode: queue, queue: 4}
"#;
        let a = Applied { id: 1, chain: Chain::parse(yaml).unwrap(), marks: crate::marks::ChainMarks::DEFAULT };
        // chain 1 is 0x20, replies 0x10, the hop in the low bits
        assert_eq!(passes(&a, 0), [0x20, 0x31], "from the endpoint; replies back from fw1");
        assert_eq!(passes(&a, 2), [0x21, 0x32], "back from fw1; replies back from fw2");
        assert_eq!(passes(&a, 4), [0x22, 0x30], "back from fw2; replies from the endpoint");
    }
}
