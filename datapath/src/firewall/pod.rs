//! A pod as the firewall backends take it: its port mappings, one forward
//! per (mapping, pod address of the mapping's family), plus the pod
//! addresses whose traffic to their own host port is masqueraded (hairpin);
//! and its identity on the bridge, which anti-spoofing holds it to.

use crate::{DatapathError, Result};
use conf::{PortMapping, Protocol};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// Only traffic to this node address; None: any of the node's addresses.
    pub host_ip: Option<IpAddr>,
    pub protocol: Protocol,
    pub host_port: u16,
    pub pod_ip: IpAddr,
    pub pod_port: u16,
}

/// What a pod may send as: from its bridge port, its MAC and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// The host side of its veth.
    pub port: String,
    pub mac: [u8; 6],
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRules {
    pub forwards: Vec<PortForward>,
    /// Masqueraded when they reach their own host port, so the reply comes back through the node.
    pub hairpin: Vec<IpAddr>,
    /// None: the pod is not held to an identity (`antiSpoofing: false`).
    pub identity: Option<PodIdentity>,
}

impl PodRules {
    /// Fails when a mapping's hostIP is of a family the pod has no address in.
    pub fn new(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<Self> {
        let mut forwards = Vec::new();
        for m in mappings {
            let targets: Vec<&IpAddr> =
                pod_ips.iter().filter(|ip| m.host_ip.is_none_or(|h| h.is_ipv4() == ip.is_ipv4())).collect();
            if targets.is_empty() {
                return Err(DatapathError::Invalid(format!(
                    "port mapping {m}: the pod has no address of the host IP's family"
                )));
            }
            forwards.extend(targets.into_iter().map(|ip| PortForward {
                host_ip: m.host_ip,
                protocol: m.protocol,
                host_port: m.host_port,
                pod_ip: *ip,
                pod_port: m.container_port,
            }));
        }
        let hairpin = if mappings.is_empty() { Vec::new() } else { pod_ips.to_vec() };
        Ok(PodRules { forwards, hairpin, identity: None })
    }

    pub fn with_identity(self, identity: Option<PodIdentity>) -> Self {
        PodRules { identity, ..self }
    }

    pub fn is_empty(&self) -> bool {
        self.forwards.is_empty() && self.hairpin.is_empty() && self.identity.is_none()
    }

    /// The host ports of UDP forwards, whose stale flows ADD flushes.
    pub fn udp_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> =
            self.forwards.iter().filter(|f| f.protocol == Protocol::Udp).map(|f| f.host_port).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// 8080/tcp to port 80 on any address, 53/udp on 192.0.2.1 to 5353, for a dual-stack pod.
    pub fn sample() -> PodRules {
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let any = PortMapping { host_port: 8080, container_port: 80, protocol: Protocol::Tcp, host_ip: None };
        let v4 = PortMapping {
            host_port: 53,
            container_port: 5353,
            protocol: Protocol::Udp,
            host_ip: Some("192.0.2.1".parse().unwrap()),
        };
        PodRules::new(&[any, v4], &ips).unwrap()
    }

    #[test]
    fn one_forward_per_address_of_the_mappings_family() {
        let f = sample();
        assert_eq!(f.forwards.len(), 3, "{f:?}");
        assert_eq!(f.hairpin.len(), 2);
        assert_eq!(f.udp_ports(), vec![53]);
        let v6_only = PortMapping {
            host_port: 1,
            container_port: 1,
            protocol: Protocol::Tcp,
            host_ip: Some("2001:db8::1".parse().unwrap()),
        };
        let e = PodRules::new(&[v6_only], &["10.0.0.5".parse().unwrap()]).unwrap_err().to_string();
        assert!(e.contains("no address of the host IP's family"), "{e}");
        assert!(PodRules::new(&[], &["10.0.0.5".parse().unwrap()]).unwrap().is_empty());
    }
}
