//! ADD: bridge, veth pair, addresses, routes, masquerade, saved state.
//! A linear script; on failure everything created so far is undone.

use super::{hairpin, host_veth_name, identity, node_socket, open_pod, pod_link_and_peer, requested_mac, wanted};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, CniResult, ConfError, Interface, IpConfig, NetConf, PodToPod};
use datapath::attachment::{self, Attachment, Pod};
use datapath::chains::{members, ChainPod};
use datapath::firewall::nftables::steering::Member;
use datapath::firewall::{Backend, PodRules};
use datapath::link::{self, veth};
use datapath::netlink::RouteSocket;
use datapath::netns::NetNs;
use datapath::network::Wanted;
use datapath::route::{self, Route};
use datapath::{addr, network, DatapathError};
use ipnet::IpNet;
use log::{info, warn};
use std::net::IpAddr;

/// What has been made, for rollback.
#[derive(Default)]
struct Made {
    ipam: bool,
    veth: Option<String>,
    ports_claimed: bool,
    /// Port forwards and identity, once their installation began.
    rules: Option<PodRules>,
    /// The pod as it joins security-function chains, once it began to.
    chains: Option<ChainPod>,
    /// What it joined.
    joined: Vec<Member>,
}

/// The result to print: weavice's own, or the previous plugin's passed on.
pub fn run(net: &NetConf, args: &CmdArgs) -> Result<serde_json::Value, PluginError> {
    let _one_at_a_time = attachment::lock(&net.state_dir, &net.name, &args.container_id, &args.ifname)?;
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
    let mut node = node_socket()?;
    network::ensure(&mut node, &net.state_dir, &net.name, &network::Wanted::chained(backend), false)?;
    // the previous plugin's veth, found from the pod's side; none (another
    // kind of interface) leaves the pod unchecked
    let (pod_link, peer) = match pod_link_and_peer(&mut node, &args.netns, &args.ifname) {
        Some((pod_link, peer)) => (Some(pod_link), Some(peer)),
        None => (None, None),
    };
    let port = peer.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    if let Some(peer) = peer.as_ref().filter(|p| p.master.is_some() && !net.port_mappings.is_empty()) {
        // a pod reaching its own hostPort: br_netfilter sends the DNATed
        // packet back out of the port it came in by
        node.link().set_hairpin(peer)?;
        // 127.0.0.1:hostPort DNATed to the pod leaves through the previous
        // plugin's bridge with a loopback source until it is masqueraded
        let bridge = peer.master.and_then(|m| node.link().get_index(m).ok().flatten());
        if let Some(bridge) = bridge.filter(|_| pod_ips.iter().any(IpAddr::is_ipv4)) {
            datapath::sysctl::set_if("ipv4", &bridge.name, "route_localnet", "1")?;
        }
    }
    let id = pod_link.and_then(|l| identity(net, backend, &port, &l.mac, &pod_ips));
    // refused (a hostIP of a family the pod lacks) before anything is claimed
    let rules = port_mappings::rules(&net.port_mappings, &pod_ips, id.clone())?;
    port_mappings::claim(&mut node, net, args)?;
    let holder = port_mappings::holder(net, args);
    // a repeated chained ADD finds its saved state: its rules may be in place
    let fresh = !datapath::attachment::path(&net.state_dir, &net.name, &args.container_id, &args.ifname).exists();
    let installed = port_mappings::install(&rules, backend, fresh).and_then(|()| {
        Ok(Attachment {
            network: net.name.clone(),
            container_id: args.container_id.clone(),
            ifname: args.ifname.clone(),
            netns: args.netns.clone(),
            bridge: String::new(),
            host_veth: port.clone(),
            mac: id.as_ref().map(|i| link::format_mac(&i.mac)).unwrap_or_default(),
            pod: Pod::from_args(&args.args),
            ips: result.ips.clone(),
            ranges: Vec::new(),
            routes: Vec::new(),
            ipam_type: None,
            port_mappings: net.port_mappings.clone(),
            chained: true,
            backend,
            anti_spoofing: id.is_some(),
        }
        .save(&net.state_dir)?)
    });
    if let Err(e) = installed {
        let _ = port_mappings::remove(&net.state_dir, &holder, &net.port_mappings, Some(&rules), backend);
        return Err(e);
    }
    info!(
        "ADD {}/{} chained: {} port mappings, anti-spoofing {}",
        args.container_id,
        args.ifname,
        net.port_mappings.len(),
        if id.is_some() { format!("on {port}") } else { "off".into() }
    );
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
    let (pod_ns, mut pod) = open_pod(&args.netns)?;
    let mut node = node_socket()?;
    if pod.link().get(&args.ifname)?.is_some() {
        return Err(PluginError::InterfaceExists { ifname: args.ifname.clone(), netns: args.netns.clone() });
    }

    let mut made = Made::default();
    let built = port_mappings::claim(&mut node, net, args).and_then(|()| {
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
    node: &mut RouteSocket,
    pod_ns: &NetNs,
    pod: &mut RouteSocket,
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
    // below 1280 the kernel turns IPv6 off on the interface
    if let (Some(mtu), Some(v6)) = (net.mtu.filter(|m| *m < 1280), ipr.ips.iter().find(|i| i.address.addr().is_ipv6()))
    {
        return Err(ConfError::Invalid(format!(
            "mtu {mtu} is below 1280, the least IPv6 allows, and the pod gets {}: raise mtu or drop the IPv6 range",
            v6.address
        ))
        .into());
    }
    let ranges: Vec<IpNet> = ipr.ips.iter().map(|i| i.address.trunc()).collect();
    // weavice-ipam's config names every range of the network; a delegated
    // IPAM's result only this pod's (and then nothing an earlier ADD set up is
    // taken for stale)
    let want = match ipam.configured() {
        Some((all, gateways)) => Wanted { complete: true, ..wanted(net, &all, &gateways, backend) },
        None => wanted(net, &ranges, &ipr.ips.iter().filter_map(|i| i.gateway).collect::<Vec<_>>(), backend),
    };
    let mut ready = network::ensure(node, &net.state_dir, &net.name, &want, false)?;

    let host_name = host_veth_name(net, args);
    if let Some(m) = &mac {
        refuse_taken_mac(m, &host_name, &ready, backend)?;
    }
    let peer_mac = mac.unwrap_or_else(|| veth::pod_mac(&net.name, &args.container_id, &args.ifname));

    // The pod's identity and port forwards go in before its veth exists: no
    // frame of the pod's ever passes unchecked (they are keyed by the port's
    // name). A failure half-way (a later transaction) leaves elements to roll back.
    let pod_ips: Vec<IpAddr> = ipr.ips.iter().map(|i| i.address.addr()).collect();
    let id = identity(net, backend, &host_name, &peer_mac, &pod_ips);
    let anti_spoofing = id.is_some();
    let rules = made.rules.insert(port_mappings::rules(&net.port_mappings, &pod_ips, id)?);
    // the attachment is new: ADD found no interface of that name in the pod
    match port_mappings::install(rules, backend, true) {
        // the marker says set up, the tables are gone (a flushed ruleset): once more, for real
        Err(PluginError::Datapath(DatapathError::NotInstalled(why))) => {
            warn!("network {}: {why}; setting it up again", net.name);
            ready = network::ensure(node, &net.state_dir, &net.name, &want, true)?;
            port_mappings::install(rules, backend, true)?;
        }
        done => done?,
    }
    if routed {
        // steered from its first packet: chains join before the veth exists
        let me =
            made.chains.insert(ChainPod::new(Pod::from_args(&args.args).as_ref(), pod_ips.clone(), host_name.clone()));
        made.joined = members::join(node, &net.state_dir, &net.name, me)?;
    }
    let spec = |bridge_index| veth::VethSpec {
        host: &host_name,
        peer: &args.ifname,
        peer_netns_fd: pod_ns.fd(),
        bridge_index,
        mtu: net.mtu,
        peer_mac: peer_mac.clone(),
    };
    let host_link = match node.link().create_veth(&spec(ready.bridge_index)) {
        Ok(l) => l,
        // the marker's bridge may be gone (deleted by hand): set up for real, once
        Err(e) if ready.from_marker => {
            warn!("veth creation with the recorded bridge failed ({e}); setting network {} up again", net.name);
            ready = network::ensure(node, &net.state_dir, &net.name, &want, true)?;
            node.link().create_veth(&spec(ready.bridge_index))?
        }
        Err(e) => return Err(e.into()),
    };
    made.veth = Some(host_name.clone());
    node.link().attach_port(&host_link, hairpin(net))?;

    let ifname = &args.ifname;
    // veths report their peer's index, so no lookup in the pod is needed
    let pod_index = match host_link.peer_index {
        Some(i) => i,
        None => {
            pod.link()
                .get(ifname)?
                .ok_or_else(|| DatapathError::Kernel(format!("{ifname} missing in the pod after creation")))?
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
        requests.push(route::add_request(&r.clone().dev(pod_index))?);
        what.push(format!("add route {}", r.describe()));
    }
    pod.batch(requests).map_err(|e| {
        let op = e.index.and_then(|i| what.get(i)).map_or("set up the pod's interface", String::as_str);
        DatapathError::netlink(op)(e.source)
    })?;

    let pod_mac = link::format_mac(&peer_mac);
    let result_routes: Vec<conf::Route> = routes.iter().map(|r| conf::Route { dst: r.dst, gw: r.gw }).collect();
    Attachment {
        network: net.name.clone(),
        container_id: args.container_id.clone(),
        ifname: ifname.clone(),
        netns: args.netns.clone(),
        bridge: net.bridge.clone(),
        host_veth: host_name.clone(),
        mac: pod_mac.clone(),
        pod: Pod::from_args(&args.args),
        ips: ips.clone(),
        ranges,
        routes: result_routes.clone(),
        ipam_type: Some(ipam.kind().to_string()),
        port_mappings: net.port_mappings.clone(),
        chained: false,
        backend,
        anti_spoofing,
    }
    .save(&net.state_dir)?;
    if let Some(me) = &made.chains {
        // a chain applied meanwhile listed the pods before this one was saved
        members::recheck(node, &net.state_dir, &net.name, me, &made.joined)?;
    }
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

/// A MAC the runtime asks for must not be the bridge's or another pod's: the
/// pod would take that one's traffic.
fn refuse_taken_mac(mac: &[u8], port: &str, ready: &network::Ready, backend: Backend) -> Result<(), PluginError> {
    let taken = if link::format_mac(mac) == ready.bridge_mac {
        Some("the bridge".to_string())
    } else {
        match <[u8; 6]>::try_from(mac) {
            // this attachment's own, left by a killed ADD, is no other pod's
            Ok(m) => {
                backend.driver().port_with_mac(&m)?.filter(|p| p != port).map(|p| format!("the pod on bridge port {p}"))
            }
            Err(_) => None,
        }
    };
    match taken {
        Some(holder) => Err(ConfError::Invalid(format!(
            "MAC {} is already {holder}'s on this node; request another (or none)",
            link::format_mac(mac)
        ))
        .into()),
        None => Ok(()),
    }
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

/// Routes inside the pod (main table; the interface is set when they are
/// added). Routed mode: the pod holds a /32 or /128, reaches its gateway
/// on-link and everything else through it, so it never resolves a peer
/// (docs/datapath.md). IPAM routes without a gateway use the family's.
fn pod_routes(net: &NetConf, ipr: &CniResult) -> Result<Vec<Route>, PluginError> {
    let routed = net.pod_to_pod == PodToPod::Routed;
    let mut out = Vec::new();
    for ip in &ipr.ips {
        let Some(gw) = ip.gateway.filter(|_| net.is_gateway) else {
            continue;
        };
        let v4 = gw.is_ipv4();
        if routed {
            out.push(Route::on_link(IpNet::from(gw)));
        }
        let has_default = ipr.routes.iter().any(|r| r.dst == default_net(v4));
        if !has_default {
            out.push(Route::via(default_net(v4), gw));
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
        let route = match gw {
            Some(gw) => Route::via(r.dst, gw),
            None => Route::on_link(r.dst),
        };
        if !out.contains(&route) {
            out.push(route);
        }
    }
    Ok(out)
}

fn rollback(net: &NetConf, args: &CmdArgs, ipam: &Ipam, node: &mut RouteSocket, backend: Backend, made: Made) {
    if made.ports_claimed {
        let (mappings, holder) = (&net.port_mappings, port_mappings::holder(net, args));
        if let Err(e) = port_mappings::remove(&net.state_dir, &holder, mappings, made.rules.as_ref(), backend) {
            warn!("rollback: {e}");
        }
    }
    if let Some(pod) = &made.chains {
        if let Err(e) = members::leave(node, &net.state_dir, &net.name, pod) {
            warn!("rollback: {e}");
        }
    }
    if let Some(name) = made.veth {
        if let Err(e) = node.link().delete_named(&name) {
            warn!("rollback: {e}");
        }
    }
    if made.ipam {
        if let Err(e) = ipam.del(net, args) {
            warn!("rollback: {e}");
        }
    }
    let _ = Attachment::remove(&net.state_dir, &net.name, &args.container_id, &args.ifname);
}
