//! MASQUERADE for traffic that leaves the pod ranges.
//!
//! Sets `pod_v4`/`pod_v6` hold every network's ranges (never masqueraded as
//! destinations); `masq_v4`/`masq_v6` the ranges of networks with ipMasq.

use super::{set_elements, NetworkRules, TABLE};
use ipnet::IpNet;

pub const CHAIN: &str = "WEAVICE-MASQ";

fn family(net: &IpNet) -> &'static str {
    if net.addr().is_ipv4() {
        "v4"
    } else {
        "v6"
    }
}

/// Sets, chains and rules (idempotent adds; rules rewritten after a flush)
/// plus this network's set elements.
pub fn render(rules: &NetworkRules) -> String {
    let mut s = String::new();
    for (fam, ty) in [("v4", "ipv4_addr"), ("v6", "ipv6_addr")] {
        for set in ["pod", "masq"] {
            s += &format!("add set {TABLE} {set}_{fam} {{ type {ty}; flags interval; }}\n");
        }
    }
    s += &format!("add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n");
    s += &format!("add chain {TABLE} {CHAIN}\nflush chain {TABLE} {CHAIN}\nflush chain {TABLE} postrouting\n");
    s += &format!("add rule {TABLE} postrouting jump {CHAIN}\n");
    s += &format!("add rule {TABLE} {CHAIN} ip saddr @masq_v4 ip daddr != @pod_v4 masquerade\n");
    s += &format!("add rule {TABLE} {CHAIN} ip6 saddr @masq_v6 ip6 daddr != @pod_v6 masquerade\n");
    for r in &rules.ranges {
        s += &format!("add element {TABLE} pod_{} {{ {r} }}\n", family(r));
        if rules.masquerade {
            s += &format!("add element {TABLE} masq_{} {{ {r} }}\n", family(r));
        }
    }
    s
}

/// What a listing of the table lacks for this network.
pub fn missing(listing: &str, rules: &NetworkRules) -> Vec<String> {
    let mut missing = Vec::new();
    if !listing.contains(&format!("jump {CHAIN}")) {
        missing.push(format!("jump to {CHAIN} in postrouting"));
    }
    for r in &rules.ranges {
        let sets: &[&str] = if rules.masquerade { &["pod", "masq"] } else { &["pod"] };
        for set in sets {
            let name = format!("{set}_{}", family(r));
            if !set_elements(listing, &name).iter().any(|e| e == &r.to_string()) {
                missing.push(format!("{r} in set {name}"));
            }
        }
    }
    let rule = |l: &str| l.trim_start().starts_with("ip saddr @masq_v4") && l.contains("masquerade");
    if rules.masquerade && !listing.lines().any(rule) {
        missing.push("the masquerade rule".into());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "table inet weavice {\n\tset pod_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.22.0.0/16, 10.23.0.0/24 }\n\t}\n\tset masq_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.22.0.0/16 }\n\t}\n\tchain postrouting {\n\t\tjump WEAVICE-MASQ\n\t}\n\tchain WEAVICE-MASQ {\n\t\tip saddr @masq_v4 ip daddr != @pod_v4 masquerade\n\t}\n}\n";

    fn rules(ranges: &[&str], masquerade: bool) -> NetworkRules {
        NetworkRules {
            ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
            masquerade,
            bridge: "wv0".into(),
            routed: true,
            backend: Default::default(),
        }
    }

    #[test]
    fn render_adds_elements_per_family() {
        let s = render(&rules(&["10.1.0.0/16", "fd01::/64"], true));
        assert!(s.contains("add element inet weavice masq_v4 { 10.1.0.0/16 }"));
        assert!(s.contains("add element inet weavice pod_v6 { fd01::/64 }"));
        assert!(!render(&rules(&["10.1.0.0/16"], false)).contains("add element inet weavice masq_v4"));
    }

    #[test]
    fn missing_state_is_named() {
        assert!(missing(LISTING, &rules(&["10.22.0.0/16"], true)).is_empty());
        assert!(missing(LISTING, &rules(&["10.23.0.0/24"], false)).is_empty());
        assert_eq!(missing(LISTING, &rules(&["10.23.0.0/24"], true)), ["10.23.0.0/24 in set masq_v4"]);
        let e = missing("table inet weavice {\n}\n", &rules(&["10.22.0.0/16"], true)).join(", ");
        assert!(e.contains("jump") && e.contains("masquerade rule"), "{e}");
    }
}
