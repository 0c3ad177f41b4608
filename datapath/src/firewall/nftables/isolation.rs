//! Routed pods reach each other only through the node.
//!
//! Port isolation cannot do it once br_netfilter runs bridged traffic through
//! the IP hooks (`bridge-nf-call-iptables=1`, the default once the module is
//! loaded, so on every kube-proxy node): the node's DNAT from one pod to
//! another on the same bridge (a hostPort, a hairpin, a Service) is then
//! forwarded port to port, which isolation drops. So routed ports are not
//! isolated and a bridge filter drops what crosses from or to one of them at
//! L2, except frames the node DNATed, which carry [`marks::DNAT`]. Routed host
//! veths are named `wv…` (bridged ones `wb…`): this kernel's nftables cannot
//! match the bridge.
//!
//! Here: a prerouting rule after DNAT marks, the bridge forward hook drops.
//! iptables has no table after DNAT in prerouting and ebtables' forward chain
//! runs before iptables' (which sees the DNAT), so the iptables backend
//! splits the check in three (iptables/skeleton.rs).

use super::expr::{ct_dnat, eq, mark_has, mark_or, meta, set, verdict};
use super::redirect::SET as ROUTED_BRIDGES;
use super::{Rule, Skeleton, BRIDGE, INET};
use crate::link::veth::ROUTED_PREFIX;
use crate::marks;
use serde_json::json;

const MARK_CHAIN: &str = "dnat_mark";

pub fn skeleton() -> Skeleton {
    let mut objects = format!(
        "add chain {INET} {MARK_CHAIN} {{ type filter hook prerouting priority dstnat + 10; policy accept; }}\n"
    );
    objects += &format!("add table {BRIDGE}\n");
    objects += &format!("add chain {BRIDGE} forward {{ type filter hook forward priority filter; policy accept; }}\n");

    let ports = json!(format!("{ROUTED_PREFIX}*"));
    let mut rules = vec![
        Rule {
            table: INET,
            chain: MARK_CHAIN,
            expr: vec![eq(meta("iifname"), set(ROUTED_BRIDGES)), ct_dnat(), mark_or(marks::DNAT)],
            name: format!("the DNAT mark rule in chain {MARK_CHAIN}"),
        },
        Rule {
            table: BRIDGE,
            chain: "forward",
            expr: vec![mark_has(marks::DNAT), verdict("accept")],
            name: format!("the accept rule for DNATed frames in table {BRIDGE}"),
        },
    ];
    for dir in ["iifname", "oifname"] {
        rules.push(Rule {
            table: BRIDGE,
            chain: "forward",
            expr: vec![eq(meta(dir), ports.clone()), verdict("drop")],
            name: format!("the {dir} drop rule for routed ports in table {BRIDGE}"),
        });
    }
    Skeleton { objects, rules, elements: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_frames_are_accepted_before_the_drops() {
        let s = skeleton();
        let bridge: Vec<&str> = s.rules.iter().filter(|r| r.table == BRIDGE).map(|r| r.name.as_str()).collect();
        assert!(bridge[0].starts_with("the accept rule"), "{bridge:?}");
        assert_eq!(bridge.len(), 3);
    }
}
