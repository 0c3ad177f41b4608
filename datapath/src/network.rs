//! What a network needs on the node once, not per pod: the bridge, its
//! gateway addresses, forwarding sysctls and the firewall skeleton.
//!
//! A marker, `<stateDir>/networks/<name>.json`, records that this boot, in
//! this namespace, has all of it for the current config, along with the
//! bridge's index and MAC. ADD then skips every node-level step, the bridge
//! lookup included. CHECK verifies the real state; a missing marker, another
//! boot or namespace, or a changed config redoes the setup.

use crate::attachment::write_private;
use crate::firewall::{Backend, NetworkRules};
use crate::link::format_mac;
use crate::netlink::RouteSocket;
use crate::{sysctl, DatapathError, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The node-level state a network asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// Empty when chained after another main plugin: no bridge of weavice's own.
    pub bridge: String,
    pub mtu: Option<u32>,
    /// Gateway addresses for the bridge, with the range's prefix.
    pub gateways: Vec<IpNet>,
    pub routed: bool,
    #[serde(rename = "rules")]
    pub firewall: FirewallSpec,
    /// The ranges are all of the network's (from weavice-ipam's config), so
    /// an earlier config's range missing from them is gone (a widened range);
    /// false when they are one pod's, from a delegated IPAM's result.
    #[serde(default)]
    pub complete: bool,
}

/// The network's firewall state and the backend that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallSpec {
    #[serde(flatten)]
    pub rules: NetworkRules,
    #[serde(default)]
    pub backend: Backend,
}

impl Wanted {
    /// Chained after another main plugin: only the firewall skeleton its
    /// port mappings live in.
    pub fn chained(backend: Backend) -> Self {
        let rules = NetworkRules { ranges: Vec::new(), masquerade: false, bridge: String::new(), routed: false };
        Wanted {
            bridge: String::new(),
            mtu: None,
            gateways: Vec::new(),
            routed: false,
            firewall: FirewallSpec { rules, backend },
            complete: false,
        }
    }
}

/// The bridge as the pod's veth needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub bridge_index: u32,
    pub bridge_mac: String,
    /// True when taken from the marker without touching the kernel.
    #[serde(skip)]
    pub from_marker: bool,
}

/// What this version sets up for a network. A marker written by a version
/// that set up less (1: routed ports isolated, no bridge filter; 2: the same
/// with the iptables backend; 3: no anti-spoofing chain) reads as older, so
/// the next ADD sets the network up again.
const LAYOUT: u32 = 4;

fn old_layout() -> u32 {
    1
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    #[serde(default = "old_layout")]
    layout: u32,
    boot_id: String,
    netns_inode: u64,
    wanted: Wanted,
    ready: Ready,
}

fn marker_path(state_dir: &str, network: &str) -> PathBuf {
    PathBuf::from(state_dir).join("networks").join(format!("{network}.json"))
}

/// Every network with a marker, and what it asked for (for repair).
pub fn recorded(state_dir: &str) -> Result<Vec<(String, Wanted)>> {
    markers(state_dir).into_iter().map(|(name, m)| m.map(|m| (name, m.wanted))).collect()
}

/// When each network's rules were last set up (its marker written), by
/// network: cheap to read every second, to follow what the plugin did.
pub fn set_up_times(state_dir: &str) -> Vec<(String, std::time::SystemTime)> {
    let Ok(entries) = fs::read_dir(PathBuf::from(state_dir).join("networks")) else { return Vec::new() };
    let mut out: Vec<(String, std::time::SystemTime)> = entries
        .flatten()
        .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), e.metadata().ok()?.modified().ok()?)))
        .collect();
    out.sort();
    out
}

/// Every marker in `state_dir`, each read on its own, sorted by network.
fn markers(state_dir: &str) -> Vec<(String, Result<Marker>)> {
    let dir = PathBuf::from(state_dir).join("networks");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()).map(String::from) else { continue };
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let marker = fs::read(&path).map_err(DatapathError::io(format!("read {}", path.display()))).and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| DatapathError::State { path: path.display().to_string(), why: e.to_string() })
        });
        out.push((name, marker));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Refuses ranges that overlap another network's on this node: their
/// routes and set elements would collide (an interval set refuses the
/// second), so neither network would work.
fn refuse_overlaps(state_dir: &str, network: &str, want: &Wanted) -> Result<()> {
    for (other, marker) in markers(state_dir) {
        let Ok(m) = marker else { continue };
        if other == network {
            continue;
        }
        for ours in &want.firewall.rules.ranges {
            let theirs = m.wanted.firewall.rules.ranges.iter().find(|r| r.contains(ours) || ours.contains(*r));
            if let Some(theirs) = theirs {
                return Err(DatapathError::Invalid(format!(
                    "range {ours} overlaps {theirs} of network \"{other}\" on this node; give each network a \
                     range of its own (if \"{other}\" is gone for good, remove {})",
                    marker_path(state_dir, &other).display()
                )));
            }
        }
    }
    Ok(())
}

/// This boot and the calling thread's network namespace.
fn boot_and_netns() -> Result<(String, u64)> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").map_err(DatapathError::io("read boot_id"))?;
    let ino = fs::metadata("/proc/thread-self/ns/net").map_err(DatapathError::io("stat netns"))?.ino();
    Ok((boot.trim().to_string(), ino))
}

/// Sets the network up unless the marker says it is; `force` ignores the
/// marker. `nl` and the calling thread must be in the node's namespace.
pub fn ensure(nl: &mut RouteSocket, state_dir: &str, network: &str, want: &Wanted, force: bool) -> Result<Ready> {
    let (boot_id, netns_inode) = boot_and_netns()?;
    let path = marker_path(state_dir, network);
    let marker = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
    if let Some(m) = marker.as_ref().filter(|_| !force) {
        if m.layout == LAYOUT && m.boot_id == boot_id && m.netns_inode == netns_inode && &m.wanted == want {
            return Ok(Ready { from_marker: true, ..m.ready.clone() });
        }
    }
    if !force {
        // repair restores what was recorded, overlapping or not
        refuse_overlaps(state_dir, network, want)?;
    }
    // what the network's earlier config set up that this one replaces
    let previous = marker.map(|m| m.wanted).filter(|p| p != want && p.complete && want.complete);

    let ready = if want.bridge.is_empty() {
        Ready { bridge_index: 0, bridge_mac: String::new(), from_marker: false }
    } else {
        let br = nl.link().ensure_bridge(&want.bridge, want.mtu)?;
        // first: an IPv6 address with another prefix counts as the same one
        let stale = previous.iter().filter(|p| p.bridge == want.bridge).flat_map(|p| &p.gateways);
        for gw in stale.filter(|gw| !want.gateways.contains(gw)) {
            nl.addr().delete(br.index, *gw)?;
        }
        for gw in &want.gateways {
            nl.addr().add(br.index, *gw, true)?;
        }
        if want.gateways.iter().any(|g| g.addr().is_ipv4()) {
            sysctl::set("net.ipv4.ip_forward", "1")?;
            // 127.0.0.1:hostPort DNATed to a pod leaves through the bridge with a
            // loopback source until it is masqueraded (firewall/nftables/hostports.rs)
            sysctl::set_if("ipv4", &want.bridge, "route_localnet", "1")?;
        }
        if want.gateways.iter().any(|g| g.addr().is_ipv6()) {
            sysctl::set("net.ipv6.conf.all.forwarding", "1")?;
        }
        Ready { bridge_index: br.index, bridge_mac: format_mac(&br.mac), from_marker: false }
    };
    let replaced = previous.as_ref().filter(|p| p.firewall.backend == want.firewall.backend);
    want.firewall.backend.driver().apply_network(&want.firewall.rules, replaced.map(|p| &p.firewall.rules))?;
    let marker = Marker { layout: LAYOUT, boot_id, netns_inode, wanted: want.clone(), ready: ready.clone() };
    write_private(&path, &serde_json::to_vec_pretty(&marker).unwrap_or_default())?;
    Ok(ready)
}

/// What CHECK finds missing of the network: the bridge up and holding its
/// gateways, and the firewall skeleton.
pub fn missing(nl: &mut RouteSocket, want: &Wanted) -> Vec<String> {
    let mut missing = Vec::new();
    match nl.link().get(&want.bridge) {
        Ok(Some(br)) => {
            if !br.up {
                missing.push(format!("bridge {} is down", want.bridge));
            }
            let have = nl.addr().list(br.index).unwrap_or_default();
            for gw in &want.gateways {
                if !have.contains(gw) {
                    missing.push(format!("gateway {gw} on bridge {}", want.bridge));
                }
            }
        }
        Ok(None) => missing.push(format!("bridge {}", want.bridge)),
        Err(e) => missing.push(e.to_string()),
    }
    let backend = want.firewall.backend;
    match backend.driver().missing_network(&want.firewall.rules) {
        Ok(gone) if gone.is_empty() => {}
        Ok(gone) => missing.push(format!("{backend} firewall state missing: {}", gone.join(", "))),
        Err(e) => missing.push(e.to_string()),
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_the_previous_version_still_read() {
        // as weavice wrote it before the node library: the backend inside "rules"
        let old = r#"{"bridge":"wv0","mtu":null,"gateways":["10.88.0.1/24"],"routed":true,
            "rules":{"ranges":["10.88.0.0/24"],"masquerade":true,"bridge":"wv0","routed":true,"backend":"iptables"}}"#;
        let w: Wanted = serde_json::from_str(old).unwrap();
        assert_eq!(w.firewall.backend, Backend::Iptables);
        assert!(w.firewall.rules.masquerade);
        let again: Wanted = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(again, w);
    }
}
