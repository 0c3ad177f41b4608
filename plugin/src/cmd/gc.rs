//! GC: releases every attachment not listed as valid (its port mappings and
//! claims, host veth, saved state and IPAM reservations), and finishes
//! retired veths left behind.

use super::{ports, require_version, Node};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::link::{self, veth};
use crate::state::Attachment;
use crate::{info, warn};
use conf::{CmdArgs, CniVersion, NetConf};

pub fn run(net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    require_version(net, "GC", "1.1.0", CniVersion::V1_1_0)?;
    let keep = net.valid_attachments.clone().unwrap_or_default();
    let mut node = Node::connect()?;
    let mut errors = Vec::new();

    for a in Attachment::list(&net.state_dir, &net.name)? {
        if keep.iter().any(|k| k.container_id == a.container_id && k.ifname == a.ifname) {
            continue;
        }
        info!("GC releases {}/{} ({})", a.container_id, a.ifname, a.host_veth);
        let removed = (|| {
            ports::remove(&net.state_dir, &a.holder(), &a.port_mappings, &a.pod_ips(), a.backend)?;
            // a chained attachment has no veth of weavice's
            if !a.chained {
                if let Some(l) = link::get(&mut node.netlink, &a.host_veth)? {
                    link::delete(&mut node.netlink, l.index, &l.name)?;
                }
            }
            Attachment::remove(&net.state_dir, &net.name, &a.container_id, &a.ifname)
        })();
        if let Err(e) = removed {
            errors.push(e);
        }
    }

    // veths whose background deletion did not finish (DEL's child was killed)
    let tombs: Vec<link::Link> = link::list(&mut node.netlink)?
        .into_iter()
        .filter(|l| l.name.starts_with(veth::TOMBSTONE_PREFIX) && l.name.len() == 14)
        .collect();
    for l in tombs {
        warn!("GC deletes leftover retired veth {}", l.name);
        if let Err(e) = link::delete(&mut node.netlink, l.index, &l.name) {
            errors.push(e);
        }
    }

    if let Some(ipam) = Ipam::from_conf(net)? {
        if let Err(e) = ipam.gc(net, args) {
            errors.push(e);
        }
    }
    PluginError::all(errors)
}
