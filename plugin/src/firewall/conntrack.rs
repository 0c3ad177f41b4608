//! Stale UDP flows to a newly mapped host port would keep bypassing the new
//! DNAT (conntrack keeps the old decision), so ADD flushes them, as portmap does.

use crate::warn;
use conf::{PortMapping, Protocol};
use std::process::{Command, Stdio};

pub fn flush_udp(mappings: &[PortMapping]) {
    for m in mappings.iter().filter(|m| m.protocol == Protocol::Udp) {
        let port = m.host_port.to_string();
        // exit status 1 only means no entry matched
        let run = Command::new("conntrack")
            .args(["-D", "-p", "udp", "--orig-port-dst", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = run {
            warn!("cannot flush UDP conntrack entries for port {port}: {e}");
        }
    }
}
