//! STATUS: ready when the state dir is usable and IPAM can still hand out addresses.

use super::require_version;
use crate::error::PluginError;
use crate::ipam_client::Ipam;
use conf::{CmdArgs, CniVersion, NetConf};

pub fn run(net: &NetConf, args: &CmdArgs) -> Result<(), PluginError> {
    require_version(net, "STATUS", "1.1.0", CniVersion::V1_1_0)?;
    ipam::private_file::make_dirs(std::path::Path::new(&net.state_dir))
        .map_err(datapath::DatapathError::io(format!("state dir {}", net.state_dir)))?;
    match Ipam::from_conf(net)? {
        Some(ipam) => ipam.status(net, args),
        None => Ok(()),
    }
}
