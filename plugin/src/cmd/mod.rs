//! One file per CNI verb. Each takes the validated config and environment.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod ports;
pub mod status;

use crate::error::PluginError;
use crate::link::{self, Netlink};
use crate::netns::NetNs;
use conf::{CmdArgs, CniVersion, ConfError, NetConf};

/// The namespace the plugin was started in (the node) and a netlink handle there.
pub struct Node {
    pub ns: NetNs,
    pub netlink: Netlink,
}

impl Node {
    pub fn connect() -> Result<Self, PluginError> {
        Ok(Node { ns: NetNs::current()?, netlink: link::connect()? })
    }

    /// A netlink handle bound to `pod`'s namespace.
    pub fn connect_in(&self, pod: &NetNs) -> Result<Netlink, PluginError> {
        pod.run(&self.ns, link::connect)?
    }
}

pub fn require_version(
    net: &NetConf,
    verb: &'static str,
    needs: &'static str,
    min: CniVersion,
) -> Result<(), PluginError> {
    if net.cni_version < min {
        return Err(ConfError::VerbNeedsVersion { verb, version: net.cni_version.to_string(), needs }.into());
    }
    Ok(())
}

/// The MAC the runtime asked for: `mac` capability, `args.cni.mac`, or CNI_ARGS `MAC`.
pub fn requested_mac(net: &NetConf, args: &CmdArgs) -> Result<Option<Vec<u8>>, PluginError> {
    let wanted = net.runtime_config.mac.as_ref().or(net.args.cni.mac.as_ref()).or(args.args.get("MAC"));
    match wanted {
        None => Ok(None),
        Some(s) => match link::parse_mac(s) {
            Some(mac) if mac[0] & 1 == 0 => Ok(Some(mac)),
            _ => Err(ConfError::Invalid(format!("MAC {s:?} is not a unicast address like 02:42:ac:11:00:02")).into()),
        },
    }
}
