//! Netfilter state weavice owns, through one of two backends chosen once per
//! network (`firewallBackend`): nftables (table `inet weavice`; a network's
//! ranges and bridge are set elements, a pod's host ports map elements) or
//! iptables (chains `WEAVICE-*`, see iptables.rs). The per-network skeleton is
//! installed once (network.rs says when).

pub mod commit_watch;
pub mod conntrack;
pub mod iptables;
pub mod isolation;
pub mod linger;
pub mod masquerade;
pub mod nft_netlink;
pub mod nftables;
pub mod portmap;
pub mod redirect;

use crate::error::PluginError;
use conf::netconf::FirewallBackend;
use conf::PortMapping;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The table's name, spelled once for both forms below.
macro_rules! table_name {
    () => {
        "weavice"
    };
}
/// As the nft tool names it.
pub const TABLE: &str = concat!("inet ", table_name!());
/// As netlink names it (family `inet` goes in the message header).
const TABLE_NAME: &str = table_name!();

/// Where a netfilter tool is installed, if it is (runtimes often pass a bare PATH).
fn find_tool(name: &str) -> Option<String> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Nftables,
    Iptables,
}

impl Backend {
    /// Resolves the config's choice against what this node has installed.
    pub fn select(choice: FirewallBackend) -> Result<Backend, PluginError> {
        let absent = |what: &str, pkg: &str| {
            PluginError::Conf(conf::ConfError::Invalid(format!(
                "firewallBackend \"{what}\": its tools are not installed on this node (Debian: apt-get install {pkg})"
            )))
        };
        match choice {
            FirewallBackend::Nftables if nftables::available() => Ok(Backend::Nftables),
            FirewallBackend::Nftables => Err(absent("nftables", "nftables")),
            FirewallBackend::Iptables if iptables::available() => Ok(Backend::Iptables),
            FirewallBackend::Iptables => Err(absent("iptables", "iptables")),
            FirewallBackend::Auto if nftables::available() => Ok(Backend::Nftables),
            FirewallBackend::Auto if iptables::available() => Ok(Backend::Iptables),
            FirewallBackend::Auto => Err(PluginError::Firewall("neither nft nor iptables-restore is installed".into())),
        }
    }
}

/// What one network needs from netfilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    pub ranges: Vec<IpNet>,
    pub masquerade: bool,
    pub bridge: String,
    pub routed: bool,
    #[serde(default)]
    pub backend: Backend,
}

#[cfg(test)]
impl NetworkRules {
    /// A network on bridge wv0 with no ranges, for unit tests.
    pub fn bare(routed: bool) -> Self {
        NetworkRules { ranges: vec![], masquerade: false, bridge: "wv0".into(), routed, backend: Backend::default() }
    }
}

/// Installs the network's netfilter state (idempotent).
pub fn apply(rules: &NetworkRules) -> Result<(), PluginError> {
    if rules.backend == Backend::Iptables {
        return iptables::apply(rules);
    }
    nftables::apply(&format!(
        "add table {TABLE}\n{}{}{}{}{}",
        portmap::render_skeleton(),
        masquerade::render(rules),
        portmap::masquerade_rules(masquerade::CHAIN),
        redirect::render(rules),
        if rules.routed { isolation::render() } else { String::new() }
    ))
}

type Elements = Vec<portmap::Element>;

fn pod_elements(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<Elements, PluginError> {
    portmap::elements(mappings, pod_ips).map_err(|e| PluginError::Conf(conf::ConfError::Invalid(e)))
}

/// Maps the pod's host ports: one transaction, then stale UDP flows flushed.
/// `fresh`: the attachment is new, so none of its mappings can be installed yet.
pub fn add_port_mappings(
    mappings: &[PortMapping],
    pod_ips: &[IpAddr],
    backend: Backend,
    fresh: bool,
) -> Result<(), PluginError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let elements = pod_elements(mappings, pod_ips)?;
    match backend {
        Backend::Iptables => iptables::add_mappings(&elements, fresh)?,
        Backend::Nftables => nft_netlink::apply(TABLE_NAME, &elements, true)
            .map_err(|e| PluginError::Firewall(format!("add port mapping elements: {e}")))?,
    }
    conntrack::flush_udp(mappings);
    Ok(())
}

/// Removes the pod's mappings; elements already gone are not an error.
pub fn remove_port_mappings(mappings: &[PortMapping], pod_ips: &[IpAddr], backend: Backend) -> Result<(), PluginError> {
    // no pod address: nothing was installed (a rollback before the addresses)
    if mappings.is_empty() || pod_ips.is_empty() {
        return Ok(());
    }
    let elements = pod_elements(mappings, pod_ips)?;
    if backend == Backend::Iptables {
        return iptables::remove_mappings(&elements);
    }
    if nft_netlink::apply(TABLE_NAME, &elements, false).is_ok() {
        return Ok(());
    }
    // one transaction fails whole when any element is missing: go one by one
    for e in &elements {
        match nft_netlink::apply(TABLE_NAME, std::slice::from_ref(e), false) {
            Err(err) if err.raw_os_error() != Some(libc::ENOENT) => {
                return Err(PluginError::Firewall(format!("delete element {} from {}: {err}", e.text(), e.set)))
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn check_port_mappings(mappings: &[PortMapping], pod_ips: &[IpAddr], backend: Backend) -> Result<(), PluginError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let elements = pod_elements(mappings, pod_ips)?;
    let missing = match backend {
        Backend::Iptables => iptables::missing_mappings(&elements)?,
        Backend::Nftables => portmap::missing(&nftables::list_table(TABLE)?, &elements),
    };
    complete(&format!("port mappings missing in table {TABLE}"), missing)
}

/// Ok when nothing is missing, else a CHECK error listing it after `what`.
fn complete(what: &str, missing: Vec<String>) -> Result<(), PluginError> {
    if missing.is_empty() {
        return Ok(());
    }
    Err(PluginError::Check(format!("{what}: {}", missing.join(", "))))
}

/// Reports what is missing, for CHECK.
pub fn check(rules: &NetworkRules) -> Result<(), PluginError> {
    if rules.backend == Backend::Iptables {
        return complete("firewall state missing", iptables::missing(rules)?);
    }
    let listing = nftables::list_table(TABLE)?;
    let mut missing = masquerade::missing(&listing, rules);
    missing.extend(redirect::missing(&listing, rules));
    if rules.routed {
        missing.extend(isolation::missing(&listing, &nftables::list_table(isolation::BRIDGE_TABLE)?, rules));
    }
    if !listing.contains(&format!("jump {}", portmap::CHAIN)) {
        missing.push(format!("jump to {}", portmap::CHAIN));
    }
    complete(&format!("firewall state missing in table {TABLE}"), missing)
}

/// Elements of a set with single-value elements.
fn set_elements(listing: &str, set: &str) -> Vec<String> {
    set_elements_text(listing, set).split([',', ' ']).filter(|e| !e.is_empty()).map(String::from).collect()
}

/// A set's or map's elements as one whitespace-normalised line.
fn set_elements_text(listing: &str, name: &str) -> String {
    let start = listing.find(&format!("set {name} {{")).or_else(|| listing.find(&format!("map {name} {{")));
    let Some(start) = start else { return String::new() };
    let body = &listing[start..];
    let body = &body[..body.find("\n\t}").unwrap_or(body.len())];
    let Some(el) = body.find("elements = {") else { return String::new() };
    let rest = &body[el + "elements = {".len()..];
    rest[..rest.find('}').unwrap_or(rest.len())].split_whitespace().collect::<Vec<_>>().join(" ")
}
