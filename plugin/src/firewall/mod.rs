//! Netfilter state weavice owns: everything lives in table `inet weavice`.
//!
//! Per-network work only: a network's pod ranges and bridge are set elements,
//! the rules that use the sets are installed once (network.rs says when).

pub mod masquerade;
pub mod nftables;
pub mod redirect;

use crate::error::PluginError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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
    nftables::apply(&format!("add table {TABLE}\n{}{}", masquerade::render(rules), redirect::render(rules)))
}

/// Reports what is missing, for CHECK.
pub fn check(rules: &NetworkRules) -> Result<(), PluginError> {
    let listing = nftables::list_table()?;
    let mut missing = masquerade::missing(&listing, rules);
    missing.extend(redirect::missing(&listing, rules));
    if missing.is_empty() {
        return Ok(());
    }
    Err(PluginError::Check(format!("firewall state missing in table {TABLE}: {}", missing.join(", "))))
}

/// Elements of one set in nft's text listing.
fn set_elements(listing: &str, set: &str) -> Vec<String> {
    let Some(start) = listing.find(&format!("set {set} {{")) else { return vec![] };
    let body = &listing[start..];
    let body = &body[..body.find("\n\t}").unwrap_or(body.len())];
    let Some(el) = body.find("elements = {") else { return vec![] };
    let rest = &body[el + "elements = {".len()..];
    let rest = &rest[..rest.find('}').unwrap_or(rest.len())];
    rest.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()).map(String::from).collect()
}
