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
use conf::PortMapping;
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

/// (set or map, key, value) for every element a pod's mappings need.
/// Errors when a mapping's hostIP is of a family the pod has no address in.
pub fn elements(mappings: &[PortMapping], pod_ips: &[IpAddr]) -> Result<Vec<(String, String, Option<String>)>, String> {
    let mut out = Vec::new();
    for m in mappings {
        let targets: Vec<&IpAddr> =
            pod_ips.iter().filter(|ip| m.host_ip.is_none_or(|h| h.is_ipv4() == ip.is_ipv4())).collect();
        if targets.is_empty() {
            return Err(format!("port mapping {m}: the pod has no address of the host IP's family"));
        }
        for ip in targets {
            let value = Some(format!("{ip} . {}", m.container_port));
            match m.host_ip {
                Some(h) => {
                    out.push((format!("hostip_{}", fam(ip)), format!("{h} . {} . {}", m.protocol, m.host_port), value))
                }
                None => out.push((format!("hostport_{}", fam(ip)), format!("{} . {}", m.protocol, m.host_port), value)),
            }
        }
    }
    if !mappings.is_empty() {
        for ip in pod_ips {
            out.push((format!("hairpin_{}", fam(ip)), format!("{ip} . {ip}"), None));
        }
    }
    Ok(out)
}

pub fn render_add(elements: &[(String, String, Option<String>)]) -> String {
    elements
        .iter()
        .map(|(set, key, value)| match value {
            Some(v) => format!("add element {TABLE} {set} {{ {key} : {v} }}\n"),
            None => format!("add element {TABLE} {set} {{ {key} }}\n"),
        })
        .collect()
}

pub fn render_delete(elements: &[(String, String, Option<String>)]) -> Vec<String> {
    elements.iter().map(|(set, key, _)| format!("delete element {TABLE} {set} {{ {key} }}\n")).collect()
}

/// Elements missing from a listing of the table, for CHECK.
pub fn missing(listing: &str, elements: &[(String, String, Option<String>)]) -> Vec<String> {
    elements
        .iter()
        .filter(|(set, key, value)| {
            let wanted = match value {
                Some(v) => format!("{key} : {v}"),
                None => key.clone(),
            };
            !super::set_elements_text(listing, set).contains(&wanted)
        })
        .map(|(set, key, _)| format!("{key} in {set}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::Protocol;

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
        let text = render_add(&e);
        assert!(text.contains("add element inet weavice hostport_v4 { tcp . 8080 : 10.0.0.5 . 80 }"), "{text}");
        assert!(text.contains("add element inet weavice hostport_v6 { tcp . 8080 : fd00::5 . 80 }"), "{text}");
        assert!(
            text.contains("add element inet weavice hostip_v4 { 192.0.2.1 . udp . 53 : 10.0.0.5 . 5353 }"),
            "{text}"
        );
        assert!(!text.contains("hostip_v6"), "{text}");
        assert!(text.contains("add element inet weavice hairpin_v6 { fd00::5 . fd00::5 }"), "{text}");
        assert_eq!(render_delete(&e)[0], "delete element inet weavice hostport_v4 { tcp . 8080 }\n");
        let v6_only = PortMapping {
            host_port: 1,
            container_port: 1,
            protocol: Protocol::Tcp,
            host_ip: Some("2001:db8::1".parse().unwrap()),
        };
        assert!(elements(&[v6_only], &ips[..1]).is_err());
    }
}
