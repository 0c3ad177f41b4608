//! Port mappings and the firewall rules of one attachment (its forwards and
//! anti-spoofing identity), shared by ADD (standalone and chained), DEL,
//! CHECK, GC and rollback: claim, install, remove, release.

use crate::error::PluginError;
use conf::{CmdArgs, ConfError, NetConf, PortMapping};
use datapath::attachment::{Attachment, Pod};
use datapath::firewall::{self, Backend, PodIdentity, PodRules};
use datapath::hostports::{self, Holder};
use datapath::lingering::Lingering;
use datapath::netlink::RouteSocket;
use std::net::IpAddr;

pub fn holder(net: &NetConf, args: &CmdArgs) -> Holder {
    Holder::new(&net.name, &args.container_id, &args.ifname, Pod::from_args(&args.args).as_ref())
}

/// Checks every hostIP is an address of this node, then claims the ports.
/// Nothing is installed yet; a refusal leaves nothing behind.
pub fn claim(nl: &mut RouteSocket, net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    if net.port_mappings.is_empty() {
        return Ok(());
    }
    let local: Vec<IpAddr> = if net.port_mappings.iter().any(|m| m.host_ip.is_some()) {
        nl.addr().dump()?.into_iter().map(|a| a.net.addr()).collect()
    } else {
        Vec::new()
    };
    for m in &net.port_mappings {
        if let Some(ip) = m.host_ip.filter(|ip| !local.contains(ip)) {
            return Err(
                ConfError::Invalid(format!("port mapping {m}: hostIP {ip} is not an address of this node")).into()
            );
        }
    }
    Ok(hostports::claim(&net.state_dir, &holder(net, args), &net.port_mappings)?)
}

/// The pod's firewall state: its forwards and, held to one, its identity.
pub fn rules(
    mappings: &[PortMapping],
    pod_ips: &[IpAddr],
    identity: Option<PodIdentity>,
) -> Result<PodRules, PluginError> {
    Ok(PodRules::new(mappings, pod_ips)?.with_identity(identity))
}

/// Installs the pod's rules in one transaction and flushes stale UDP flows
/// to the mapped ports. `fresh`: the attachment is new.
pub fn install(rules: &PodRules, backend: Backend, fresh: bool) -> Result<(), PluginError> {
    Ok(firewall::install_pod(backend, rules, fresh)?)
}

/// Removes the pod's rules (None: none were installed) and drops the
/// claims; both tolerate absence.
pub fn remove(
    state_dir: &str,
    holder: &Holder,
    mappings: &[PortMapping],
    rules: Option<&PodRules>,
    backend: Backend,
) -> Result<Lingering, PluginError> {
    let removed = match rules.filter(|r| !r.is_empty()) {
        Some(r) => backend.driver().remove_pod(r),
        None => Ok(Lingering::default()),
    };
    hostports::release(state_dir, holder, mappings)?;
    Ok(removed?)
}

/// Removes what a saved attachment installed and releases its claims. Rules
/// that do not build (a hostIP of a family the pod lacks) were never
/// installed: ADD refused them first.
pub fn remove_saved(state_dir: &str, a: &Attachment) -> Result<Lingering, PluginError> {
    remove(state_dir, &a.holder(), &a.port_mappings, a.rules().ok().as_ref(), a.backend)
}

/// What of the pod's rules is missing, for CHECK.
pub fn missing(rules: &PodRules, backend: Backend) -> Result<Vec<String>, PluginError> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    Ok(backend.driver().missing_pod(rules)?)
}
