//! MASQUERADE for traffic that leaves the pod ranges, as nft commands.
//!
//! Sets `pod_v4`/`pod_v6` hold every network's ranges (never masqueraded as
//! destinations); `masq_v4`/`masq_v6` the ranges of networks with ipMasq.

use super::NetworkRules;
use ipnet::IpNet;

pub const TABLE: &str = "inet weavice";
pub const CHAIN: &str = "WEAVICE-MASQ";

fn family(net: &IpNet) -> &'static str {
    if net.addr().is_ipv4() {
        "v4"
    } else {
        "v6"
    }
}

/// One transaction: the skeleton (idempotent adds, rules rewritten by flush)
/// plus this network's set elements.
pub fn render(rules: &NetworkRules) -> String {
    let mut s = format!("add table {TABLE}\n");
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

/// Checks an `nft list table inet weavice` listing; says what is missing.
pub fn check(listing: &str, rules: &NetworkRules) -> Result<(), String> {
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
    if rules.masquerade
        && !listing.lines().any(|l| l.trim_start().starts_with("ip saddr @masq_v4") && l.contains("masquerade"))
    {
        missing.push("the masquerade rule".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("firewall state missing in table {TABLE}: {}", missing.join(", ")))
    }
}

/// Elements of one set in nft's text listing.
fn set_elements(listing: &str, set: &str) -> Vec<String> {
    let Some(start) = listing.find(&format!("set {set} {{")) else {
        return vec![];
    };
    let body = &listing[start..];
    let body = &body[..body.find("\n\t}").unwrap_or(body.len())];
    let Some(el) = body.find("elements = {") else {
        return vec![];
    };
    let rest = &body[el + "elements = {".len()..];
    let rest = &rest[..rest.find('}').unwrap_or(rest.len())];
    rest.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()).map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "table inet weavice {\n\tset pod_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.22.0.0/16, 10.23.0.0/24 }\n\t}\n\tset masq_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.22.0.0/16 }\n\t}\n\tchain postrouting {\n\t\tjump WEAVICE-MASQ\n\t}\n\tchain WEAVICE-MASQ {\n\t\tip saddr @masq_v4 ip daddr != @pod_v4 masquerade\n\t}\n}\n";

    fn rules(r: &str, masquerade: bool) -> NetworkRules {
        NetworkRules { ranges: vec![r.parse().unwrap()], masquerade }
    }

    #[test]
    fn render_adds_elements_per_family() {
        let s = render(&NetworkRules {
            ranges: vec!["10.1.0.0/16".parse().unwrap(), "fd01::/64".parse().unwrap()],
            masquerade: true,
        });
        assert!(s.contains("add element inet weavice masq_v4 { 10.1.0.0/16 }"));
        assert!(s.contains("add element inet weavice pod_v6 { fd01::/64 }"));
        assert!(!render(&rules("10.1.0.0/16", false)).contains("add element inet weavice masq_v4"));
    }

    #[test]
    fn check_finds_present_and_missing_state() {
        assert_eq!(check(LISTING, &rules("10.22.0.0/16", true)), Ok(()));
        assert_eq!(check(LISTING, &rules("10.23.0.0/24", false)), Ok(()));
        let e = check(LISTING, &rules("10.23.0.0/24", true)).unwrap_err();
        assert!(e.contains("10.23.0.0/24 in set masq_v4"), "{e}");
        let e = check("table inet weavice {\n}\n", &rules("10.22.0.0/16", true)).unwrap_err();
        assert!(e.contains("jump") && e.contains("masquerade rule"), "{e}");
    }
}
