//! Netfilter state weavice owns, behind one trait with two backends, chosen
//! once per network (`firewallBackend`): nftables (nftables/: table
//! `inet weavice`; a network's ranges and bridge are set elements, a pod's
//! host ports map elements) or iptables (iptables/: chains `WEAVICE-*`).
//! Backends take backend-neutral inputs: [`NetworkRules`] for the
//! per-network skeleton (installed once; network.rs says when) and
//! [`PodRules`] for a pod's port mappings and anti-spoofing identity.

pub mod iptables;
pub mod nftables;
pub mod pod;

pub use pod::{PodIdentity, PodRules, PortForward};

use crate::lingering::Lingering;
use crate::{DatapathError, Result};
use conf::netconf::FirewallBackend;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What one network needs from netfilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    /// The pod ranges: never masqueraded as destinations.
    pub ranges: Vec<IpNet>,
    /// Masquerade what leaves the ranges (`ipMasq`).
    pub masquerade: bool,
    pub bridge: String,
    /// Pods reach each other only through the node (isolation, no ICMP redirects).
    pub routed: bool,
}

/// One netfilter backend. Every change is one transaction (or one per
/// tool), never one per rule.
pub trait Firewall {
    /// Installs the network's skeleton and its ranges (idempotent), in the
    /// same transaction removing what `previous` (the network's earlier
    /// config: a widened range, ipMasq turned off) had that `net` has not.
    fn apply_network(&self, net: &NetworkRules, previous: Option<&NetworkRules>) -> Result<()>;
    /// What of it is missing, each piece named, for CHECK.
    fn missing_network(&self, net: &NetworkRules) -> Result<Vec<String>>;
    /// Installs a pod's forwards and identity. `fresh`: the attachment is
    /// new, so none of it can be installed yet and looking is skipped.
    /// Callers use [`install_pod`], which also deletes stale UDP flows.
    fn add_pod(&self, r: &PodRules, fresh: bool) -> Result<()>;
    /// Removes them; ones already gone are not an error.
    fn remove_pod(&self, r: &PodRules) -> Result<Lingering>;
    /// Removes every forward to one of `pod_ips` (and their hairpin entries)
    /// and the identity of the bridge ports `ports`, found in the kernel: for
    /// an attachment whose state is lost.
    fn remove_lost(&self, pod_ips: &[IpAddr], ports: &[String]) -> Result<Lingering>;
    fn missing_pod(&self, r: &PodRules) -> Result<Vec<String>>;
    /// Whether the backend checks a pod's identity (anti-spoofing).
    fn checks_identity(&self) -> bool;
    /// The bridge port of the checked pod whose MAC is `mac`, if any.
    fn port_with_mac(&self, mac: &[u8; 6]) -> Result<Option<String>>;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Nftables,
    Iptables,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        })
    }
}

impl Backend {
    /// Resolves the config's choice against what this node has installed.
    pub fn select(choice: FirewallBackend) -> Result<Backend> {
        let absent = |what: &str, pkg: &str| {
            DatapathError::Invalid(format!(
                "firewallBackend \"{what}\": its tools are not installed on this node (Debian: apt-get install {pkg})"
            ))
        };
        match choice {
            FirewallBackend::Nftables if nftables::available() => Ok(Backend::Nftables),
            FirewallBackend::Nftables => Err(absent("nftables", "nftables")),
            FirewallBackend::Iptables if iptables::available() => Ok(Backend::Iptables),
            FirewallBackend::Iptables => Err(absent("iptables", "iptables")),
            FirewallBackend::Auto if nftables::available() => Ok(Backend::Nftables),
            FirewallBackend::Auto if iptables::available() => Ok(Backend::Iptables),
            FirewallBackend::Auto => {
                Err(DatapathError::Firewall("neither nft nor iptables-restore is installed".into()))
            }
        }
    }

    /// Every backend whose tools this node has: cleanup that has no record
    /// of the backend used looks in each.
    pub fn installed() -> Vec<Backend> {
        let mut out = Vec::new();
        if nftables::available() {
            out.push(Backend::Nftables);
        }
        if iptables::available() {
            out.push(Backend::Iptables);
        }
        out
    }

    pub fn driver(self) -> &'static dyn Firewall {
        match self {
            Backend::Nftables => &nftables::Nftables,
            Backend::Iptables => &iptables::Iptables,
        }
    }
}

/// Installs a pod's forwards and identity, then deletes stale UDP flows to
/// the forwarded ports: conntrack keeps the decision made for a flow's first packet, so a flow
/// that began before the mapping would bypass it.
pub fn install_pod(backend: Backend, r: &PodRules, fresh: bool) -> Result<()> {
    if r.is_empty() {
        return Ok(());
    }
    backend.driver().add_pod(r, fresh)?;
    let udp = r.udp_ports();
    if let Err(e) = crate::conntrack::flush_udp(&udp) {
        log::warn!("cannot flush UDP conntrack entries for ports {udp:?}: {e}");
    }
    Ok(())
}

/// The masquerade's exceptions when the node list changes, or a network's
/// rules were set up again: `mine`, this node's pod ranges, and `others`,
/// the other nodes' (none overlapping `mine`). Under each backend this node
/// has: nftables skips them all, iptables the others (its own masquerades
/// to this node's pods come after the exceptions).
pub fn set_cluster_ranges(mine: &[ipnet::IpNet], others: &[ipnet::IpNet]) -> Result<()> {
    let mut errors = Vec::new();
    if nftables::available() {
        let cluster: Vec<ipnet::IpNet> = mine.iter().chain(others).copied().collect();
        errors.extend(nftables::masquerade::set_cluster_ranges(&cluster).err());
    }
    if iptables::available() {
        errors.extend(iptables::cluster::set_cluster_ranges(others).err());
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(DatapathError::Firewall(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))),
    }
}

/// Where a netfilter tool is installed, if it is (runtimes often pass a bare PATH).
fn find_tool(name: &str) -> Option<String> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
}

#[cfg(test)]
impl NetworkRules {
    /// A network on bridge wv0 with no ranges, for unit tests.
    pub fn bare(routed: bool) -> Self {
        NetworkRules { ranges: vec![], masquerade: false, bridge: "wv0".into(), routed }
    }
}
