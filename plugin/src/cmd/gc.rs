//! GC: releases every attachment not listed as valid (its port mappings and
//! claims, host veth, saved state and IPAM reservations), and finishes
//! retired veths left behind.

use super::{node_socket, require_version, Done};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, CniVersion, NetConf};
use datapath::attachment::Attachment;
use datapath::hostports;
use datapath::lingering::Lingering;
use datapath::link::veth;
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

    for a in Attachment::list(&net.state_dir, &net.name) {
        // an unreadable state file is reported; the rest is still collected
        let a = match a {
            Ok(a) => a,
            Err(e) => {
                errors.push(e.into());
                continue;
            }
        };
        if keep.iter().any(|k| k.container_id == a.container_id && k.ifname == a.ifname) {
            continue;
        }
        info!("GC releases {}/{} ({})", a.container_id, a.ifname, a.host_veth);
        let mut removed = || -> Result<(), PluginError> {
            lingering.extend(port_mappings::remove(
                &net.state_dir,
                &a.holder(),
                &a.port_mappings,
                &a.pod_ips(),
                a.backend,
            )?);
            // a chained attachment has no veth of weavice's
            if !a.chained {
                if let Some(l) = node.link().get(&a.host_veth)? {
                    node.link().delete(l.index, &l.name)?;
                }
            }
            Ok(Attachment::remove(&net.state_dir, &net.name, &a.container_id, &a.ifname)?)
        };
        if let Err(e) = removed() {
            errors.push(e);
        }
    }

    // claims cut short (a kill or a full disk while claiming) that no pod holds
    if let Err(e) = hostports::reclaim_unreadable(&net.state_dir) {
        errors.push(e.into());
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
        if let Err(e) = ipam.gc(net, args) {
            errors.push(e);
        }
    }
    PluginError::all(errors).map(|()| Done { lingering, ..Done::default() })
}
