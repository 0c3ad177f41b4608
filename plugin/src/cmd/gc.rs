//! GC: releases every attachment not listed as valid (its port mappings and
//! claims, host veth, saved state and IPAM reservations), and finishes
//! retired veths left behind.

use super::{node_socket, require_version, Done};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, CniVersion, NetConf};
use datapath::attachment::Attachment;
use datapath::firewall::Backend;
use datapath::hostports;
use datapath::lingering::Lingering;
use datapath::link::veth;
use datapath::netlink::RouteSocket;
use ipam::store::Reservation;
use log::{info, warn};

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

    for a in Attachment::list(&net.state_dir, &net.name) {
        let a = match a {
            Ok(a) => a,
            // a listed pod's is reported; the rest is still collected
            Err(u) if keep.iter().any(|k| u.is_of(&k.container_id, &k.ifname)) => {
                errors.push(u.error.into());
                continue;
            }
            // an unlisted one goes: what it held, IPAM's reservations lead to below
            Err(u) => {
                warn!("GC removes {}: {}", u.path.display(), u.error);
                if let Err(e) = u.remove() {
                    errors.push(e.into());
                }
                continue;
            }
        };
        if listed(&a.container_id, &a.ifname) {
            continue;
        }
        collected.push((a.container_id.clone(), a.ifname.clone()));
        info!("GC releases {}/{} ({})", a.container_id, a.ifname, a.host_veth);
        let mut removed = || -> Result<(), PluginError> {
            let rules = a.rules()?;
            lingering.extend(port_mappings::remove(
                &net.state_dir,
                &a.holder(),
                &a.port_mappings,
                Some(&rules),
                a.backend,
            )?);
            // a chained attachment has no veth of weavice's
            if !a.chained {
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

    if let Some(ipam) = Ipam::from_conf(net)? {
        match ipam.gc(net, args) {
            Ok(mut freed) => {
                freed.retain(|r| !collected.contains(&(r.container_id.clone(), r.ifname.clone())));
                if !freed.is_empty() {
                    lost_state(&mut node, net, &freed, &mut lingering, &mut errors);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    PluginError::all(errors).map(|()| Done { lingering, ..Done::default() })
}

/// Reservations GC freed for attachments that left no state (a kill before
/// ADD wrote it, a lost file): their host veths, named after the attachment,
/// the forwards to their addresses and the identities of those veths go too.
fn lost_state(
    node: &mut RouteSocket,
    net: &NetConf,
    freed: &[Reservation],
    lingering: &mut Lingering,
    errors: &mut Vec<PluginError>,
) {
    let mut ports = Vec::new();
    for r in freed {
        for routed in [true, false] {
            let name = veth::host_name(&net.name, &r.container_id, &r.ifname, routed);
            if let Err(e) = node.link().delete_named(&name) {
                errors.push(e.into());
            }
            ports.push(name);
        }
    }
    let ips: Vec<_> = freed.iter().map(|r| r.ip).collect();
    for backend in Backend::installed() {
        match backend.driver().remove_lost(&ips, &ports) {
            Ok(l) => lingering.extend(l),
            Err(e) => errors.push(e.into()),
        }
    }
}
