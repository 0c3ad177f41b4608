//! DEL: idempotent and best-effort. Works without a netns, without a
//! prevResult, twice, and after a half-failed ADD; every step runs and all
//! failures are reported together.

use super::{host_veth_name, node_socket, pod_link_and_peer, Done};
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use crate::port_mappings;
use conf::{CmdArgs, NetConf};
use datapath::attachment::{self, Attachment};
use datapath::chains::{members, ChainPod};
use datapath::firewall::Backend;
use datapath::hostports;
use datapath::lingering::Lingering;
use datapath::link::{veth, Link};
use datapath::netlink::RouteSocket;
use log::{info, warn};

/// The retired host veth, whose kernel deletion (about 20 ms of RCU grace
/// periods) main runs after answering the runtime, goes in `Done`.
pub fn run(net: &NetConf, args: &CmdArgs) -> Result<Done, PluginError> {
    let _one_at_a_time = attachment::lock(&net.state_dir, &net.name, &args.container_id, &args.ifname)?;
    let mut node = node_socket()?;
    let mut errors = Vec::new();

    // Port mappings come from the saved state: runtimeConfig is often absent
    // at DEL. An unreadable state file must not make DEL fail forever (kubelet
    // would retry it endlessly): it is logged, treated as absent and removed below.
    let saved = Attachment::load(&net.state_dir, &net.name, &args.container_id, &args.ifname).unwrap_or_else(|e| {
        warn!("DEL {}/{}: {e}; looking for what it holds without it", args.container_id, args.ifname);
        None
    });
    let ipam = Ipam::from_conf(net);
    // the main plugin before a chained weavice owns the interface and addresses
    let chained = saved.as_ref().is_some_and(|a| a.chained);

    // The interface goes first, the port mappings after: the kernel's release of
    // deleted netfilter rules then runs while DEL finishes, not under the link
    // changes (which would wait for it); a DNAT to a pod without its interface
    // in between is simply unreachable.
    // before the veth goes: a function pod's hop routes move at once
    let mut lingering = Lingering::default();
    if !chained {
        let pod = match &saved {
            Some(a) => ChainPod::of(a),
            None => ChainPod {
                name: None,
                ips: ipam
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .and_then(|i| i.addresses(net, args).ok())
                    .unwrap_or_default(),
                port: host_veth_name(net, args),
            },
        };
        match members::leave(&mut node, &net.state_dir, &net.name, &pod) {
            Ok(l) => lingering.extend(l),
            Err(e) => errors.push(e.into()),
        }
    }
    let retired = if chained {
        None
    } else {
        retire_host_veth(&mut node, net, args, saved.as_ref()).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    };
    let unmapped = match &saved {
        Some(a) => port_mappings::remove_saved(&net.state_dir, a),
        None => unmap_without_state(net, args, ipam.as_ref().ok().and_then(Option::as_ref)),
    };
    lingering.extend(unmapped.unwrap_or_else(|e| {
        errors.push(e);
        Lingering::default()
    }));
    if !chained {
        match ipam {
            Ok(Some(ipam)) => {
                if let Err(e) = ipam.del(net, args) {
                    errors.push(e)
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }

    if errors.is_empty() {
        crate::pod_records::write(net, args, journal::PodEvent::Del, saved.as_ref());
        // kept while anything failed, so a retried DEL or GC still finds it
        if let Err(e) = Attachment::remove(&net.state_dir, &net.name, &args.container_id, &args.ifname) {
            errors.push(e.into());
        }
    }
    info!("DEL {}/{} netns={:?} errors={}", args.container_id, args.ifname, args.netns, errors.len());
    // main deletes a retired veth in the background only after a success
    if let Some(l) = retired.as_ref().filter(|_| !errors.is_empty()) {
        if let Err(e) = node.link().delete(l.index, &l.name) {
            errors.push(e.into());
        }
    }
    PluginError::all(errors).map(|()| Done { result: None, retired, lingering })
}

/// Without readable state (lost to a kill, a full disk or corruption), what
/// the node holds for this attachment is found another way: its port
/// forwards by the addresses IPAM's index gives it and its identity by its
/// veth's name, in every firewall backend installed, and its claims by their
/// holder (a walk of the claims). With no index (a repeated DEL) the
/// firewall is not searched, unless the IPAM is a delegated one.
fn unmap_without_state(net: &NetConf, args: &CmdArgs, ipam: Option<&Ipam>) -> Result<Lingering, PluginError> {
    let holder = port_mappings::holder(net, args);
    for port in hostports::release_all_of(&net.state_dir, &holder)? {
        info!("DEL {}/{}: released host port {port}", args.container_id, args.ifname);
    }
    let mut lingering = Lingering::default();
    let pod_ips = match ipam {
        Some(ipam) => ipam.addresses(net, args)?,
        None => Vec::new(),
    };
    // no index: a repeated DEL, unless a delegated IPAM, which keeps none
    if pod_ips.is_empty() && !matches!(ipam, Some(Ipam::Exec { .. })) {
        return Ok(lingering);
    }
    let port = host_veth_name(net, args);
    for backend in Backend::installed() {
        lingering.extend(backend.driver().remove_lost(&pod_ips, std::slice::from_ref(&port))?);
    }
    Ok(lingering)
}

/// Takes the host veth out of the way (or deletes it when that fails);
/// returns the retired link whose deletion main finishes in the background.
fn retire_host_veth(
    node: &mut RouteSocket,
    net: &NetConf,
    args: &CmdArgs,
    saved: Option<&Attachment>,
) -> Result<Option<Link>, PluginError> {
    let Some(l) = find_host_veth(node, net, args, saved)? else { return Ok(None) };
    if veth::is_tombstone(&l.name) {
        // retired by a DEL that failed later on: only its deletion is left
        return Ok(Some(l));
    }
    match node.link().retire(&l) {
        Ok(Some(tomb)) => Ok(Some(tomb)),
        Ok(None) => Ok(node.link().delete(l.index, &l.name).map(|()| None)?),
        Err(e) => {
            warn!("DEL {}: cannot retire {} ({e}); deleting it now", args.container_id, l.name);
            Ok(node.link().delete(l.index, &l.name).map(|()| None)?)
        }
    }
}

/// The attachment's host veth: by its name, which needs neither netns nor
/// state; by its retired name, after a DEL that failed half-way; or, renamed
/// by hand, as the peer of the pod's interface.
fn find_host_veth(
    node: &mut RouteSocket,
    net: &NetConf,
    args: &CmdArgs,
    saved: Option<&Attachment>,
) -> Result<Option<Link>, PluginError> {
    let name = match saved {
        Some(a) if !a.host_veth.is_empty() => a.host_veth.clone(),
        _ => host_veth_name(net, args),
    };
    let retired = veth::tombstone_name(&name);
    for candidate in [name, retired] {
        if let Some(l) = node.link().get(&candidate)? {
            return Ok(Some(l));
        }
    }
    // only a port of this network's bridge: another plugin's interface (an
    // ADD refused with 101, a chained attachment whose state is lost) is not
    // weavice's to delete
    let Some(bridge) = node.link().get(&net.bridge)? else { return Ok(None) };
    let peer = pod_link_and_peer(node, &args.netns, &args.ifname).map(|(_, peer)| peer);
    Ok(peer.filter(|p| p.master == Some(bridge.index)))
}
