//! IPAM delegation per the spec: `weavice-ipam` runs in-process (no second
//! process on the ADD path); any other `ipam.type` is executed from CNI_PATH.

use crate::error::PluginError;
use conf::{CmdArgs, CniResult, Command, IpamConf, NetConf};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

pub enum Ipam {
    InProcess(IpamConf),
    Exec { plugin: String },
}

impl Ipam {
    pub fn from_conf(net: &NetConf) -> Result<Option<Self>, PluginError> {
        let (Some(value), Some(kind)) = (&net.ipam, &net.ipam_type) else {
            return Ok(None);
        };
        Ok(Some(if kind == ipam::PLUGIN_TYPE {
            Ipam::InProcess(IpamConf::from_value(value)?)
        } else {
            Ipam::Exec { plugin: kind.clone() }
        }))
    }

    /// Every range of the network and its gateway, when weavice-ipam's config
    /// says (a delegated plugin's config is its own).
    pub fn configured(&self) -> Option<(Vec<ipnet::IpNet>, Vec<std::net::IpAddr>)> {
        let Ipam::InProcess(c) = self else { return None };
        let (mut subnets, mut gateways) = (Vec::new(), Vec::new());
        for r in c.range_sets.iter().flatten() {
            // several ranges may share a subnet (and its gateway)
            if !subnets.contains(&r.subnet.trunc()) {
                subnets.push(r.subnet.trunc());
            }
            if !gateways.contains(&r.gateway) {
                gateways.push(r.gateway);
            }
        }
        Some((subnets, gateways))
    }

    pub fn kind(&self) -> &str {
        match self {
            Ipam::InProcess(_) => ipam::PLUGIN_TYPE,
            Ipam::Exec { plugin } => plugin,
        }
    }

    pub fn add(&self, net: &NetConf, args: &CmdArgs) -> Result<CniResult, PluginError> {
        match self {
            Ipam::InProcess(c) => {
                let wanted = ipam::requested_ips(net, args)?;
                Ok(ipam::add(c, &net.name, &args.container_id, &args.ifname, &wanted)?)
            }
            Ipam::Exec { plugin } => {
                let out = exec(plugin, Command::Add, net, args)?;
                let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| PluginError::Delegate {
                    plugin: plugin.clone(),
                    msg: format!("result is not JSON: {e}"),
                    code: None,
                })?;
                CniResult::from_value(&v).map_err(|e| PluginError::Delegate {
                    plugin: plugin.clone(),
                    msg: e.to_string(),
                    code: None,
                })
            }
        }
    }

    pub fn del(&self, net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
        match self {
            Ipam::InProcess(c) => {
                ipam::del(c, &net.name, &args.container_id, &args.ifname).map(drop).map_err(Into::into)
            }
            Ipam::Exec { plugin } => exec(plugin, Command::Del, net, args).map(drop),
        }
    }

    /// The attachment's addresses as IPAM knows them; a delegated plugin
    /// cannot say, so empty.
    pub fn addresses(&self, net: &NetConf, args: &CmdArgs) -> Result<Vec<std::net::IpAddr>, PluginError> {
        match self {
            Ipam::InProcess(c) => Ok(ipam::ips_of(c, &net.name, &args.container_id, &args.ifname)?),
            Ipam::Exec { .. } => Ok(Vec::new()),
        }
    }

    pub fn check(&self, net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
        match self {
            Ipam::InProcess(c) => {
                ipam::check(c, &net.name, &args.container_id, &args.ifname).map(drop).map_err(Into::into)
            }
            Ipam::Exec { plugin } => exec(plugin, Command::Check, net, args).map(drop),
        }
    }

    /// Releases what unlisted attachments hold; returns the reservations
    /// freed (a delegated plugin cannot say: empty).
    pub fn gc(&self, net: &NetConf, args: &CmdArgs) -> Result<Vec<ipam::store::Reservation>, PluginError> {
        match self {
            Ipam::InProcess(c) => {
                let keep = net.valid_attachments.as_deref().unwrap_or_default();
                Ok(ipam::gc(c, &net.name, keep)?)
            }
            Ipam::Exec { plugin } => exec(plugin, Command::Gc, net, args).map(|_| Vec::new()),
        }
    }

    pub fn status(&self, net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
        match self {
            Ipam::InProcess(c) => ipam::status(c, &net.name).map_err(Into::into),
            Ipam::Exec { plugin } => {
                // STATUS is new in spec 1.1.0; a plugin that does not list it
                // would answer something else (host-local 1.1.1: "missing containerID")
                let versions = exec(plugin, Command::Version, net, args)?;
                let speaks_status = serde_json::from_slice::<serde_json::Value>(&versions)
                    .ok()
                    .and_then(|v| v["supportedVersions"].as_array().map(|a| a.iter().any(|x| x == "1.1.0")))
                    .unwrap_or(false);
                if !speaks_status {
                    return Ok(());
                }
                exec(plugin, Command::Status, net, args).map(drop)
            }
        }
    }
}

fn find(plugin: &str, path: &[String]) -> Option<PathBuf> {
    path.iter().map(|d| PathBuf::from(d).join(plugin)).find(|p| p.is_file())
}

/// Runs the delegated plugin with our own config and environment, as the spec says.
fn exec(plugin: &str, command: Command, net: &NetConf, args: &CmdArgs) -> Result<Vec<u8>, PluginError> {
    let fail = |msg: String, code| PluginError::Delegate { plugin: plugin.to_string(), msg, code };
    let bin = find(plugin, &args.path)
        .ok_or_else(|| fail(format!("not found in CNI_PATH {:?}", args.path.join(":")), None))?;
    let mut child = Process::new(&bin)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", bin.display()), None))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&serde_json::to_vec(&net.raw).unwrap_or_default());
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string(), None))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let msg = err.get("msg").and_then(|m| m.as_str()).unwrap_or("failed without an error message");
    let details = err.get("details").and_then(|m| m.as_str()).unwrap_or("");
    let code = err.get("code").and_then(|c| c.as_u64()).map(|c| c as u32);
    Err(fail(format!("{} {msg} {details}", command.as_str()).trim_end().to_string(), code))
}
