//! CHECK: the attachment still looks as ADD left it; says what is missing.

use super::{node_socket, open_pod, require_version, wanted};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, CniResult, CniVersion, NetConf};
use datapath::attachment::Attachment;
use datapath::chains::{members, ChainPod};
use datapath::link::format_mac;
use datapath::network;
use datapath::route::{RouteFilter, MAIN_TABLE};

pub fn run(net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    require_version(net, "CHECK", "0.4.0", CniVersion::V0_4_0)?;
    let unknown = || PluginError::UnknownAttachment {
        network: net.name.clone(),
        container_id: args.container_id.clone(),
        ifname: args.ifname.clone(),
    };
    let saved = Attachment::load(&net.state_dir, &net.name, &args.container_id, &args.ifname)?.ok_or_else(unknown)?;
    let mut missing: Vec<String> = Vec::new();
    match saved.rules().map_err(PluginError::from).and_then(|r| port_mappings::missing(&r, saved.backend)) {
        Ok(gone) if gone.is_empty() => {}
        Ok(gone) => missing.push(format!("{} elements missing: {}", saved.backend, gone.join(", "))),
        Err(e) => missing.push(e.to_string()),
    }
    if saved.chained {
        return verdict(args, missing);
    }
    match members::missing(&net.state_dir, &net.name, &ChainPod::of(&saved)) {
        Ok(gone) if gone.is_empty() => {}
        Ok(gone) => missing.push(format!("chain elements missing: {}", gone.join(", "))),
        Err(e) => missing.push(e.to_string()),
    }

    if let Some(prev) = &net.prev_result {
        let prev = CniResult::from_value(prev)?;
        for ip in &prev.ips {
            if !saved.ips.iter().any(|s| s.address.addr() == ip.address.addr()) {
                missing.push(format!("prevResult address {} was not assigned by weavice", ip.address));
            }
        }
    }

    let mut node = node_socket()?;
    match node.link().get(&saved.host_veth)? {
        None => missing.push(format!("host interface {}", saved.host_veth)),
        Some(h) => {
            let br = node.link().get(&saved.bridge)?;
            if br.as_ref().map(|b| b.index) != h.master || br.is_none() {
                missing.push(format!("{} attached to bridge {}", saved.host_veth, saved.bridge));
            }
        }
    }

    let (_, mut pod) = open_pod(&args.netns)?;
    match pod.link().get(&args.ifname)? {
        None => missing.push(format!("interface {} in {}", args.ifname, args.netns)),
        Some(l) => {
            if !l.up {
                missing.push(format!("{} is down", args.ifname));
            }
            if format_mac(&l.mac) != saved.mac {
                missing.push(format!("{} has MAC {}, expected {}", args.ifname, format_mac(&l.mac), saved.mac));
            }
            let have = pod.addr().list(l.index)?;
            for ip in &saved.ips {
                if !have.contains(&ip.address) {
                    missing.push(format!("address {} on {}", ip.address, args.ifname));
                }
            }
            let mut routes = Vec::new();
            for v4 in [true, false] {
                routes.extend(pod.route().list(RouteFilter { v4, table: MAIN_TABLE, oif: Some(l.index) })?);
            }
            for r in &saved.routes {
                if !routes.iter().any(|x| x.dst == r.dst && x.gw == r.gw) {
                    missing.push(format!("route {}{}", r.dst, r.gw.map(|g| format!(" via {g}")).unwrap_or_default()));
                }
            }
        }
    }

    if let Some(ipam) = Ipam::from_conf(net)? {
        if let Err(e) = ipam.check(net, args) {
            missing.push(e.to_string());
        }
    }
    let gateways: Vec<std::net::IpAddr> = saved.ips.iter().filter_map(|i| i.gateway).collect();
    missing.extend(network::missing(&mut node, &wanted(net, &saved.ranges, &gateways, saved.backend)));

    verdict(args, missing)
}

fn verdict(args: &CmdArgs, missing: Vec<String>) -> Result<(), PluginError> {
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PluginError::Check(format!("{}/{} is missing: {}", args.container_id, args.ifname, missing.join("; "))))
    }
}
