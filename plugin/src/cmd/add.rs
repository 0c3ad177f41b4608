//! ADD: bridge, veth pair, addresses, routes, masquerade, saved state.
//! A linear script; on failure everything created so far is undone.

use super::{ports, requested_mac, Node};
use crate::error::PluginError;
use crate::firewall::Backend;
use crate::ipam_client::Ipam;
use crate::link::{self, addr, route, route::RouteSpec, veth};
use crate::netns::NetNs;
use crate::network;
use crate::state::Attachment;
use crate::{info, warn};
use conf::{CmdArgs, CniResult, ConfError, Interface, IpConfig, NetConf, PodToPod, Route};
use ipnet::IpNet;
use std::net::IpAddr;

/// What has been made, for rollback.
#[derive(Default)]
struct Made {
    ipam: bool,
    veth: Option<String>,
    ports_claimed: bool,
    ports_installed: Vec<IpAddr>,
}

/// The result to print: weavice's own, or the previous plugin's passed on.
pub fn run(net: &NetConf, args: &CmdArgs) -> Result<serde_json::Value, PluginError> {
    match &net.prev_result {
        Some(prev) => chained(net, args, prev),
        None => standalone(net, args).map(|r| r.to_value(net.cni_version)),
    }
}

/// After another main plugin (its prevResult names the pod's addresses):
/// weavice creates no interface, adds its port mappings for those addresses,
/// and passes the result on unchanged.
fn chained(net: &NetConf, args: &CmdArgs, prev: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
    if !prev.is_object() {
        return Err(ConfError::Invalid("prevResult must be a result object".into()).into());
    }
    let result = CniResult::from_value(prev)?;
    let pod_ips: Vec<IpAddr> = result.ips.iter().map(|i| i.address.addr()).collect();
    if pod_ips.is_empty() && !net.port_mappings.is_empty() {
        return Err(ConfError::Invalid("prevResult has no IP addresses to map ports to".into()).into());
    }
    let backend = Backend::select(net.firewall_backend)?;
    let mut node = Node::connect()?;
    network::ensure(&mut node.netlink, &net.state_dir, &net.name, &network::Wanted::chained(backend), false)?;
    ports::claim(&mut node.netlink, net, args)?;
    let holder = ports::holder(net, args);
    // a repeated chained ADD finds its saved state: its rules may be in place
    let fresh = !crate::state::path(&net.state_dir, &net.name, &args.container_id, &args.ifname).exists();
    let installed = ports::install(&net.port_mappings, &pod_ips, backend, fresh).and_then(|()| {
        Attachment {
            network: net.name.clone(),
            container_id: args.container_id.clone(),
            ifname: args.ifname.clone(),
            netns: args.netns.clone(),
            bridge: String::new(),
            host_veth: String::new(),
            mac: String::new(),
            ips: result.ips.clone(),
            ranges: Vec::new(),
            routes: Vec::new(),
            ipam_type: None,
            port_mappings: net.port_mappings.clone(),
            chained: true,
            backend,
        }
        .save(&net.state_dir)
    });
    if let Err(e) = installed {
        let _ = ports::remove(&net.state_dir, &holder, &net.port_mappings, &pod_ips, backend);
        return Err(e);
    }
    info!("ADD {}/{} chained: {} port mappings", args.container_id, args.ifname, net.port_mappings.len());
    let mut out = prev.clone();
    out["cniVersion"] = serde_json::json!(net.cni_version.to_string());
    Ok(out)
}

fn standalone(net: &NetConf, args: &CmdArgs) -> Result<CniResult, PluginError> {
    let ipam = Ipam::from_conf(net)?.ok_or_else(|| {
        ConfError::Invalid(
            "ipam is missing: weavice needs an IPAM plugin, e.g. {\"type\": \"weavice-ipam\", ...}".into(),
        )
    })?;
    if net.pod_to_pod == PodToPod::Routed && !net.is_gateway {
        return Err(ConfError::Invalid(
            "podToPod \"routed\" needs isGateway true (pods route through the bridge address)".into(),
        )
        .into());
    }
    let mac = requested_mac(net, args)?;
    let backend = Backend::select(net.firewall_backend)?;
    let pod_ns = NetNs::open(&args.netns)?;
    let mut node = Node::connect()?;
    let mut pod = node.connect_in(&pod_ns)?;
    if link::get(&mut pod, &args.ifname)?.is_some() {
        return Err(PluginError::InterfaceExists { ifname: args.ifname.clone(), netns: args.netns.clone() });
    }

    let mut made = Made::default();
    let built = ports::claim(&mut node.netlink, net, args).and_then(|()| {
        made.ports_claimed = true;
        build(net, args, &ipam, &mut node, &pod_ns, &mut pod, mac, backend, &mut made)
    });
    match built {
        Ok(r) => Ok(r),
        Err(e) => {
            warn!("ADD {}/{} failed, rolling back: {e}", args.container_id, args.ifname);
            rollback(net, args, &ipam, &mut node, backend, made);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    net: &NetConf,
    args: &CmdArgs,
    ipam: &Ipam,
    node: &mut Node,
    pod_ns: &NetNs,
    pod: &mut link::Netlink,
    mac: Option<Vec<u8>>,
    backend: Backend,
    made: &mut Made,
) -> Result<CniResult, PluginError> {
    let routed = net.pod_to_pod == PodToPod::Routed;
    let ipr = ipam.add(net, args)?;
    made.ipam = true;
    if ipr.ips.is_empty() {
        return Err(PluginError::Delegate {
            plugin: ipam.kind().into(),
            msg: "returned no IP addresses".into(),
            code: None,
        });
    }
    if net.is_gateway {
        for ip in &ipr.ips {
            gateway_of(ip)?;
        }
    }
    let ranges: Vec<IpNet> = ipr.ips.iter().map(|i| i.address.trunc()).collect();
    let gateways: Vec<IpAddr> = ipr.ips.iter().filter_map(|i| i.gateway).collect();
    let want = network::Wanted::new(net, &ranges, &gateways, backend);
    let mut ready = network::ensure(&mut node.netlink, &net.state_dir, &net.name, &want, false)?;

    let host_name = veth::host_name(&net.name, &args.container_id, &args.ifname, routed);
    let peer_mac = mac.unwrap_or_else(|| veth::pod_mac(&net.name, &args.container_id, &args.ifname));
    let spec = |bridge_index| veth::VethSpec {
        host: &host_name,
        peer: &args.ifname,
        peer_netns_fd: pod_ns.fd(),
        bridge_index,
        mtu: net.mtu,
        peer_mac: peer_mac.clone(),
    };
    let host_link = match veth::create(&mut node.netlink, &spec(ready.bridge_index)) {
        Ok(l) => l,
        // the marker's bridge may be gone (deleted by hand): set up for real, once
        Err(e) if ready.from_marker => {
            warn!("veth creation with the recorded bridge failed ({e}); setting network {} up again", net.name);
            ready = network::ensure(&mut node.netlink, &net.state_dir, &net.name, &want, true)?;
            veth::create(&mut node.netlink, &spec(ready.bridge_index))?
        }
        Err(e) => return Err(e),
    };
    made.veth = Some(host_name.clone());
    veth::attach(&mut node.netlink, &host_link, network::hairpin(net))?;

    let ifname = &args.ifname;
    // veths report their peer's index, so no lookup in the pod is needed
    let pod_index = match host_link.peer_index {
        Some(i) => i,
        None => {
            link::get(pod, ifname)?
                .ok_or_else(|| PluginError::Kernel(format!("{ifname} missing in the pod after creation")))?
                .index
        }
    };
    // Pod side in one datagram: up, addresses, routes (in that order).
    let mut ips = Vec::with_capacity(ipr.ips.len());
    let mut requests = vec![link::up_request(pod_index)];
    let mut what = vec![format!("set {ifname} up")];
    for ip in &ipr.ips {
        let a = if routed { IpNet::from(ip.address.addr()) } else { ip.address };
        requests.push(addr::add_request(pod_index, a));
        what.push(format!("add address {a}"));
        ips.push(IpConfig { address: a, gateway: ip.gateway, interface: Some(2) });
    }
    let routes = pod_routes(net, &ipr)?;
    for r in &routes {
        requests.push(route::add_request(pod_index, r)?);
        what.push(format!("add route {}{}", r.dst, r.gw.map(|g| format!(" via {g}")).unwrap_or_default()));
    }
    pod.ack_all(requests).map_err(|(i, e)| PluginError::netlink(what[i].clone())(e))?;

    let pod_ips: Vec<IpAddr> = ips.iter().map(|i| i.address.addr()).collect();
    // the veth was created exclusively: this attachment is new
    ports::install(&net.port_mappings, &pod_ips, backend, true)?;
    made.ports_installed = pod_ips;

    let pod_mac = link::format_mac(&peer_mac);
    let result_routes: Vec<Route> = routes.iter().map(|r| Route { dst: r.dst, gw: r.gw }).collect();
    Attachment {
        network: net.name.clone(),
        container_id: args.container_id.clone(),
        ifname: ifname.clone(),
        netns: args.netns.clone(),
        bridge: net.bridge.clone(),
        host_veth: host_name.clone(),
        mac: pod_mac.clone(),
        ips: ips.clone(),
        ranges,
        routes: result_routes.clone(),
        ipam_type: Some(ipam.kind().to_string()),
        port_mappings: net.port_mappings.clone(),
        chained: false,
        backend,
    }
    .save(&net.state_dir)?;
    info!(
        "ADD {}/{} netns={} veth={host_name} ips={:?}",
        args.container_id,
        ifname,
        args.netns,
        ips.iter().map(|i| i.address.to_string()).collect::<Vec<_>>()
    );

    Ok(CniResult {
        interfaces: vec![
            Interface { name: net.bridge.clone(), mac: ready.bridge_mac.clone(), ..Default::default() },
            Interface { name: host_name, mac: link::format_mac(&host_link.mac), ..Default::default() },
            Interface { name: ifname.clone(), mac: pod_mac, mtu: host_link.mtu, sandbox: args.netns.clone() },
        ],
        ips,
        routes: result_routes,
        dns: ipr.dns,
    })
}

fn gateway_of(ip: &IpConfig) -> Result<IpAddr, PluginError> {
    ip.gateway.ok_or_else(|| PluginError::Delegate {
        plugin: "ipam".into(),
        msg: format!("no gateway for {}", ip.address),
        code: None,
    })
}

fn default_net(v4: bool) -> IpNet {
    if v4 {
        "0.0.0.0/0".parse().expect("literal")
    } else {
        "::/0".parse().expect("literal")
    }
}

/// Routes inside the pod. Routed mode: the pod holds a /32 or /128, reaches
/// its gateway on-link and everything else through it, so it never resolves
/// a peer (design.md section 3). IPAM routes without a gateway use the family's.
fn pod_routes(net: &NetConf, ipr: &CniResult) -> Result<Vec<RouteSpec>, PluginError> {
    let routed = net.pod_to_pod == PodToPod::Routed;
    let mut out = Vec::new();
    for ip in &ipr.ips {
        let Some(gw) = ip.gateway.filter(|_| net.is_gateway) else {
            continue;
        };
        let v4 = gw.is_ipv4();
        if routed {
            out.push(RouteSpec { dst: IpNet::from(gw), gw: None });
        }
        let has_default = ipr.routes.iter().any(|r| r.dst == default_net(v4));
        if !has_default {
            out.push(RouteSpec { dst: default_net(v4), gw: Some(gw) });
        }
    }
    for r in &ipr.routes {
        let v4 = r.dst.addr().is_ipv4();
        let gw = r.gw.or_else(|| ipr.ips.iter().filter_map(|i| i.gateway).find(|g| g.is_ipv4() == v4));
        if gw.is_none() && routed {
            return Err(ConfError::Invalid(format!(
                "route {} has no gateway and the pod has none of its family",
                r.dst
            ))
            .into());
        }
        let spec = RouteSpec { dst: r.dst, gw };
        if !out.contains(&spec) {
            out.push(spec);
        }
    }
    Ok(out)
}

fn rollback(net: &NetConf, args: &CmdArgs, ipam: &Ipam, node: &mut Node, backend: Backend, made: Made) {
    if made.ports_claimed {
        let (mappings, holder) = (&net.port_mappings, ports::holder(net, args));
        if let Err(e) = ports::remove(&net.state_dir, &holder, mappings, &made.ports_installed, backend) {
            warn!("rollback: {e}");
        }
    }
    if let Some(name) = made.veth {
        if let Ok(Some(l)) = link::get(&mut node.netlink, &name) {
            if let Err(e) = link::delete(&mut node.netlink, l.index, &name) {
                warn!("rollback: {e}");
            }
        }
    }
    if made.ipam {
        if let Err(e) = ipam.del(net, args) {
            warn!("rollback: {e}");
        }
    }
    let _ = Attachment::remove(&net.state_dir, &net.name, &args.container_id, &args.ifname);
}
