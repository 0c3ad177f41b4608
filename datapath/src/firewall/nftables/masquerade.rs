//! MASQUERADE for traffic that leaves the pod ranges.
//!
//! Sets `pod_v4`/`pod_v6` hold every network's ranges (never masqueraded as
//! destinations); `masq_v4`/`masq_v6` the ranges of networks with ipMasq;
//! `cluster_v4`/`cluster_v6` the other nodes' pod ranges (never masqueraded
//! either: pods of other nodes see the pod's own address), kept by the
//! node daemon from the node list.

use super::expr::{eq, jump, ne, payload, prefix, set, verdict};
use super::{family, Elem, Rule, Skeleton, INET};
use crate::firewall::NetworkRules;

pub const CHAIN: &str = "WEAVICE-MASQ";

pub fn skeleton(net: &NetworkRules) -> Skeleton {
    let mut objects = String::new();
    for (fam, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
        for set in ["pod", "masq", "cluster"] {
            objects += &format!("add set {INET} {set}_{fam} {{ type {ty}; flags interval; }}\n");
        }
    }
    objects +=
        &format!("add chain {INET} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n");
    objects += &format!("add chain {INET} {CHAIN}\n");

    let rule = |chain, expr, name: &str| Rule { table: INET, chain, expr, name: name.into() };
    let mut rules = vec![rule("postrouting", vec![jump(CHAIN)], &format!("jump to {CHAIN} in postrouting"))];
    for (ip, fam, what) in [("ip", "v4", "IPv4"), ("ip6", "v6", "IPv6")] {
        rules.push(rule(
            CHAIN,
            vec![
                eq(payload(ip, "saddr"), set(&format!("masq_{fam}"))),
                ne(payload(ip, "daddr"), set(&format!("pod_{fam}"))),
                ne(payload(ip, "daddr"), set(&format!("cluster_{fam}"))),
                verdict("masquerade"),
            ],
            &format!("the masquerade rule ({what})"),
        ));
    }

    let mut elements = Vec::new();
    let sets: &[&str] = if net.masquerade { &["pod", "masq"] } else { &["pod"] };
    for r in &net.ranges {
        let set = |s| format!("{s}_{}", family(&r.addr()));
        elements.extend(sets.iter().map(|s| Elem { set: set(s), text: r.to_string(), json: prefix(r) }));
    }
    Skeleton { objects, rules, elements }
}

/// Makes `cluster_v4`/`cluster_v6` hold exactly `ranges`, in one
/// transaction (the node daemon, when the node list changes).
pub fn set_cluster_ranges(ranges: &[ipnet::IpNet]) -> crate::Result<()> {
    let mut script = format!("add table {INET}\n");
    for (fam, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
        script +=
            &format!("add set {INET} cluster_{fam} {{ type {ty}; flags interval; }}\nflush set {INET} cluster_{fam}\n");
        let mut mine: Vec<ipnet::IpNet> =
            ranges.iter().filter(|r| family(&r.addr()) == fam).map(ipnet::IpNet::trunc).collect();
        // an interval set refuses overlaps: the covering range alone
        mine = ipnet::IpNet::aggregate(&mine);
        if !mine.is_empty() {
            let list: Vec<String> = mine.iter().map(ToString::to_string).collect();
            script += &format!("add element {INET} cluster_{fam} {{ {} }}\n", list.join(", "));
        }
    }
    super::tool::apply_script(&script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ranges: &[&str], masquerade: bool) -> NetworkRules {
        NetworkRules {
            ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
            masquerade,
            bridge: "wv0".into(),
            routed: true,
        }
    }

    #[test]
    fn a_network_adds_its_ranges_per_family() {
        let s = skeleton(&net(&["10.1.0.0/16", "fd01::/64"], true));
        let sets: Vec<(&str, &str)> = s.elements.iter().map(|e| (e.set.as_str(), e.text.as_str())).collect();
        assert_eq!(
            sets,
            [("pod_v4", "10.1.0.0/16"), ("masq_v4", "10.1.0.0/16"), ("pod_v6", "fd01::/64"), ("masq_v6", "fd01::/64")]
        );
        assert!(!skeleton(&net(&["10.1.0.0/16"], false)).elements.iter().any(|e| e.set == "masq_v4"));
    }
}
