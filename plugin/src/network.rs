//! What a network needs on the node once, not per pod: the bridge, its
//! gateway addresses, forwarding sysctls and the netfilter skeleton.
//!
//! A marker, `<stateDir>/networks/<name>.json`, records that this boot, in
//! this namespace, has all of it for the current config, along with the
//! bridge's index and MAC. ADD then skips every node-level step, the bridge
//! lookup included. CHECK verifies the real state; a missing marker, another
//! boot or namespace, or a changed config redoes the setup.

use crate::error::PluginError;
use crate::firewall::{self, Backend, NetworkRules};
use crate::link::{self, addr, bridge, Netlink};
use crate::state::write_private;
use crate::sysctl;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Whether a pod's bridge port has hairpin on. Routed pods reach each other
/// only through the node, which a bridge filter enforces instead of port
/// isolation (firewall/isolation.rs); hairpin lets a DNAT that br_netfilter
/// forwards at L2 return to the pod it came from.
pub fn hairpin(net: &conf::NetConf) -> bool {
    match net.pod_to_pod {
        conf::PodToPod::Routed => true,
        conf::PodToPod::Bridged => net.hairpin_mode,
    }
}

/// The node-level state a network's config asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub bridge: String,
    pub mtu: Option<u32>,
    /// Gateway addresses for the bridge, with the range's prefix.
    pub gateways: Vec<IpNet>,
    pub routed: bool,
    pub rules: NetworkRules,
}

impl Wanted {
    /// From a network's config, the pod ranges and the gateways IPAM chose.
    pub fn new(net: &conf::NetConf, ranges: &[IpNet], gateways: &[std::net::IpAddr], backend: Backend) -> Self {
        let gateways = if net.is_gateway {
            gateways
                .iter()
                .filter_map(|gw| {
                    ranges.iter().find(|r| r.contains(gw)).and_then(|r| IpNet::new(*gw, r.prefix_len()).ok())
                })
                .collect()
        } else {
            Vec::new()
        };
        Wanted {
            bridge: net.bridge.clone(),
            mtu: net.mtu,
            gateways,
            routed: net.pod_to_pod == conf::PodToPod::Routed,
            rules: NetworkRules {
                ranges: ranges.to_vec(),
                masquerade: net.ip_masq,
                bridge: net.bridge.clone(),
                routed: net.pod_to_pod == conf::PodToPod::Routed,
                backend,
            },
        }
    }
}

impl Wanted {
    /// Chained after another main plugin: no bridge of weavice's own, only
    /// the netfilter skeleton its port mappings live in.
    pub fn chained(backend: Backend) -> Self {
        Wanted {
            bridge: String::new(),
            mtu: None,
            gateways: Vec::new(),
            routed: false,
            rules: NetworkRules {
                ranges: Vec::new(),
                masquerade: false,
                bridge: String::new(),
                routed: false,
                backend,
            },
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
/// with the iptables backend) reads as older, so the next ADD sets the
/// network up again.
const LAYOUT: u32 = 3;

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
pub fn recorded(state_dir: &str) -> Result<Vec<(String, Wanted)>, PluginError> {
    let dir = PathBuf::from(state_dir).join("networks");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
    for e in entries.flatten() {
        let path = e.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()).map(String::from) else { continue };
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = fs::read(&path).map_err(PluginError::io(format!("read {}", path.display())))?;
        let m: Marker = serde_json::from_slice(&bytes)
            .map_err(|e| PluginError::State { path: path.display().to_string(), why: e.to_string() })?;
        out.push((name, m.wanted));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// This boot and this network namespace.
fn here() -> Result<(String, u64), PluginError> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").map_err(PluginError::io("read boot_id"))?;
    let ino = fs::metadata("/proc/thread-self/ns/net").map_err(PluginError::io("stat netns"))?.ino();
    Ok((boot.trim().to_string(), ino))
}

/// Sets the network up unless the marker says it is; `force` ignores the marker.
pub fn ensure(
    nl: &mut Netlink,
    state_dir: &str,
    network: &str,
    want: &Wanted,
    force: bool,
) -> Result<Ready, PluginError> {
    let (boot_id, netns_inode) = here()?;
    let path = marker_path(state_dir, network);
    if !force {
        if let Ok(Ok(m)) = fs::read(&path).map(|b| serde_json::from_slice::<Marker>(&b)) {
            if m.layout == LAYOUT && m.boot_id == boot_id && m.netns_inode == netns_inode && &m.wanted == want {
                return Ok(Ready { from_marker: true, ..m.ready });
            }
        }
    }

    // chained after another main plugin: no bridge of weavice's own
    let ready = if want.bridge.is_empty() {
        Ready { bridge_index: 0, bridge_mac: String::new(), from_marker: false }
    } else {
        let br = bridge::ensure(nl, &want.bridge, want.mtu)?;
        for gw in &want.gateways {
            addr::add(nl, br.index, *gw, true)?;
        }
        if want.gateways.iter().any(|g| g.addr().is_ipv4()) {
            sysctl::set("net.ipv4.ip_forward", "1")?;
            // 127.0.0.1:hostPort DNATed to a pod leaves through the bridge with a
            // loopback source until it is masqueraded (firewall/portmap.rs)
            sysctl::set_if("ipv4", &want.bridge, "route_localnet", "1")?;
        }
        if want.gateways.iter().any(|g| g.addr().is_ipv6()) {
            sysctl::set("net.ipv6.conf.all.forwarding", "1")?;
        }
        Ready { bridge_index: br.index, bridge_mac: link::format_mac(&br.mac), from_marker: false }
    };
    firewall::apply(&want.rules)?;
    let marker = Marker { layout: LAYOUT, boot_id, netns_inode, wanted: want.clone(), ready: ready.clone() };
    write_private(&path, &serde_json::to_vec_pretty(&marker).unwrap_or_default())?;
    Ok(ready)
}

/// What CHECK needs to know about the bridge: up, holding its gateways.
pub fn check(nl: &mut Netlink, want: &Wanted) -> Vec<String> {
    let mut missing = Vec::new();
    match link::get(nl, &want.bridge) {
        Ok(Some(br)) => {
            if !br.up {
                missing.push(format!("bridge {} is down", want.bridge));
            }
            let have = addr::list(nl, br.index).unwrap_or_default();
            for gw in &want.gateways {
                if !have.contains(gw) {
                    missing.push(format!("gateway {gw} on bridge {}", want.bridge));
                }
            }
        }
        Ok(None) => missing.push(format!("bridge {}", want.bridge)),
        Err(e) => missing.push(e.to_string()),
    }
    if let Err(e) = firewall::check(&want.rules) {
        missing.push(e.to_string());
    }
    missing
}
