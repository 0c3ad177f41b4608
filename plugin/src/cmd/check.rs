//! CHECK: the attachment still looks as ADD left it; says what is missing.

use super::{require_version, Node};
use crate::error::PluginError;
use crate::firewall;
use crate::ipam_client::Ipam;
use crate::link::{self, addr, route};
use crate::netns::NetNs;
use crate::network;
use crate::state::Attachment;
use conf::{CmdArgs, CniResult, CniVersion, NetConf};

pub fn run(net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    require_version(net, "CHECK", "0.4.0", CniVersion::V0_4_0)?;
    let unknown = || PluginError::UnknownAttachment {
        network: net.name.clone(),
        container_id: args.container_id.clone(),
        ifname: args.ifname.clone(),
    };
    let saved = Attachment::load(&net.state_dir, &net.name, &args.container_id, &args.ifname)?.ok_or_else(unknown)?;
    let mut missing: Vec<String> = Vec::new();
    if let Err(e) = firewall::check_port_mappings(&saved.port_mappings, &saved.pod_ips(), saved.backend) {
        missing.push(e.to_string());
    }
    if saved.chained {
        return verdict(args, missing);
    }

    if let Some(prev) = &net.prev_result {
        let prev = CniResult::from_value(prev)?;
        for ip in &prev.ips {
            if !saved.ips.iter().any(|s| s.address.addr() == ip.address.addr()) {
                missing.push(format!("prevResult address {} was not assigned by weavice", ip.address));
            }
        }
    }

    let mut node = Node::connect()?;
    match link::get(&mut node.netlink, &saved.host_veth)? {
        None => missing.push(format!("host interface {}", saved.host_veth)),
        Some(h) => {
            let br = link::get(&mut node.netlink, &saved.bridge)?;
            if br.as_ref().map(|b| b.index) != h.master || br.is_none() {
                missing.push(format!("{} attached to bridge {}", saved.host_veth, saved.bridge));
            }
        }
    }

    let pod_ns = NetNs::open(&args.netns)?;
    let mut pod = node.connect_in(&pod_ns)?;
    match link::get(&mut pod, &args.ifname)? {
        None => missing.push(format!("interface {} in {}", args.ifname, args.netns)),
        Some(l) => {
            if !l.up {
                missing.push(format!("{} is down", args.ifname));
            }
            if link::format_mac(&l.mac) != saved.mac {
                missing.push(format!("{} has MAC {}, expected {}", args.ifname, link::format_mac(&l.mac), saved.mac));
            }
            let have = addr::list(&mut pod, l.index)?;
            for ip in &saved.ips {
                if !have.contains(&ip.address) {
                    missing.push(format!("address {} on {}", ip.address, args.ifname));
                }
            }
            let mut routes = route::list(&mut pod, l.index, true)?;
            routes.extend(route::list(&mut pod, l.index, false)?);
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
    missing
        .extend(network::check(&mut node.netlink, &network::Wanted::new(net, &saved.ranges, &gateways, saved.backend)));

    verdict(args, missing)
}

fn verdict(args: &CmdArgs, missing: Vec<String>) -> Result<(), PluginError> {
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PluginError::Check(format!("{}/{} is missing: {}", args.container_id, args.ifname, missing.join("; "))))
    }
}
