//! Netfilter state weavice owns: everything lives in table `inet weavice`.
//!
//! Per-network work only: a network's pod ranges and bridge are set elements,
//! the rules that use the sets are installed once (network.rs says when).

pub mod conntrack;
pub mod masquerade;
pub mod nft_netlink;
pub mod nftables;
pub mod portmap;
pub mod redirect;

use crate::error::PluginError;
use conf::PortMapping;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const TABLE: &str = "inet weavice";

/// What one network needs from netfilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    pub ranges: Vec<IpNet>,
    pub masquerade: bool,
    pub bridge: String,
    pub routed: bool,
}

/// Installs the network's netfilter state in one transaction (idempotent).
pub fn apply(rules: &NetworkRules) -> Result<(), PluginError> {
    nftables::apply(&format!(
        "add table {TABLE}\n{}{}{}{}",
        portmap::render_skeleton(),
        masquerade::render(rules),
        portmap::masquerade_rules(masquerade::CHAIN),
        redirect::render(rules)
    ))
}

type Elements = Vec<portmap::Element>;

fn pod_elements(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<Elements, PluginError> {
    portmap::elements(mappings, pod_ips).map_err(|e| PluginError::Conf(conf::ConfError::Invalid(e)))
}

/// Maps the pod's host ports: one transaction, then stale UDP flows flushed.
pub fn add_port_mappings(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<(), PluginError> {
    if mappings.is_empty() {
        return Ok(());
    }
    nft_netlink::apply("weavice", &pod_elements(mappings, pod_ips)?, true)
        .map_err(|e| PluginError::Firewall(format!("add port mapping elements: {e}")))?;
    conntrack::flush_udp(mappings);
    Ok(())
}

/// Removes the pod's mappings; elements already gone are not an error.
pub fn remove_port_mappings(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<(), PluginError> {
    // no pod address: nothing was installed (a rollback before the addresses)
    if mappings.is_empty() || pod_ips.is_empty() {
        return Ok(());
    }
    let elements = pod_elements(mappings, pod_ips)?;
    if nft_netlink::apply("weavice", &elements, false).is_ok() {
        return Ok(());
    }
    // one transaction fails whole when any element is missing: go one by one
    for e in &elements {
        match nft_netlink::apply("weavice", std::slice::from_ref(e), false) {
            Err(err) if err.raw_os_error() != Some(libc::ENOENT) => {
                return Err(PluginError::Firewall(format!("delete element {} from {}: {err}", e.text(), e.set)))
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn check_port_mappings(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<(), PluginError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let missing = portmap::missing(&nftables::list_table()?, &pod_elements(mappings, pod_ips)?);
    if missing.is_empty() {
        return Ok(());
    }
    Err(PluginError::Check(format!("port mappings missing in table {TABLE}: {}", missing.join(", "))))
}

/// Reports what is missing, for CHECK.
pub fn check(rules: &NetworkRules) -> Result<(), PluginError> {
    let listing = nftables::list_table()?;
    let mut missing = masquerade::missing(&listing, rules);
    missing.extend(redirect::missing(&listing, rules));
    if !listing.contains(&format!("jump {}", portmap::CHAIN)) {
        missing.push(format!("jump to {}", portmap::CHAIN));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(PluginError::Check(format!("firewall state missing in table {TABLE}: {}", missing.join(", "))))
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
