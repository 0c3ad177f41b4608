//! A pod speaks only as itself (`antiSpoofing`, on by default). A frame from
//! a checked bridge port is dropped unless its source MAC is the pod's; an
//! IPv4 or IPv6 packet unless its source is one of the pod's addresses (or
//! unspecified, or IPv6 link-local: DAD and NDP need them); ARP unless its
//! sender is the pod's MAC and address (or a 0.0.0.0 probe); a neighbour
//! advertisement unless its target is the pod's or link-local; a neighbour
//! solicitation or advertisement unless its link-layer address option is the
//! pod's MAC; every router advertisement, and every ethertype but IPv4, IPv6
//! and ARP.
//!
//! Checked in table `bridge weavice`, chain `antispoof`, jumped to from
//! prerouting at priority -300: before the bridge learns the source MAC
//! (so no pod can take another's place in the forwarding database) and
//! before br_netfilter hands the packet to the IP hooks; and from input, the
//! only hook frames to the reserved group addresses pass. Unspecified and
//! link-local IPv6 sources are not routed out of a routed bridge (table
//! `inet weavice`, chain `forward`). Per pod it is set
//! membership only: its port in `spoof_ports` (unlisted ports are not
//! checked: `antiSpoofing: false`, or another plugin's pods), `port . MAC`,
//! `port . address` per address, and for IPv6 `port . address` and
//! `port . MAC` again as the raw bits a neighbour advertisement's target and
//! a link-layer address option are read as. The drops
//! count what they drop (`nft list chain bridge weavice antispoof`).

use super::element::{Element, Field};
use super::expr::{concat, counter, eq, gt, jump, meta, ne, payload, raw_payload, set, verdict};
use super::redirect::SET as ROUTED_BRIDGES;
use super::{Rule, Skeleton, BRIDGE, INET};
use crate::firewall::PodIdentity;
use serde_json::{json, Value};
use std::net::IpAddr;

pub const CHAIN: &str = "antispoof";
const PORTS: &str = "spoof_ports";
const MACS: &str = "pod_macs";
const ADDRS_V4: &str = "pod_addrs_v4";
const ADDRS_V6: &str = "pod_addrs_v6";
const ND_TARGETS: &str = "pod_nd_targets";
const ND_MACS: &str = "pod_nd_macs";
/// The bridge ports of security-function chains' route functions: they
/// forward the endpoints' packets, so their IPv4 and IPv6 sources are not
/// checked (their MAC, ARP and NDP still are). steering.rs fills it.
pub const STEER_PORTS: &str = "steer_ports";
/// Every set that holds pods' identities.
pub const SETS: [&str; 6] = [PORTS, MACS, ADDRS_V4, ADDRS_V6, ND_TARGETS, ND_MACS];

/// Neighbour solicitations and advertisements, but DAD's (from ::).
fn neighbour_messages_not_dad() -> Vec<Value> {
    vec![
        eq(payload("icmpv6", "type"), json!({"set": ["nd-neighbor-solicit", "nd-neighbor-advert"]})),
        ne(payload("ip6", "saddr"), json!("::")),
    ]
}

/// `{ ::, fe80::/10 }`: the IPv6 sources DAD and NDP use before or besides a pod's addresses.
fn unspecified_or_link_local() -> Value {
    json!({"set": ["::", {"prefix": {"addr": "fe80::", "len": 10}}]})
}

/// `iifname . <field>`
fn port_and(field: Value) -> Value {
    concat(vec![meta("iifname"), field])
}

/// Everything anti-spoofing needs: the bridge checks and the drop of
/// link-local sources routed between pods.
pub fn skeleton() -> Skeleton {
    let mut s = bridge_skeleton();
    s.objects += &format!("add chain {INET} forward {{ type filter hook forward priority filter; policy accept; }}\n");
    // Unspecified and link-local sources, allowed on the link, must not be
    // routed; the kernel checks that only for packets that leave by another
    // interface, and routed pods share their bridge.
    s.rules.push(Rule {
        table: INET,
        chain: "forward",
        expr: drop(vec![
            eq(meta("iifname"), set(ROUTED_BRIDGES)),
            eq(payload("ip6", "saddr"), unspecified_or_link_local()),
        ]),
        name: "the drop of link-local sources routed between pods".into(),
    });
    s
}

/// `<expr> counter drop`
fn drop(mut expr: Vec<Value>) -> Vec<Value> {
    expr.extend([counter(), verdict("drop")]);
    expr
}

/// The checks of table `bridge weavice`, alone: the iptables backend's
/// networks take these (nf_tables under any backend) and drop link-local
/// sources with ip6tables.
pub fn bridge_skeleton() -> Skeleton {
    let mut objects = format!("add table {BRIDGE}\n");
    objects += &format!("add set {BRIDGE} {PORTS} {{ type ifname; }}\n");
    objects += &format!("add set {BRIDGE} {MACS} {{ type ifname . ether_addr; }}\n");
    objects += &format!("add set {BRIDGE} {ADDRS_V4} {{ type ifname . ipv4_addr; }}\n");
    objects += &format!("add set {BRIDGE} {ADDRS_V6} {{ type ifname . ipv6_addr; }}\n");
    // nft 1.0.6 cannot read an ND target as an address: raw bits of the same value
    objects += &format!("add set {BRIDGE} {ND_TARGETS} {{ typeof iifname . @th,64,128; }}\n");
    // the MAC in a solicitation's or advertisement's link-layer address option
    objects += &format!("add set {BRIDGE} {ND_MACS} {{ typeof iifname . @th,208,48; }}\n");
    objects += &format!("add set {BRIDGE} {STEER_PORTS} {{ type ifname; }}\n");
    // prerouting sees what the bridge forwards or delivers; frames to the
    // reserved group addresses (01:80:c2:00:00:0x) skip it and reach input only
    for hook in ["prerouting", "input"] {
        objects += &format!("add chain {BRIDGE} {hook} {{ type filter hook {hook} priority -300; policy accept; }}\n");
    }
    objects += &format!("add chain {BRIDGE} {CHAIN}\n");

    let rule = |chain, expr, name: &str| Rule { table: BRIDGE, chain, expr, name: name.into() };
    let jump_from = |hook: &'static str| {
        rule(
            hook,
            vec![eq(meta("iifname"), set(PORTS)), jump(CHAIN)],
            &format!("jump to {CHAIN} in {hook} of table {BRIDGE}"),
        )
    };
    let rules = vec![
        jump_from("prerouting"),
        jump_from("input"),
        rule(CHAIN, drop(vec![ne(port_and(payload("ether", "saddr")), set(MACS))]), "the source MAC check"),
        rule(
            CHAIN,
            drop(vec![ne(payload("ether", "type"), json!({"set": ["ip", "arp", "ip6"]}))]),
            "the drop of ethertypes other than IPv4, IPv6 and ARP",
        ),
        rule(CHAIN, drop(vec![ne(port_and(payload("arp", "saddr ether")), set(MACS))]), "the ARP sender MAC check"),
        rule(
            CHAIN,
            drop(vec![
                ne(payload("arp", "saddr ip"), json!("0.0.0.0")),
                ne(port_and(payload("arp", "saddr ip")), set(ADDRS_V4)),
            ]),
            "the ARP sender address check",
        ),
        rule(
            CHAIN,
            drop(vec![
                ne(meta("iifname"), set(STEER_PORTS)),
                ne(payload("ip", "saddr"), json!("0.0.0.0")),
                ne(port_and(payload("ip", "saddr")), set(ADDRS_V4)),
            ]),
            "the IPv4 source address check",
        ),
        rule(
            CHAIN,
            drop(vec![
                ne(meta("iifname"), set(STEER_PORTS)),
                ne(payload("ip6", "saddr"), unspecified_or_link_local()),
                ne(port_and(payload("ip6", "saddr")), set(ADDRS_V6)),
            ]),
            "the IPv6 source address check",
        ),
        rule(
            CHAIN,
            drop(vec![eq(payload("icmpv6", "type"), json!("nd-router-advert"))]),
            "the drop of router advertisements",
        ),
        rule(
            CHAIN,
            drop(vec![
                eq(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                // fe80::/16 targets: link-local, which NDP answers for
                ne(raw_payload("th", 64, 16), json!(0xfe80)),
                ne(port_and(raw_payload("th", 64, 128)), set(ND_TARGETS)),
            ]),
            "the neighbour advertisement target check",
        ),
        // an advertisement comes from an address of the sender's (not ::,
        // which the option checks below leave to DAD's solicitations)
        rule(
            CHAIN,
            drop(vec![
                eq(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                eq(payload("ip6", "saddr"), json!("::")),
            ]),
            "the drop of neighbour advertisements from ::",
        ),
        // Solicitations and advertisements carry at most one option, the
        // link-layer address (DAD's, from ::, a nonce): one more could hide it.
        rule(
            CHAIN,
            drop([neighbour_messages_not_dad(), vec![gt(payload("ip6", "length"), json!(32))]].concat()),
            "the drop of neighbour messages with more than one option",
        ),
        rule(
            CHAIN,
            drop(
                [
                    neighbour_messages_not_dad(),
                    vec![
                        eq(payload("ip6", "length"), json!(32)),
                        ne(port_and(raw_payload("th", 208, 48)), set(ND_MACS)),
                    ],
                ]
                .concat(),
            ),
            "the neighbour link-layer address check",
        ),
    ];
    Skeleton { objects, rules, elements: Vec::new() }
}

/// Every element a pod's identity needs.
pub fn elements(id: &PodIdentity) -> Vec<Element> {
    let port = || Field::IfName(id.port.clone());
    let element = |set: &str, key: Vec<Field>| Element { table: BRIDGE, set: set.into(), key, data: None };
    let mut out = vec![element(PORTS, vec![port()]), element(MACS, vec![port(), Field::Mac(id.mac)])];
    for ip in &id.ips {
        match ip {
            IpAddr::V4(_) => out.push(element(ADDRS_V4, vec![port(), Field::Addr(*ip)])),
            IpAddr::V6(a) => {
                out.push(element(ADDRS_V6, vec![port(), Field::Addr(*ip)]));
                out.push(element(ND_TARGETS, vec![port(), Field::Raw128(u128::from(*a))]));
            }
        }
    }
    if id.ips.iter().any(IpAddr::is_ipv6) {
        out.push(element(ND_MACS, vec![port(), Field::RawMac(id.mac)]));
    }
    out
}

/// The bridge port whose pod holds `mac`, if a checked pod does.
pub fn port_with_mac(mac: &[u8; 6]) -> crate::Result<Option<String>> {
    let held = super::elements::held(BRIDGE, MACS)?;
    Ok(held.into_iter().find_map(|e| match e.key.as_slice() {
        [Field::IfName(port), Field::Mac(m)] if m == mac => Some(port.clone()),
        _ => None,
    }))
}

/// An element of one of [`SETS`], from the key the kernel lists.
pub fn decode_element(set: &str, key: &[u8]) -> Option<Element> {
    let name = key.get(..16)?;
    let port = String::from_utf8(name.iter().copied().take_while(|b| *b != 0).collect()).ok()?;
    let rest = key.get(16..)?;
    let second = match set {
        PORTS | STEER_PORTS if rest.is_empty() => None,
        MACS => Some(Field::Mac(rest.get(..6)?.try_into().ok()?)),
        ADDRS_V4 => Some(Field::Addr(IpAddr::from(<[u8; 4]>::try_from(rest).ok()?))),
        ADDRS_V6 => Some(Field::Addr(IpAddr::from(<[u8; 16]>::try_from(rest).ok()?))),
        ND_TARGETS => Some(Field::Raw128(u128::from_be_bytes(rest.try_into().ok()?))),
        ND_MACS => Some(Field::RawMac(rest.get(..6)?.try_into().ok()?)),
        _ => return None,
    };
    let key = std::iter::once(Field::IfName(port)).chain(second).collect();
    Some(Element { table: BRIDGE, set: set.into(), key, data: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_its_port_mac_and_addresses_and_decodes_as_listed() {
        let id = PodIdentity {
            port: "wv0123456789ab".into(),
            mac: [2, 0, 0, 0, 0, 1],
            ips: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        };
        let e = elements(&id);
        let listed: Vec<String> = e.iter().map(|e| format!("{} {}", e.set, e.json())).collect();
        assert_eq!(
            listed,
            [
                r#"spoof_ports "wv0123456789ab""#,
                r#"pod_macs {"concat":["wv0123456789ab","02:00:00:00:00:01"]}"#,
                r#"pod_addrs_v4 {"concat":["wv0123456789ab","10.0.0.5"]}"#,
                r#"pod_addrs_v6 {"concat":["wv0123456789ab","fd00::5"]}"#,
                r#"pod_nd_targets {"concat":["wv0123456789ab","0xfd000000000000000000000000000005"]}"#,
                r#"pod_nd_macs {"concat":["wv0123456789ab",2199023255553]}"#,
            ]
        );
        // an interface name fills IFNAMSIZ; a MAC is padded to a register
        assert_eq!(e[1].key_bytes().len(), 16 + 8);
        for el in &e {
            assert_eq!(decode_element(&el.set, &el.key_bytes()).as_ref(), Some(el));
            assert!(el.is_of_port("wv0123456789ab") && !el.is_of_port("wv0123456789ac"));
        }
    }
}
