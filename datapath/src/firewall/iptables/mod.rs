//! The iptables backend, for nodes without nftables or whose operators want
//! iptables (iptables-nft or iptables-legacy). The per-network skeleton
//! (skeleton.rs) is added rule by rule where missing, so it never flushes
//! anything; a pod's forwards are DNAT rules (forwards.rs), added and removed
//! in one batch per family. Anti-spoofing needs sets, which xtables have
//! not: its checks and a pod's identity are nf_tables' table `bridge weavice`
//! (nftables/antispoof.rs) under this backend too, when `nft` is installed.

pub mod cluster;
mod commit_watch;
mod forwards;
pub mod queue;
mod rules;
mod skeleton;
mod tools;

use super::nftables::{self, identity};
use super::{Firewall, NetworkRules, PodRules};
use crate::lingering::Lingering;
use crate::Result;
use rules::{Saved, XtRule};
use tools::Tool;

pub use tools::available;

pub struct Iptables;

/// The rules of `wanted` that `saved` lacks.
fn absent<'a>(saved: &Saved, wanted: &'a [XtRule]) -> Vec<&'a XtRule> {
    wanted.iter().filter(|r| !saved.has(r)).collect()
}

/// Whether a rule is one network's own: it names its bridge or a range.
fn own(rule: &XtRule, net: &NetworkRules) -> bool {
    rule.args.iter().any(|a| *a == net.bridge || net.ranges.iter().any(|r| r.to_string() == *a))
}

/// A restore file adding `lines` to `table`.
pub(crate) fn restore_input(table: &str, lines: &[String]) -> String {
    format!("*{table}\n{}\nCOMMIT\n", lines.join("\n"))
}

impl Firewall for Iptables {
    fn apply_network(&self, net: &NetworkRules, previous: Option<&NetworkRules>) -> Result<()> {
        for tool in tools::ALL {
            let tables = skeleton::skeleton(net, tool);
            let before = previous.map(|p| skeleton::skeleton(p, tool)).unwrap_or_default();
            if tables.is_empty() && before.is_empty() {
                continue;
            }
            let saved = tools::save(tool, None)?;
            let wanted: Vec<&XtRule> = tables.iter().flat_map(|t| &t.rules).collect();
            let mut input = String::new();
            // the previous config's rules this one has not (a widened range's
            // old rule): only the network's own, as the shared ones may serve others
            for t in &before {
                let stale: Vec<String> = t
                    .rules
                    .iter()
                    .filter(|r| previous.is_some_and(|p| own(r, p)) && !wanted.contains(r) && saved.has(r))
                    .map(XtRule::delete)
                    .collect();
                if !stale.is_empty() {
                    input += &restore_input(t.name, &stale);
                }
            }
            for t in &tables {
                let mut lines: Vec<String> = t
                    .chains
                    .iter()
                    .filter(|(chain, _)| !saved.has_chain(t.name, chain))
                    .map(|(_, declaration)| declaration.clone())
                    .collect();
                lines.extend(absent(&saved, &t.rules).into_iter().map(XtRule::append));
                if !lines.is_empty() {
                    input += &restore_input(t.name, &lines);
                }
            }
            if !input.is_empty() {
                tools::restore(tool, &input)?;
            }
        }
        if self.checks_identity() {
            identity::apply_checks()?;
        }
        Ok(())
    }

    fn missing_network(&self, net: &NetworkRules) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for tool in tools::ALL {
            let tables = skeleton::skeleton(net, tool);
            if tables.is_empty() {
                continue;
            }
            let saved = tools::save(tool, None)?;
            for t in &tables {
                missing.extend(
                    absent(&saved, &t.rules).into_iter().map(|r| format!("{} rule '{}'", tool.name(), r.append())),
                );
            }
        }
        if self.checks_identity() {
            missing.extend(identity::missing_checks()?);
        }
        Ok(missing)
    }

    fn add_pod(&self, f: &PodRules, fresh: bool) -> Result<()> {
        for (v4, rules) in forwards::rules_by_family(f) {
            if rules.is_empty() {
                continue;
            }
            // a new attachment's rules cannot be there yet: no save needed
            let new: Vec<String> = if fresh {
                rules.iter().map(XtRule::append).collect()
            } else {
                absent(&tools::save(Tool::ip(v4), Some("nat"))?, &rules).into_iter().map(XtRule::append).collect()
            };
            if !new.is_empty() {
                tools::restore(Tool::ip(v4), &restore_input("nat", &new))?;
            }
        }
        f.identity.as_ref().map_or(Ok(()), identity::add)
    }

    fn remove_pod(&self, f: &PodRules) -> Result<Lingering> {
        let mut lingering = Lingering::default();
        for (v4, rules) in forwards::rules_by_family(f) {
            if rules.is_empty() {
                continue;
            }
            let deletes: Vec<String> = rules.iter().map(XtRule::delete).collect();
            let tool = Tool::ip(v4);
            if tools::restore_until_commit(tool, &restore_input("nat", &deletes), &mut lingering).is_ok() {
                continue;
            }
            // a batch fails whole when one rule is missing: go one by one
            for d in deletes {
                let _ = tools::restore_until_commit(tool, &restore_input("nat", &[d]), &mut lingering);
            }
        }
        if let Some(id) = &f.identity {
            lingering.extend(identity::remove(id)?);
        }
        Ok(lingering)
    }

    fn remove_lost(&self, pod_ips: &[std::net::IpAddr], ports: &[String]) -> Result<Lingering> {
        let mut lingering = Lingering::default();
        if self.checks_identity() {
            lingering.extend(identity::remove_lost(ports)?);
        }
        for v4 in [true, false] {
            let ips: Vec<_> = pod_ips.iter().filter(|ip| ip.is_ipv4() == v4).collect();
            if ips.is_empty() {
                continue;
            }
            let tool = Tool::ip(v4);
            let found: Vec<String> = tools::save(tool, Some("nat"))?
                .rules()
                .filter(|r| ips.iter().any(|ip| forwards::concerns(r, **ip)))
                .map(XtRule::delete)
                .collect();
            if !found.is_empty() {
                tools::restore_until_commit(tool, &restore_input("nat", &found), &mut lingering)?;
            }
        }
        Ok(lingering)
    }

    fn missing_pod(&self, f: &PodRules) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        for (v4, rules) in forwards::rules_by_family(f) {
            if rules.is_empty() {
                continue;
            }
            let saved = tools::save(Tool::ip(v4), Some("nat"))?;
            missing.extend(absent(&saved, &rules).into_iter().map(|r| format!("rule '{}'", r.append())));
        }
        if let Some(id) = &f.identity {
            missing.extend(identity::missing_of(id)?);
        }
        Ok(missing)
    }

    /// Through nf_tables' bridge family, whose sets need the nft tool.
    fn checks_identity(&self) -> bool {
        nftables::available()
    }

    fn port_with_mac(&self, mac: &[u8; 6]) -> Result<Option<String>> {
        if !self.checks_identity() {
            return Ok(None);
        }
        nftables::antispoof::port_with_mac(mac)
    }
}
