//! GC: releases every attachment not listed as valid (its port mappings and
//! claims, host veth, saved state and IPAM reservations), and finishes
//! retired veths left behind.

use super::{node_socket, require_version, Done};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, CniVersion, NetConf};
use datapath::attachment::{self, Attachment};
use datapath::chains::{members, ChainPod};
use datapath::firewall::Backend;
use datapath::hostports;
use datapath::lingering::Lingering;
use datapath::link::veth;
use datapath::netlink::RouteSocket;
use log::{info, warn};
use std::net::IpAddr;

pub fn run(net: &NetConf, args: &CmdArgs) -> Result<Done, PluginError> {
    require_version(net, "GC", "1.1.0", CniVersion::V1_1_0)?;
    // only an explicit list, even an empty one, says which pods still live
    let Some(keep) = &net.valid_attachments else {
        info!("GC without cni.dev/valid-attachments: nothing to collect");
        return Ok(Done::default());
    };
    let mut node = node_socket()?;
    let mut errors = Vec::new();
    let mut lingering = Lingering::default();
    let listed =
        |container_id: &str, ifname: &str| keep.iter().any(|k| k.container_id == container_id && k.ifname == ifname);
    // collected from their state below; the rest IPAM frees left none
    let mut collected = Vec::new();
    let mut lost = Vec::new();

    for a in Attachment::list(&net.state_dir, &net.name) {
        let a = match a {
            Ok(a) => a,
            // a listed pod's is reported; the rest is still collected
            Err(u) if keep.iter().any(|k| u.is_of(&k.container_id, &k.ifname)) => {
                errors.push(u.error.into());
                continue;
            }
            // an unlisted one goes, and what it held is found by its name (and
            // IPAM's reservations) below; unless an ADD was still writing it
            Err(u) => {
                let id = u.container_id();
                let _adding = id.as_ref().map(|id| attachment::lock(&net.state_dir, &net.name, id, &u.ifname));
                if !u.still_unreadable() {
                    continue;
                }
                warn!("GC removes {}: {}", u.path.display(), u.error);
                if let Err(e) = u.remove() {
                    errors.push(e.into());
                }
                lost.extend(id.map(|id| (id, u.ifname.clone())));
                continue;
            }
        };
        if listed(&a.container_id, &a.ifname) {
            continue;
        }
        collected.push((a.container_id.clone(), a.ifname.clone()));
        info!("GC releases {}/{} ({})", a.container_id, a.ifname, a.host_veth);
        let mut removed = || -> Result<(), PluginError> {
            lingering.extend(port_mappings::remove_saved(&net.state_dir, &a)?);
            // a chained attachment has no veth of weavice's
            if !a.chained {
                lingering.extend(members::leave(&mut node, &net.state_dir, &net.name, &ChainPod::of(&a))?);
                node.link().delete_named(&a.host_veth)?;
            }
            Ok(Attachment::remove(&net.state_dir, &net.name, &a.container_id, &a.ifname)?)
        };
        if let Err(e) = removed() {
            errors.push(e);
        }
    }

    // claims cut short (a kill or a full disk while claiming) that no pod
    // holds, and claims of unlisted attachments whose state was lost
    let stray = hostports::reclaim_unreadable(&net.state_dir).and_then(|mut freed| {
        let live = |h: &hostports::Holder| listed(&h.container_id, &h.ifname);
        freed.extend(hostports::release_unlisted(&net.state_dir, &net.name, live)?);
        Ok(freed)
    });
    match stray {
        Ok(freed) => freed.iter().for_each(|port| warn!("GC released stray claim on host port {port}")),
        Err(e) => errors.push(e.into()),
    }

    // veths whose background deletion did not finish (DEL's child was killed)
    let tombs: Vec<_> = node.link().list()?.into_iter().filter(|l| veth::is_tombstone(&l.name)).collect();
    for l in tombs {
        warn!("GC deletes leftover retired veth {}", l.name);
        if let Err(e) = node.link().delete(l.index, &l.name) {
            errors.push(e.into());
        }
    }

    let mut freed_ips = Vec::new();
    if let Some(ipam) = Ipam::from_conf(net)? {
        match ipam.gc(net, args) {
            Ok(freed) => {
                for r in freed {
                    let who = (r.container_id, r.ifname);
                    if collected.contains(&who) {
                        continue;
                    }
                    freed_ips.push(r.ip);
                    if !lost.contains(&who) {
                        lost.push(who);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    lost_state(&mut node, net, &lost, &freed_ips, &mut lingering, &mut errors);
    PluginError::all(errors).map(|()| Done { lingering, ..Done::default() })
}

/// Attachments that left no readable state (a kill before ADD wrote it, a
/// lost or torn file): their host veths, named after the attachment, the
/// forwards to `ips` (the reservations GC freed for them) and the identities
/// of those veths go too.
fn lost_state(
    node: &mut RouteSocket,
    net: &NetConf,
    lost: &[(String, String)],
    ips: &[IpAddr],
    lingering: &mut Lingering,
    errors: &mut Vec<PluginError>,
) {
    if lost.is_empty() && ips.is_empty() {
        return;
    }
    let mut ports = Vec::new();
    for (container_id, ifname) in lost {
        for routed in [true, false] {
            let name = veth::host_name(&net.name, container_id, ifname, routed);
            // without a name, every chain of the network is routed again
            let pod = ChainPod { name: None, ips: ips.to_vec(), port: name.clone() };
            match members::leave(node, &net.state_dir, &net.name, &pod) {
                Ok(l) => lingering.extend(l),
                Err(e) => errors.push(e.into()),
            }
            if let Err(e) = node.link().delete_named(&name) {
                errors.push(e.into());
            }
            ports.push(name);
        }
    }
    for backend in Backend::installed() {
        match backend.driver().remove_lost(ips, &ports) {
            Ok(l) => lingering.extend(l),
            Err(e) => errors.push(e.into()),
        }
    }
}
