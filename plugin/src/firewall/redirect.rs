//! No ICMP redirects out of routed bridges. In routed mode pod-to-pod traffic
//! leaves the bridge it came in on, so the node would tell a pod its peer is
//! on-link, which it cannot reach at L2 (firewall/isolation.rs). IPv4 pods would act on it
//! (a host's accept_redirects is ORed with the namespace-wide `all`), and the
//! node's `send_redirects` is ORed with `all` too, so a per-interface sysctl
//! cannot stop it. One rule per family, one set element per network.

use super::{set_elements, NetworkRules, TABLE};

pub const CHAIN: &str = "output";
pub const SET: &str = "routed_bridges";

pub fn render(rules: &NetworkRules) -> String {
    let mut s = format!("add set {TABLE} {SET} {{ type ifname; }}\n");
    s += &format!("add chain {TABLE} {CHAIN} {{ type filter hook output priority filter; policy accept; }}\n");
    s += &format!("flush chain {TABLE} {CHAIN}\n");
    s += &format!("add rule {TABLE} {CHAIN} oifname @{SET} icmp type redirect drop\n");
    s += &format!("add rule {TABLE} {CHAIN} oifname @{SET} icmpv6 type nd-redirect drop\n");
    if rules.routed {
        s += &format!("add element {TABLE} {SET} {{ \"{}\" }}\n", rules.bridge);
    }
    s
}

pub fn missing(listing: &str, rules: &NetworkRules) -> Vec<String> {
    let mut missing = Vec::new();
    if !rules.routed {
        return missing;
    }
    if !set_elements(listing, SET).iter().any(|e| e.trim_matches('"') == rules.bridge) {
        missing.push(format!("bridge {} in set {SET}", rules.bridge));
    }
    for (what, needle) in [("IPv4", "icmp type redirect drop"), ("IPv6", "icmpv6 type nd-redirect drop")] {
        if !listing.contains(needle) {
            missing.push(format!("the {what} redirect drop rule"));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_networks_add_their_bridge() {
        assert!(render(&NetworkRules::bare(true)).contains("add element inet weavice routed_bridges { \"wv0\" }"));
        assert!(!render(&NetworkRules::bare(false)).contains("add element"));
    }

    #[test]
    fn missing_state_is_named() {
        let listing = "\tset routed_bridges {\n\t\ttype ifname\n\t\telements = { \"wv0\" }\n\t}\n\tchain output {\n\t\toifname @routed_bridges icmp type redirect drop\n\t\toifname @routed_bridges icmpv6 type nd-redirect drop\n\t}\n";
        assert!(missing(listing, &NetworkRules::bare(true)).is_empty());
        assert!(missing("", &NetworkRules::bare(false)).is_empty());
        assert_eq!(missing("", &NetworkRules::bare(true)).len(), 3);
    }
}
