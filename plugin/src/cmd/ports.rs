//! Port mappings of one attachment, shared by ADD (standalone and chained),
//! DEL, CHECK and rollback: claim, install, remove, release.

use crate::error::PluginError;
use crate::firewall::{self, Backend};
use crate::hostports::{self, Holder};
use crate::link::{addr, Netlink};
use conf::{CmdArgs, ConfError, NetConf, PortMapping};
use std::net::IpAddr;

pub fn holder(net: &NetConf, args: &CmdArgs) -> Holder {
    let pod = match (args.args.get("K8S_POD_NAMESPACE"), args.args.get("K8S_POD_NAME")) {
        (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
        _ => None,
    };
    Holder { network: net.name.clone(), container_id: args.container_id.clone(), ifname: args.ifname.clone(), pod }
}

/// Checks every hostIP is an address of this node, then claims the ports.
/// Nothing is installed yet; a refusal leaves nothing behind.
pub fn claim(nl: &mut Netlink, net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    if net.port_mappings.is_empty() {
        return Ok(());
    }
    let local: Vec<IpAddr> = if net.port_mappings.iter().any(|m| m.host_ip.is_some()) {
        addr::dump(nl)?.into_iter().map(|(_, a)| a.addr()).collect()
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
    hostports::claim(&net.state_dir, &holder(net, args), &net.port_mappings)
}

pub fn install(mappings: &[PortMapping], pod_ips: &[IpAddr], backend: Backend, fresh: bool) -> Result<(), PluginError> {
    firewall::add_port_mappings(mappings, pod_ips, backend, fresh)
}

/// Removes the mappings and drops the claims; both tolerate absence.
pub fn remove(
    state_dir: &str,
    holder: &Holder,
    mappings: &[PortMapping],
    pod_ips: &[IpAddr],
    backend: Backend,
) -> Result<(), PluginError> {
    let removed = firewall::remove_port_mappings(mappings, pod_ips, backend);
    hostports::release(state_dir, holder, mappings)?;
    removed
}
