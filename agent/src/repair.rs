//! Restores the node side of every network and attachment weavice recorded:
//! bridge, gateway addresses, sysctls and firewall skeleton per network
//! (network::ensure, forced), then each attachment's port forwards.
//! Idempotent: running it on an intact node changes nothing.

use datapath::attachment::Attachment;
use datapath::netlink::RouteSocket;
use datapath::{firewall, network, DatapathError};

pub struct Report {
    networks: usize,
    mappings: usize,
    /// Attachments whose state file does not read (each logged).
    unreadable: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repaired {} network(s), {} attachment(s) with port mappings", self.networks, self.mappings)?;
        if self.unreadable > 0 {
            write!(f, "; {} attachment state file(s) unreadable", self.unreadable)?;
        }
        Ok(())
    }
}

pub fn run(state_dir: &str) -> Result<Report, DatapathError> {
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    let mut report = Report { networks: 0, mappings: 0, unreadable: 0 };
    for (name, wanted) in network::recorded(state_dir)? {
        network::ensure(&mut nl, state_dir, &name, &wanted, true)?;
        log::info!("network {name}: set up");
        report.networks += 1;
        for a in Attachment::list(state_dir, &name) {
            let a = match a {
                Ok(a) => a,
                Err(u) => {
                    log::warn!("{}", u.error);
                    report.unreadable += 1;
                    continue;
                }
            };
            if !a.port_mappings.is_empty() {
                firewall::install_forwards(a.backend, &a.forwards()?, false)?;
                log::info!("{}/{}: {} port mapping(s) restored", a.container_id, a.ifname, a.port_mappings.len());
                report.mappings += 1;
            }
        }
    }
    Ok(report)
}
