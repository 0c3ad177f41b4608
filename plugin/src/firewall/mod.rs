//! Netfilter state weavice owns: everything lives in table `inet weavice`.
//!
//! Per-network work only: the pod ranges of a network are set elements, the
//! rules that use the sets are installed once (see network.rs for when).

pub mod masquerade;
pub mod nftables;

use crate::error::PluginError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What one network needs from netfilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    pub ranges: Vec<IpNet>,
    pub masquerade: bool,
}

/// Installs the network's netfilter state in one transaction (idempotent).
pub fn apply(rules: &NetworkRules) -> Result<(), PluginError> {
    nftables::apply(&masquerade::render(rules))
}

/// Reports what is missing, for CHECK.
pub fn check(rules: &NetworkRules) -> Result<(), PluginError> {
    let listing = nftables::list_table()?;
    masquerade::check(&listing, rules).map_err(PluginError::Check)
}
