//! One file per CNI verb. Each takes the validated config and environment.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;

use crate::error::PluginError;
use conf::{CmdArgs, CniVersion, ConfError, NetConf, PodToPod};
use datapath::firewall::{Backend, NetworkRules, PodIdentity};
use datapath::lingering::Lingering;
use datapath::link::{self, Link};
use datapath::netlink::RouteSocket;
use datapath::netns::NetNs;
use datapath::network::{FirewallSpec, Wanted};
use datapath::DatapathError;
use ipnet::IpNet;
use serde_json::Value;
use std::net::IpAddr;

/// What a verb leaves to main: the result to print, and what to finish in
/// the background once the runtime has it.
#[derive(Default)]
pub struct Done {
    pub result: Option<Value>,
    /// A host veth retired by DEL, whose kernel deletion takes ~20 ms.
    pub retired: Option<Link>,
    /// Netfilter sockets whose release would wait for the kernel.
    pub lingering: Lingering,
}

impl Done {
    pub fn answer(result: Value) -> Self {
        Done { result: Some(result), ..Default::default() }
    }
}

/// A netlink socket in the namespace the plugin was started in (the node).
pub fn node_socket() -> Result<RouteSocket, PluginError> {
    Ok(RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?)
}

/// The attachment's host veth name under this config (routed or bridged).
pub fn host_veth_name(net: &NetConf, args: &CmdArgs) -> String {
    link::veth::host_name(&net.name, &args.container_id, &args.ifname, net.pod_to_pod == PodToPod::Routed)
}

/// The pod's namespace, which must not be the node's own, and a netlink
/// socket bound to it. The plugin has one thread, so it switches that thread
/// there and back instead of starting one.
pub fn open_pod(path: &str) -> Result<(NetNs, RouteSocket), PluginError> {
    let pod = NetNs::open(path)?;
    let home = NetNs::current()?;
    if pod.same_as(&home)? {
        let why = "is the node's own network namespace; the pod needs one of its own".to_string();
        return Err(DatapathError::Netns { path: path.to_string(), why }.into());
    }
    pod.enter()?;
    let opened = RouteSocket::open();
    home.enter()?;
    let socket = opened.map_err(DatapathError::netlink(format!("open netlink socket in {path}")))?;
    Ok((pod, socket))
}

/// The pod's interface and its node-side peer, if that is a veth into this
/// namespace (each end names the other's index). None when the namespace or
/// the interface is gone, or is not such a veth.
pub fn pod_link_and_peer(node: &mut RouteSocket, netns: &str, ifname: &str) -> Option<(Link, Link)> {
    if netns.is_empty() {
        return None;
    }
    let (_pod, mut pod_nl) = open_pod(netns).ok()?;
    let pod_link = pod_nl.link().get(ifname).ok()??;
    let host = node.link().get_index(pod_link.peer_index?).ok()??;
    (host.kind.as_deref() == Some("veth") && host.peer_index == Some(pod_link.index)).then_some((pod_link, host))
}

/// What the pod may send as, when the network holds pods to it and the
/// firewall backend can (the iptables backend needs the nft tool: logged).
pub fn identity(net: &NetConf, backend: Backend, port: &str, mac: &[u8], ips: &[IpAddr]) -> Option<PodIdentity> {
    if !net.anti_spoofing {
        return None;
    }
    if !backend.driver().checks_identity() {
        log::warn!(
            "network {}: antiSpoofing needs the nft tool (Debian: apt-get install nftables); {port} is not checked",
            net.name
        );
        return None;
    }
    Some(PodIdentity { port: port.to_string(), mac: mac.try_into().ok()?, ips: ips.to_vec() })
}

pub fn require_version(
    net: &NetConf,
    verb: &'static str,
    needs: &'static str,
    min: CniVersion,
) -> Result<(), PluginError> {
    if net.cni_version < min {
        return Err(ConfError::VerbNeedsVersion { verb, version: net.cni_version.to_string(), needs }.into());
    }
    Ok(())
}

/// The MAC the runtime asked for: `mac` capability, `args.cni.mac`, or CNI_ARGS `MAC`.
pub fn requested_mac(net: &NetConf, args: &CmdArgs) -> Result<Option<Vec<u8>>, PluginError> {
    let wanted = net.runtime_config.mac.as_ref().or(net.args.cni.mac.as_ref()).or(args.args.get("MAC"));
    match wanted {
        None => Ok(None),
        Some(s) => match link::parse_mac(s) {
            Some(mac) if mac[0] & 1 == 0 && mac.iter().any(|b| *b != 0) => Ok(Some(mac)),
            _ => Err(ConfError::Invalid(format!("MAC {s:?} is not a unicast address like 02:42:ac:11:00:02")).into()),
        },
    }
}

/// The node-level state a network's config asks for, from the pod ranges
/// and the gateways IPAM chose.
pub fn wanted(net: &NetConf, ranges: &[IpNet], gateways: &[IpAddr], backend: Backend) -> Wanted {
    let gateways = if net.is_gateway {
        gateways
            .iter()
            .filter_map(|gw| ranges.iter().find(|r| r.contains(gw)).and_then(|r| IpNet::new(*gw, r.prefix_len()).ok()))
            .collect()
    } else {
        Vec::new()
    };
    let routed = net.pod_to_pod == PodToPod::Routed;
    Wanted {
        bridge: net.bridge.clone(),
        mtu: net.mtu,
        gateways,
        routed,
        firewall: FirewallSpec {
            rules: NetworkRules {
                ranges: ranges.to_vec(),
                masquerade: net.ip_masq,
                bridge: net.bridge.clone(),
                routed,
            },
            backend,
        },
        complete: false,
    }
}

/// Whether a pod's bridge port has hairpin on. Routed pods reach each other
/// only through the node, which a bridge filter enforces instead of port
/// isolation (datapath firewall/nftables/isolation.rs); hairpin lets a DNAT
/// that br_netfilter forwards at L2 return to the pod it came from.
pub fn hairpin(net: &NetConf) -> bool {
    match net.pod_to_pod {
        PodToPod::Routed => true,
        PodToPod::Bridged => net.hairpin_mode,
    }
}
