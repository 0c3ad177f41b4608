//! GC: releases every attachment not listed as valid, its host veth, saved
//! state and IPAM reservations, and finishes retired veths left behind.

use super::{require_version, Node};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::link::{self, veth};
use crate::state::Attachment;
use crate::{info, warn};
use conf::{CmdArgs, CniVersion, NetConf};
use futures::TryStreamExt;

pub async fn run(net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    require_version(net, "GC", "1.1.0", CniVersion::V1_1_0)?;
    let keep = net.valid_attachments.clone().unwrap_or_default();
    let node = Node::connect()?;
    let mut errors = Vec::new();

    for a in Attachment::list(&net.state_dir, &net.name)? {
        if keep
            .iter()
            .any(|k| k.container_id == a.container_id && k.ifname == a.ifname)
        {
            continue;
        }
        info!(
            "GC releases {}/{} ({})",
            a.container_id, a.ifname, a.host_veth
        );
        let removed = async {
            if let Some(l) = link::get(&node.netlink, &a.host_veth).await? {
                link::delete(&node.netlink, l.index, &l.name).await?;
            }
            Attachment::remove(&net.state_dir, &net.name, &a.container_id, &a.ifname)
        };
        if let Err(e) = removed.await {
            errors.push(e);
        }
    }

    // veths whose background deletion did not finish (DEL's child was killed)
    let mut links = node.netlink.link().get().execute();
    let mut tombs = Vec::new();
    while let Some(m) = links
        .try_next()
        .await
        .map_err(PluginError::netlink("list links"))?
    {
        let l = link::Link::from(m);
        if l.name.starts_with(veth::TOMBSTONE_PREFIX) && l.name.len() == 14 {
            tombs.push(l);
        }
    }
    for l in tombs {
        warn!("GC deletes leftover retired veth {}", l.name);
        if let Err(e) = link::delete(&node.netlink, l.index, &l.name).await {
            errors.push(e);
        }
    }

    if let Some(ipam) = Ipam::from_conf(net)? {
        if let Err(e) = ipam.gc(net, args) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(PluginError::Multiple(errors)),
    }
}
