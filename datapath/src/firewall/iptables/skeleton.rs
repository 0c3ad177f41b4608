//! What a network needs from each xtables tool: nat `WEAVICE-MASQ` (from
//! POSTROUTING) and `WEAVICE-HOSTPORTS` (from PREROUTING and OUTPUT for local
//! destinations), filter `WEAVICE-OUTPUT` (from OUTPUT, no ICMP redirects out
//! of routed bridges), ip6tables filter `WEAVICE-FORWARD` (no link-local
//! sources routed between pods), and for routed networks the bridge filter (see
//! nftables/isolation.rs for why): ebtables filter `WEAVICE-FORWARD` and
//! `WEAVICE-ROUTED` mark frames of routed ports and drop non-IP ones, mangle
//! `WEAVICE-FORWARD` marks DNATed ones, ebtables nat `WEAVICE-POSTROUTING`
//! drops what has the first mark without the second. Rules are written as
//! the save tools print them.

use super::rules::XtRule;
use super::tools::Tool;
use crate::firewall::NetworkRules;
use crate::link::veth::ROUTED_PREFIX;
use crate::marks;

pub const MASQ: &str = "WEAVICE-MASQ";
pub const HOSTPORTS: &str = "WEAVICE-HOSTPORTS";
const OUTPUT: &str = "WEAVICE-OUTPUT";
const FORWARD: &str = "WEAVICE-FORWARD";
const ROUTED: &str = "WEAVICE-ROUTED";
const POSTROUTING: &str = "WEAVICE-POSTROUTING";

/// One table's share: its chains (with the declaration line a restore file
/// gives a new one) and rules.
pub struct Table {
    pub name: &'static str,
    pub chains: Vec<(&'static str, String)>,
    pub rules: Vec<XtRule>,
}

fn ip_chain(name: &'static str) -> (&'static str, String) {
    (name, format!(":{name} - [0:0]"))
}

/// What the network needs from one tool.
pub fn skeleton(net: &NetworkRules, tool: Tool) -> Vec<Table> {
    if tool == Tool::Bridge {
        return if net.routed { bridge_filter() } else { Vec::new() };
    }
    let v4 = tool == Tool::V4;
    let nat_rule = |chain, args: &str| XtRule::new("nat", chain, args);
    let mut nat = vec![
        nat_rule("POSTROUTING", &format!("-j {MASQ}")),
        nat_rule("PREROUTING", &format!("-m addrtype --dst-type LOCAL -j {HOSTPORTS}")),
        nat_rule("OUTPUT", &format!("-m addrtype --dst-type LOCAL -j {HOSTPORTS}")),
    ];
    if v4 {
        nat.push(nat_rule(MASQ, "-s 127.0.0.0/8 -m conntrack --ctstate DNAT -j MASQUERADE"));
    }
    if net.masquerade {
        for r in net.ranges.iter().filter(|r| r.addr().is_ipv4() == v4) {
            nat.push(nat_rule(MASQ, &format!("-s {r} ! -d {r} -j MASQUERADE")));
        }
    }
    let mut filter = vec![XtRule::new("filter", "OUTPUT", &format!("-j {OUTPUT}"))];
    if net.routed {
        let icmp = if v4 { "-p icmp -m icmp --icmp-type 5" } else { "-p ipv6-icmp -m icmp6 --icmpv6-type 137" };
        filter.push(XtRule::new("filter", OUTPUT, &format!("-o {} {icmp} -j DROP", net.bridge)));
    }
    let mut filter_chains = vec![ip_chain(OUTPUT)];
    if net.routed && !v4 {
        // unspecified and link-local sources, allowed on the link, are not
        // routed between pods (nftables/antispoof.rs says why)
        filter_chains.push(ip_chain(FORWARD));
        filter.push(XtRule::new("filter", "FORWARD", &format!("-j {FORWARD}")));
        for src in ["fe80::/10", "::/128"] {
            filter.push(XtRule::new("filter", FORWARD, &format!("-s {src} -i {} -j DROP", net.bridge)));
        }
    }
    let mut tables = vec![
        Table { name: "nat", chains: vec![ip_chain(MASQ), ip_chain(HOSTPORTS)], rules: nat },
        Table { name: "filter", chains: filter_chains, rules: filter },
    ];
    if net.routed {
        // the node's DNATs that br_netfilter forwards port to port
        let dnat = marks::DNAT;
        let mark = format!("-i {} -m conntrack --ctstate DNAT -j MARK --set-xmark {dnat:#x}/{dnat:#x}", net.bridge);
        tables.push(Table {
            name: "mangle",
            chains: vec![ip_chain(FORWARD)],
            rules: vec![
                XtRule::new("mangle", "FORWARD", &format!("-j {FORWARD}")),
                XtRule::new("mangle", FORWARD, &mark),
            ],
        });
    }
    tables
}

/// Routed pods meet only through the node: a frame bridged from or to a
/// routed port is marked, non-IP ones dropped at once, and on its way out
/// dropped unless the node DNATed it.
fn bridge_filter() -> Vec<Table> {
    let bridged = marks::BRIDGED;
    let both = marks::BRIDGED | marks::DNAT;
    let mark = |proto| format!("-p {proto} -j mark --mark-or {bridged:#x} --mark-target RETURN");
    vec![
        Table {
            name: "filter",
            // a restore with --noflush ignores a new chain's policy: the drop is a rule
            chains: vec![(FORWARD, format!(":{FORWARD} RETURN")), (ROUTED, format!(":{ROUTED} RETURN"))],
            rules: vec![
                XtRule::new("filter", "FORWARD", &format!("-j {FORWARD}")),
                XtRule::new("filter", FORWARD, &format!("-i {ROUTED_PREFIX}+ -j {ROUTED}")),
                XtRule::new("filter", FORWARD, &format!("-o {ROUTED_PREFIX}+ -j {ROUTED}")),
                XtRule::new("filter", ROUTED, &mark("IPv4")),
                XtRule::new("filter", ROUTED, &mark("IPv6")),
                XtRule::new("filter", ROUTED, "-j DROP"),
            ],
        },
        Table {
            name: "nat",
            chains: vec![(POSTROUTING, format!(":{POSTROUTING} RETURN"))],
            rules: vec![
                XtRule::new("nat", "POSTROUTING", &format!("-j {POSTROUTING}")),
                XtRule::new("nat", POSTROUTING, &format!("--mark {bridged:#x}/{both:#x} -j DROP")),
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_networks_get_the_bridge_filter_as_the_saves_print_it() {
        let lines = |routed, tool| -> Vec<String> {
            skeleton(&NetworkRules::bare(routed), tool).into_iter().flat_map(|t| t.rules).map(|r| r.append()).collect()
        };
        let eb = lines(true, Tool::Bridge);
        let ipv4 = "-A WEAVICE-ROUTED -p IPv4 -j mark --mark-or 0x400000 --mark-target RETURN".to_string();
        let drop = "-A WEAVICE-ROUTED -j DROP".to_string();
        // IP frames are marked and return before the drop of everything else
        assert!(eb.iter().position(|l| *l == ipv4) < eb.iter().position(|l| *l == drop), "{eb:?}");
        assert!(eb.contains(&"-A WEAVICE-POSTROUTING --mark 0x400000/0x600000 -j DROP".to_string()), "{eb:?}");
        let mark = "-A WEAVICE-FORWARD -i wv0 -m conntrack --ctstate DNAT -j MARK --set-xmark 0x200000/0x200000";
        assert!(lines(true, Tool::V6).contains(&mark.to_string()));
        assert!(lines(false, Tool::Bridge).is_empty());
        assert!(!lines(false, Tool::V4).iter().any(|l| l.contains("MARK")));
    }
}
