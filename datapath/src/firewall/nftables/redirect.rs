//! No ICMP redirects out of routed bridges. In routed mode pod-to-pod traffic
//! leaves the bridge it came in on, so the node would tell a pod its peer is
//! on-link, which it cannot reach at L2 (isolation.rs). IPv4 pods would act on it
//! (a host's accept_redirects is ORed with the namespace-wide `all`), and the
//! node's `send_redirects` is ORed with `all` too, so a per-interface sysctl
//! cannot stop it. One rule per family, one set element per network.

use super::expr::{eq, meta, payload, set, verdict};
use super::{Elem, Rule, Skeleton, INET};
use crate::firewall::NetworkRules;
use serde_json::json;

pub const CHAIN: &str = "output";
pub const SET: &str = "routed_bridges";

pub fn skeleton(net: &NetworkRules) -> Skeleton {
    let mut objects = format!("add set {INET} {SET} {{ type ifname; }}\n");
    objects += &format!("add chain {INET} {CHAIN} {{ type filter hook output priority filter; policy accept; }}\n");
    let rules = [("icmp", "redirect", "IPv4"), ("icmpv6", "nd-redirect", "IPv6")]
        .into_iter()
        .map(|(proto, kind, what)| Rule {
            table: INET,
            chain: CHAIN,
            expr: vec![eq(meta("oifname"), set(SET)), eq(payload(proto, "type"), json!(kind)), verdict("drop")],
            name: format!("the {what} redirect drop rule"),
        })
        .collect();
    let elements = if net.routed {
        vec![Elem { set: SET.into(), text: format!("\"{}\"", net.bridge), json: json!(net.bridge) }]
    } else {
        Vec::new()
    };
    Skeleton { objects, rules, elements }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_networks_add_their_bridge() {
        let routed = skeleton(&NetworkRules::bare(true));
        assert_eq!(routed.elements[0].text, "\"wv0\"");
        assert!(skeleton(&NetworkRules::bare(false)).elements.is_empty());
        assert_eq!(routed.rules.len(), 2);
    }
}
