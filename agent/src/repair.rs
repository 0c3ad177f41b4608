//! Restores the node side of every network and attachment weavice recorded:
//! bridge, gateway addresses, sysctls and netfilter skeleton per network
//! (network::ensure, forced), then each attachment's port mappings.
//! Idempotent: running it on an intact node changes nothing.

use weavice::error::PluginError;
use weavice::state::Attachment;
use weavice::{firewall, link, network};

pub struct Report {
    networks: usize,
    mappings: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repaired {} network(s), {} attachment(s) with port mappings", self.networks, self.mappings)
    }
}

pub fn run(state_dir: &str) -> Result<Report, PluginError> {
    let mut nl = link::connect()?;
    let mut report = Report { networks: 0, mappings: 0 };
    for (name, wanted) in network::recorded(state_dir)? {
        network::ensure(&mut nl, state_dir, &name, &wanted, true)?;
        report.networks += 1;
        for a in Attachment::list(state_dir, &name)? {
            if !a.port_mappings.is_empty() {
                firewall::add_port_mappings(&a.port_mappings, &a.pod_ips(), a.backend, false)?;
                report.mappings += 1;
            }
        }
    }
    Ok(report)
}
