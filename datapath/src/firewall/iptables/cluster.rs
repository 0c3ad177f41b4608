//! The masquerade's exceptions under the iptables backend: traffic to the
//! other nodes' pod ranges keeps the pod's address. xtables have no sets, so
//! each range is a `-d RANGE -j RETURN` at the head of `WEAVICE-MASQ`, ahead
//! of its MASQUERADE rules. The node's own ranges are not among them: the
//! hairpin and 127.0.0.1 masquerades to its own pods come later in the chain. The node daemon alone writes these: it inserts
//! and deletes rules (any `-d RANGE -j RETURN` in the chain is taken for
//! its own) but never declares the chain (a restore that declares
//! an existing chain flushes it, racing the plugin's skeleton), so a node
//! without the chain yet gets them once the plugin has made it.

use super::restore_input;
use super::rules::{Saved, XtRule};
use super::skeleton::MASQ;
use super::tools::{self, Tool};
use crate::{DatapathError, Result};
use ipnet::IpNet;

fn exception(range: &IpNet) -> XtRule {
    XtRule::new("nat", MASQ, &format!("-d {range} -j RETURN"))
}

fn is_exception(rule: &XtRule) -> bool {
    rule.table == "nat"
        && rule.chain == MASQ
        && rule.args.len() == 4
        && rule.args[0] == "-d"
        && rule.args[2..] == ["-j", "RETURN"]
}

/// The restore lines that make `WEAVICE-MASQ` begin with exactly `ranges`'
/// exceptions, in order; none when it does or when the chain is not there.
fn plan(saved: &Saved, ranges: &[IpNet]) -> Vec<String> {
    if !saved.has_chain("nat", MASQ) {
        return Vec::new();
    }
    let chain: Vec<&XtRule> = saved.rules().filter(|r| r.table == "nat" && r.chain == MASQ).collect();
    let wanted: Vec<XtRule> = ranges.iter().map(exception).collect();
    let head: Vec<&XtRule> = chain.iter().take(wanted.len()).copied().collect();
    let extra = chain.iter().skip(wanted.len()).any(|r| is_exception(r));
    if head.len() == wanted.len() && head.iter().zip(&wanted).all(|(h, w)| *h == w) && !extra {
        return Vec::new();
    }
    let mut lines: Vec<String> = chain.iter().filter(|r| is_exception(r)).map(|r| r.delete()).collect();
    lines.extend(wanted.iter().enumerate().map(|(i, r)| format!("-I {MASQ} {} {}", i + 1, r.args.join(" "))));
    lines
}

/// Makes each family's `WEAVICE-MASQ` skip `others`, the other nodes' pod
/// ranges (adjacent ones merged), in whichever flavour (nft, legacy) holds
/// the chain. One restore per family and flavour.
pub fn set_cluster_ranges(others: &[IpNet]) -> Result<()> {
    let mut failed = Vec::new();
    for v4 in [true, false] {
        let family: Vec<IpNet> = others.iter().filter(|r| r.addr().is_ipv4() == v4).map(IpNet::trunc).collect();
        let family = IpNet::aggregate(&family);
        // each family and flavour on its own: one failing keeps no other out
        for flavour in tools::flavours(Tool::ip(v4)).into_iter().filter(|f| f.has_table("nat")) {
            let lines = match flavour.save(Some("nat")) {
                Ok(saved) => plan(&saved, &family),
                Err(e) => {
                    failed.push(e.to_string());
                    continue;
                }
            };
            if lines.is_empty() {
                continue;
            }
            match flavour.restore(&restore_input("nat", &lines)) {
                Ok(()) => log::info!("masquerade exceptions ({}): {}", flavour.name(), lines.join(", ")),
                Err(e) => failed.push(e.to_string()),
            }
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(DatapathError::Firewall(failed.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(rules: &[&str]) -> Saved {
        let body: Vec<String> = rules.iter().map(|r| format!("-A {MASQ} {r}")).collect();
        Saved::parse(&format!("*nat\n:POSTROUTING ACCEPT [0:0]\n:{MASQ} - [0:0]\n{}\nCOMMIT\n", body.join("\n")))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const MASQUERADE: &str = "-s 10.31.1.0/24 ! -d 10.31.1.0/24 -j MASQUERADE";

    #[test]
    fn exceptions_go_ahead_of_the_masquerade_and_stale_ones_go() {
        let p = plan(&saved(&[MASQUERADE]), &nets(&["10.31.1.0/24", "10.31.2.0/23"]));
        assert_eq!(
            p,
            [format!("-I {MASQ} 1 -d 10.31.1.0/24 -j RETURN"), format!("-I {MASQ} 2 -d 10.31.2.0/23 -j RETURN")]
        );
        let done = saved(&["-d 10.31.1.0/24 -j RETURN", "-d 10.31.2.0/23 -j RETURN", MASQUERADE]);
        assert!(plan(&done, &nets(&["10.31.1.0/24", "10.31.2.0/23"])).is_empty());
        assert_eq!(
            plan(&done, &nets(&["10.31.1.0/24"])),
            [
                format!("-D {MASQ} -d 10.31.1.0/24 -j RETURN"),
                format!("-D {MASQ} -d 10.31.2.0/23 -j RETURN"),
                format!("-I {MASQ} 1 -d 10.31.1.0/24 -j RETURN")
            ]
        );
    }

    #[test]
    fn an_exception_behind_the_masquerade_is_moved_and_a_missing_chain_is_left_alone() {
        let behind = saved(&[MASQUERADE, "-d 10.31.2.0/24 -j RETURN"]);
        assert_eq!(
            plan(&behind, &nets(&["10.31.2.0/24"])),
            [format!("-D {MASQ} -d 10.31.2.0/24 -j RETURN"), format!("-I {MASQ} 1 -d 10.31.2.0/24 -j RETURN")]
        );
        assert!(plan(&Saved::parse("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"), &nets(&["10.31.2.0/24"])).is_empty());
        // no ranges: the old exceptions go
        assert_eq!(plan(&behind, &[]), [format!("-D {MASQ} -d 10.31.2.0/24 -j RETURN")]);
    }
}
