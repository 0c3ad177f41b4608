//! hostPort DNAT. The rules are installed once with the network; a pod's
//! mappings are elements of four maps, so mapping a port costs the same with
//! one pod on the node or thousands.
//!
//! - `hostport_v4`/`_v6`: `proto . port : podIP . containerPort` (any local address)
//! - `hostip_v4`/`_v6`: `hostIP . proto . port : podIP . containerPort`
//! - `hairpin_v4`/`_v6`: `podIP . podIP`, masqueraded so a pod reaching its own
//!   hostPort gets the reply through the node
//!
//! Only traffic to the node's own addresses (`fib daddr type local`) is
//! looked up, from outside (prerouting) and from the node itself (output).
//! 127.0.0.1 works through route_localnet on the bridge and a masquerade of
//! DNATed loopback traffic; `[::1]` cannot be mapped (IPv6 has no route_localnet).

use super::TABLE;
use conf::{PortMapping, Protocol};
use std::net::IpAddr;

pub const CHAIN: &str = "WEAVICE-HOSTPORTS";

pub fn render_skeleton() -> String {
    let mut s = String::new();
    for (fam, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
        s += &format!("add map {TABLE} hostport_{fam} {{ type inet_proto . inet_service : {ty} . inet_service; }}\n");
        s += &format!(
            "add map {TABLE} hostip_{fam} {{ type {ty} . inet_proto . inet_service : {ty} . inet_service; }}\n"
        );
        s += &format!("add set {TABLE} hairpin_{fam} {{ type {ty} . {ty}; }}\n");
    }
    s += &format!("add chain {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n");
    s += &format!("add chain {TABLE} nat_output {{ type nat hook output priority -100; policy accept; }}\n");
    s += &format!("add chain {TABLE} {CHAIN}\n");
    for chain in ["prerouting", "nat_output", CHAIN] {
        s += &format!("flush chain {TABLE} {chain}\n");
    }
    for chain in ["prerouting", "nat_output"] {
        s += &format!("add rule {TABLE} {chain} fib daddr type local jump {CHAIN}\n");
    }
    for (fam, ip) in [("v4", "ip"), ("v6", "ip6")] {
        s += &format!("add rule {TABLE} {CHAIN} dnat {ip} to {ip} daddr . meta l4proto . th dport map @hostip_{fam}\n");
        s += &format!("add rule {TABLE} {CHAIN} dnat {ip} to meta l4proto . th dport map @hostport_{fam}\n");
    }
    s
}

/// Masquerade rules for mapped traffic, appended to the masquerade chain.
pub fn masquerade_rules(chain: &str) -> String {
    let mut s = String::new();
    s += &format!("add rule {TABLE} {chain} ct status dnat ip saddr . ip daddr @hairpin_v4 masquerade\n");
    s += &format!("add rule {TABLE} {chain} ct status dnat ip6 saddr . ip6 daddr @hairpin_v6 masquerade\n");
    s += &format!("add rule {TABLE} {chain} ct status dnat ip saddr 127.0.0.0/8 masquerade\n");
    s
}

fn fam(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "v4"
    } else {
        "v6"
    }
}

/// One field of a concatenated key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Addr(IpAddr),
    Proto(Protocol),
    Port(u16),
}

impl Field {
    fn text(&self) -> String {
        match self {
            Field::Addr(ip) => ip.to_string(),
            Field::Proto(p) => p.to_string(),
            Field::Port(p) => p.to_string(),
        }
    }

    /// As nftables lays a field out in a concatenation: network byte order,
    /// padded to a 4-byte register.
    fn bytes(&self) -> Vec<u8> {
        let mut b = match self {
            Field::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Field::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Field::Proto(p) => vec![match p {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => 132,
            }],
            Field::Port(p) => p.to_be_bytes().to_vec(),
        };
        b.resize(b.len().div_ceil(4) * 4, 0);
        b
    }
}

/// An element of one of the port-mapping sets or maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: String,
    pub key: Vec<Field>,
    pub data: Option<Vec<Field>>,
}

fn join(fields: &[Field]) -> String {
    fields.iter().map(Field::text).collect::<Vec<_>>().join(" . ")
}

fn concat(fields: &[Field]) -> Vec<u8> {
    fields.iter().flat_map(Field::bytes).collect()
}

impl Element {
    pub fn key_bytes(&self) -> Vec<u8> {
        concat(&self.key)
    }

    pub fn data_bytes(&self) -> Option<Vec<u8>> {
        self.data.as_deref().map(concat)
    }

    /// As `nft list` prints it.
    pub fn text(&self) -> String {
        match &self.data {
            Some(d) => format!("{} : {}", join(&self.key), join(d)),
            None => join(&self.key),
        }
    }
}

/// Every element a pod's mappings need. Errors when a mapping's hostIP is of
/// a family the pod has no address in.
pub fn elements(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<Vec<Element>, String> {
    let mut out = Vec::new();
    for m in mappings {
        let targets: Vec<&IpAddr> =
            pod_ips.iter().filter(|ip| m.host_ip.is_none_or(|h| h.is_ipv4() == ip.is_ipv4())).collect();
        if targets.is_empty() {
            return Err(format!("port mapping {m}: the pod has no address of the host IP's family"));
        }
        for ip in targets {
            let data = Some(vec![Field::Addr(*ip), Field::Port(m.container_port)]);
            let (set, mut key) = match m.host_ip {
                Some(h) => (format!("hostip_{}", fam(ip)), vec![Field::Addr(h)]),
                None => (format!("hostport_{}", fam(ip)), vec![]),
            };
            key.extend([Field::Proto(m.protocol), Field::Port(m.host_port)]);
            out.push(Element { set, key, data });
        }
    }
    if !mappings.is_empty() {
        for ip in pod_ips {
            out.push(Element {
                set: format!("hairpin_{}", fam(ip)),
                key: vec![Field::Addr(*ip), Field::Addr(*ip)],
                data: None,
            });
        }
    }
    Ok(out)
}

/// Elements missing from a listing of the table, for CHECK.
pub fn missing(listing: &str, elements: &[Element]) -> Vec<String> {
    elements
        .iter()
        .filter(|e| !super::set_elements_text(listing, &e.set).contains(&e.text()))
        .map(|e| format!("{} in {}", join(&e.key), e.set))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_per_family_and_host_ip() {
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let any = PortMapping { host_port: 8080, container_port: 80, protocol: Protocol::Tcp, host_ip: None };
        let v4 = PortMapping {
            host_port: 53,
            container_port: 5353,
            protocol: Protocol::Udp,
            host_ip: Some("192.0.2.1".parse().unwrap()),
        };
        let e = elements(&[any, v4], &ips).unwrap();
        let text: String = e.iter().map(|e| format!("add element {TABLE} {} {{ {} }}\n", e.set, e.text())).collect();
        assert!(text.contains("add element inet weavice hostport_v4 { tcp . 8080 : 10.0.0.5 . 80 }"), "{text}");
        assert!(text.contains("add element inet weavice hostport_v6 { tcp . 8080 : fd00::5 . 80 }"), "{text}");
        assert!(
            text.contains("add element inet weavice hostip_v4 { 192.0.2.1 . udp . 53 : 10.0.0.5 . 5353 }"),
            "{text}"
        );
        assert!(!text.contains("hostip_v6"), "{text}");
        assert!(text.contains("add element inet weavice hairpin_v6 { fd00::5 . fd00::5 }"), "{text}");
        assert_eq!(join(&e[0].key), "tcp . 8080");
        let v6_only = PortMapping {
            host_port: 1,
            container_port: 1,
            protocol: Protocol::Tcp,
            host_ip: Some("2001:db8::1".parse().unwrap()),
        };
        assert!(elements(&[v6_only], &ips[..1]).is_err());
        // binary layout: each field padded to 4 bytes, network byte order
        assert_eq!(e[0].key_bytes(), vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e[0].data_bytes().unwrap(), vec![10, 0, 0, 5, 0, 80, 0, 0]);
    }
}
