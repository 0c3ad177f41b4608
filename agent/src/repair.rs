//! Restores the node side of every network and attachment weavice recorded:
//! bridge, gateway addresses, sysctls and firewall skeleton per network
//! (network::ensure, forced), then each attachment's port forwards and
//! anti-spoofing identity; then the security-function chains, with their
//! pods' set elements, ip rules and hop tables.
//! Idempotent: running it on an intact node changes nothing.

use datapath::attachment::Attachment;
use datapath::netlink::RouteSocket;
use datapath::{chains, firewall, network, DatapathError};

pub struct Report {
    networks: usize,
    chains: usize,
    /// Attachments with port mappings or an identity.
    pods: usize,
    /// Attachments whose state file does not read (each logged).
    unreadable: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "repaired {} network(s), {} attachment(s) with port mappings or anti-spoofing, {} chain(s)",
            self.networks, self.pods, self.chains
        )?;
        if self.unreadable > 0 {
            write!(f, "; {} attachment state file(s) unreadable", self.unreadable)?;
        }
        Ok(())
    }
}

pub fn run(state_dir: &str) -> Result<Report, DatapathError> {
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    let mut report = Report { networks: 0, chains: 0, pods: 0, unreadable: 0 };
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
            if !a.port_mappings.is_empty() || a.anti_spoofing {
                firewall::install_pod(a.backend, &a.rules()?, false)?;
                let id = if a.anti_spoofing { " and its identity" } else { "" };
                log::info!("{}/{}: {} port mapping(s){id} restored", a.container_id, a.ifname, a.port_mappings.len());
                report.pods += 1;
            }
        }
    }
    report.chains = chains::store::list(state_dir)?.len();
    chains::install::sync(&mut nl, state_dir)?;
    Ok(report)
}
