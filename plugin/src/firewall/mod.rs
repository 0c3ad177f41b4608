//! Netfilter state weavice owns: everything lives in table `inet weavice`.
//!
//! Per-network work only: the pod ranges of a network are set elements, the
//! rules that use the sets are installed once. ADD touches netfilter only when
//! the network's marker (below) says this boot and namespace have not seen it.

pub mod masquerade;
pub mod nftables;

use crate::error::PluginError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What one network needs from netfilter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    pub ranges: Vec<IpNet>,
    pub masquerade: bool,
}

/// Proof that the rules were installed in this boot, in this namespace.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    boot_id: String,
    netns_inode: u64,
    rules: NetworkRules,
}

fn marker_path(state_dir: &str, network: &str) -> PathBuf {
    PathBuf::from(state_dir)
        .join("networks")
        .join(format!("{network}.json"))
}

fn current_marker(rules: &NetworkRules) -> Result<Marker, PluginError> {
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map_err(PluginError::io("read boot_id"))?;
    let netns_inode = fs::metadata("/proc/thread-self/ns/net")
        .map_err(PluginError::io("stat netns"))?
        .ino();
    Ok(Marker {
        boot_id: boot_id.trim().to_string(),
        netns_inode,
        rules: rules.clone(),
    })
}

/// Installs the network's rules unless this boot and namespace already have them.
pub fn ensure(state_dir: &str, network: &str, rules: &NetworkRules) -> Result<(), PluginError> {
    let want = current_marker(rules)?;
    let path = marker_path(state_dir, network);
    if let Ok(bytes) = fs::read(&path) {
        if serde_json::from_slice::<Marker>(&bytes).ok().as_ref() == Some(&want) {
            return Ok(());
        }
    }
    nftables::apply(&masquerade::render(rules))?;
    crate::state::write_private(&path, &serde_json::to_vec(&want).unwrap_or_default())
}

/// Reports what is missing, for CHECK.
pub fn check(rules: &NetworkRules) -> Result<(), PluginError> {
    let listing = nftables::list_table()?;
    masquerade::check(&listing, rules).map_err(PluginError::Check)
}
