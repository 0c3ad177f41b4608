//! Routed pods reach each other only through the node.
//!
//! Port isolation cannot do it once br_netfilter runs bridged traffic through
//! the IP hooks (`bridge-nf-call-iptables=1`, the default once the module is
//! loaded, so on every kube-proxy node): the node's DNAT from one pod to
//! another on the same bridge (a hostPort, a hairpin, a Service) is then
//! forwarded port to port, which isolation drops. So routed ports are not
//! isolated and a bridge filter drops what crosses from or to one of them at
//! L2, except frames the node DNATed, which carry [`DNAT_MARK`]. Routed host
//! veths are named `wv…` (bridged ones `wb…`): this kernel's nftables cannot
//! match the bridge.
//!
//! This file is the nftables rendering: a prerouting rule after DNAT marks,
//! the bridge forward hook drops. iptables has no table after DNAT in
//! prerouting and ebtables' forward chain runs before iptables' (which sees
//! the DNAT), so iptables.rs splits the check: ebtables forward marks frames
//! of routed ports with [`BRIDGED_MARK`] (and drops non-IP ones), mangle
//! forward adds [`DNAT_MARK`] to DNATed ones, ebtables postrouting drops what
//! has the first bit without the second.

use super::redirect::SET as ROUTED_BRIDGES;
use super::{NetworkRules, TABLE};
use crate::link::veth::ROUTED_PREFIX;

pub const BRIDGE_TABLE: &str = "bridge weavice";
/// The packet mark bit for "DNATed by the node": ORed in, never cleared, so
/// other users' mark bits survive.
pub const DNAT_MARK: u32 = 0x0020_0000;
/// The packet mark bit for "bridged from or to a routed port" (iptables backend).
pub const BRIDGED_MARK: u32 = 0x0040_0000;
const MARK_CHAIN: &str = "dnat_mark";

pub fn render() -> String {
    let mut s = format!(
        "add chain {TABLE} {MARK_CHAIN} {{ type filter hook prerouting priority dstnat + 10; policy accept; }}\n"
    );
    s += &format!("flush chain {TABLE} {MARK_CHAIN}\n");
    s += &format!("add rule {TABLE} {MARK_CHAIN} iifname @{ROUTED_BRIDGES} ct status dnat meta mark set meta mark | {DNAT_MARK:#x}\n");
    s += &format!("add table {BRIDGE_TABLE}\n");
    s += &format!("add chain {BRIDGE_TABLE} forward {{ type filter hook forward priority filter; policy accept; }}\n");
    s += &format!("flush chain {BRIDGE_TABLE} forward\n");
    s += &format!("add rule {BRIDGE_TABLE} forward meta mark & {DNAT_MARK:#x} == {DNAT_MARK:#x} accept\n");
    s += &format!("add rule {BRIDGE_TABLE} forward iifname \"{ROUTED_PREFIX}*\" drop\n");
    s += &format!("add rule {BRIDGE_TABLE} forward oifname \"{ROUTED_PREFIX}*\" drop\n");
    s
}

/// What the listings of the inet and bridge tables lack for a routed network.
pub fn missing(inet: &str, bridge: &str, rules: &NetworkRules) -> Vec<String> {
    let mut missing = Vec::new();
    if !rules.routed {
        return missing;
    }
    let mark = format!("meta mark set meta mark | {DNAT_MARK:#010x}");
    if !inet.lines().any(|l| l.contains("ct status dnat") && l.contains(&mark)) {
        missing.push(format!("the DNAT mark rule in chain {MARK_CHAIN}"));
    }
    for dir in ["iifname", "oifname"] {
        if !bridge.contains(&format!("{dir} \"{ROUTED_PREFIX}*\" drop")) {
            missing.push(format!("the {dir} drop rule for routed ports in table {BRIDGE_TABLE}"));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_mark_and_the_bridge_filter() {
        let s = render();
        assert!(s.contains("ct status dnat meta mark set meta mark | 0x200000"), "{s}");
        assert!(s.contains("add rule bridge weavice forward iifname \"wv*\" drop"), "{s}");
        // the accept for marked frames comes before the drops
        assert!(s.find("== 0x200000 accept").unwrap() < s.find("drop").unwrap(), "{s}");
    }

    #[test]
    fn missing_state_is_named() {
        let inet = "\t\tiifname @routed_bridges ct status dnat meta mark set meta mark | 0x00200000\n";
        let bridge =
            "\t\tmeta mark & 0x00200000 == 0x00200000 accept\n\t\tiifname \"wv*\" drop\n\t\toifname \"wv*\" drop\n";
        assert!(missing(inet, bridge, &NetworkRules::bare(true)).is_empty());
        assert_eq!(missing("", "", &NetworkRules::bare(true)).len(), 3);
        assert!(missing("", "", &NetworkRules::bare(false)).is_empty());
    }
}
