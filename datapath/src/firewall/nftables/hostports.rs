//! hostPort DNAT. The rules are installed once with the network; a pod's
//! forwards are elements of four maps, so mapping a port costs the same with
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

use super::element::{Element, Field};
use super::expr::{concat, ct_dnat, dnat_map, eq, fib_daddr_type, jump, meta, payload, prefix, set, verdict};
use super::masquerade::CHAIN as MASQ_CHAIN;
use super::{family, Rule, Skeleton, INET};
use crate::firewall::PodRules;
use conf::Protocol;
use serde_json::json;
use std::net::IpAddr;

pub const CHAIN: &str = "WEAVICE-HOSTPORTS";

pub fn skeleton() -> Skeleton {
    let mut objects = String::new();
    for (fam, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
        objects +=
            &format!("add map {INET} hostport_{fam} {{ type inet_proto . inet_service : {ty} . inet_service; }}\n");
        objects += &format!(
            "add map {INET} hostip_{fam} {{ type {ty} . inet_proto . inet_service : {ty} . inet_service; }}\n"
        );
        objects += &format!("add set {INET} hairpin_{fam} {{ type {ty} . {ty}; }}\n");
    }
    objects += &format!("add chain {INET} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n");
    objects += &format!("add chain {INET} nat_output {{ type nat hook output priority -100; policy accept; }}\n");
    objects += &format!("add chain {INET} {CHAIN}\n");

    let rule = |chain, expr, name: String| Rule { table: INET, chain, expr, name };
    let mut rules = Vec::new();
    for chain in ["prerouting", "nat_output"] {
        rules.push(rule(
            chain,
            vec![eq(fib_daddr_type(), json!("local")), jump(CHAIN)],
            format!("jump to {CHAIN} in {chain}"),
        ));
    }
    let l4 = || vec![meta("l4proto"), payload("th", "dport")];
    for (ip, fam) in [("ip", "v4"), ("ip6", "v6")] {
        let with_ip = [vec![payload(ip, "daddr")], l4()].concat();
        rules.push(rule(
            CHAIN,
            vec![dnat_map(ip, with_ip, &format!("hostip_{fam}"))],
            format!("the DNAT rule for hostip_{fam}"),
        ));
        rules.push(rule(
            CHAIN,
            vec![dnat_map(ip, l4(), &format!("hostport_{fam}"))],
            format!("the DNAT rule for hostport_{fam}"),
        ));
    }
    for (ip, fam) in [("ip", "v4"), ("ip6", "v6")] {
        let pair = concat(vec![payload(ip, "saddr"), payload(ip, "daddr")]);
        rules.push(rule(
            MASQ_CHAIN,
            vec![ct_dnat(), eq(pair, set(&format!("hairpin_{fam}"))), verdict("masquerade")],
            format!("the hairpin masquerade rule ({fam})"),
        ));
    }
    let loopback = eq(payload("ip", "saddr"), prefix(&"127.0.0.0/8".parse().expect("literal prefix")));
    rules.push(rule(
        MASQ_CHAIN,
        vec![ct_dnat(), loopback, verdict("masquerade")],
        "the 127.0.0.1 masquerade rule".into(),
    ));
    Skeleton { objects, rules, elements: Vec::new() }
}

/// Every set and map that holds pods' forwards.
pub const SETS: [&str; 6] = ["hostport_v4", "hostport_v6", "hostip_v4", "hostip_v6", "hairpin_v4", "hairpin_v6"];

/// Reads fields of the given kinds back from their padded bytes.
fn decode(kinds: &[&str], mut bytes: &[u8]) -> Option<Vec<Field>> {
    let mut out = Vec::new();
    for kind in kinds {
        let (field, len) = match *kind {
            "v4" => (Field::Addr(IpAddr::from(<[u8; 4]>::try_from(bytes.get(..4)?).ok()?)), 4),
            "v6" => (Field::Addr(IpAddr::from(<[u8; 16]>::try_from(bytes.get(..16)?).ok()?)), 16),
            "proto" => (
                Field::Proto(match *bytes.first()? {
                    6 => Protocol::Tcp,
                    17 => Protocol::Udp,
                    132 => Protocol::Sctp,
                    _ => return None,
                }),
                4,
            ),
            _ => (Field::Port(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?])), 4),
        };
        out.push(field);
        bytes = bytes.get(len..)?;
    }
    bytes.is_empty().then_some(out)
}

/// An element of one of [`SETS`], from the key and data the kernel lists.
pub fn decode_element(set: &str, key: &[u8], data: Option<&[u8]>) -> Option<Element> {
    let fam = if set.ends_with("v4") { "v4" } else { "v6" };
    let (key_kinds, data_kinds): (Vec<&str>, Option<Vec<&str>>) = match set.split('_').next()? {
        "hostport" => (vec!["proto", "port"], Some(vec![fam, "port"])),
        "hostip" => (vec![fam, "proto", "port"], Some(vec![fam, "port"])),
        "hairpin" => (vec![fam, fam], None),
        _ => return None,
    };
    let data = match (data_kinds, data) {
        (Some(kinds), Some(bytes)) => Some(decode(&kinds, bytes)?),
        (None, None) => None,
        _ => return None,
    };
    Some(Element { table: INET, set: set.to_string(), key: decode(&key_kinds, key)?, data })
}

/// Every element a pod's forwards need.
pub fn elements(f: &PodRules) -> Vec<Element> {
    let mut out: Vec<Element> = f
        .forwards
        .iter()
        .map(|fw| {
            let (set, mut key) = match fw.host_ip {
                Some(h) => (format!("hostip_{}", family(&fw.pod_ip)), vec![Field::Addr(h)]),
                None => (format!("hostport_{}", family(&fw.pod_ip)), vec![]),
            };
            key.extend([Field::Proto(fw.protocol), Field::Port(fw.host_port)]);
            Element { table: INET, set, key, data: Some(vec![Field::Addr(fw.pod_ip), Field::Port(fw.pod_port)]) }
        })
        .collect();
    out.extend(f.hairpin.iter().map(|ip| Element {
        table: INET,
        set: format!("hairpin_{}", family(ip)),
        key: vec![Field::Addr(*ip), Field::Addr(*ip)],
        data: None,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::pod::tests::sample;

    #[test]
    fn elements_per_family_and_host_ip() {
        let e = elements(&sample());
        let text: Vec<String> = e.iter().map(|e| format!("{} {}", e.set, e.json())).collect();
        assert_eq!(
            text,
            [
                r#"hostport_v4 [{"concat":["tcp",8080]},{"concat":["10.0.0.5",80]}]"#,
                r#"hostport_v6 [{"concat":["tcp",8080]},{"concat":["fd00::5",80]}]"#,
                r#"hostip_v4 [{"concat":["192.0.2.1","udp",53]},{"concat":["10.0.0.5",5353]}]"#,
                r#"hairpin_v4 {"concat":["10.0.0.5","10.0.0.5"]}"#,
                r#"hairpin_v6 {"concat":["fd00::5","fd00::5"]}"#,
            ]
        );
        assert_eq!(e[0].describe_key(), "tcp . 8080");
        for el in &e {
            let back = decode_element(&el.set, &el.key_bytes(), el.data_bytes().as_deref());
            assert_eq!(back.as_ref(), Some(el), "decoded as listed");
        }
        assert!(e[0].concerns(&"10.0.0.5".parse().unwrap()) && !e[0].concerns(&"10.0.0.6".parse().unwrap()));
        assert!(e[4].concerns(&"fd00::5".parse().unwrap()), "a hairpin entry");
        // binary layout: each field padded to 4 bytes, network byte order
        assert_eq!(e[0].key_bytes(), vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e[0].data_bytes().unwrap(), vec![10, 0, 0, 5, 0, 80, 0, 0]);
    }
}
