//! The nftables backend: table `inet weavice` (and `bridge weavice` for
//! routed networks).
//!
//! A network's skeleton goes in as two `nft` transactions, once per network
//! (never per pod): its objects (sets, maps, chains, the network's set
//! elements) as an nft script, then its rules as nft JSON, each chain
//! flushed and rewritten. Rules are JSON because CHECK compares them as data
//! with what `nft -j list` prints; the objects are a script because nft
//! 1.0.6 cannot read a map with concatenated data from JSON. A pod's port
//! forwards are map elements written over netlink (elements.rs): no process
//! on the ADD path.

pub mod antispoof;
mod element;
mod elements;
mod expr;
pub mod hostports;
pub mod isolation;
mod listing;
pub mod masquerade;
pub mod redirect;
pub mod steering;
mod tool;

use super::{Firewall, NetworkRules, PodRules};
use crate::lingering::Lingering;
use crate::Result;
use serde_json::{json, Value};

pub use tool::available;

/// An nftables table of weavice's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub family: &'static str,
    pub name: &'static str,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

pub const INET: Table = Table { family: "inet", name: "weavice" };
pub const BRIDGE: Table = Table { family: "bridge", name: "weavice" };

/// A rule of weavice's: where it lives, its expressions as `nft -j` prints
/// them, and how CHECK names it when it is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub table: Table,
    pub chain: &'static str,
    pub expr: Vec<Value>,
    pub name: String,
}

/// An element a network puts in a set: as an nft script writes it, and as
/// `nft -j` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Elem {
    pub set: String,
    pub text: String,
    pub json: Value,
}

/// The suffix of a per-family set or map (`pod_v4`, `hostport_v6`).
fn family(ip: &std::net::IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "v4"
    } else {
        "v6"
    }
}

/// One concern's share of a network's state.
#[derive(Debug, Default)]
pub struct Skeleton {
    /// nft script: sets, maps and chains (idempotent adds) and `elements`.
    pub objects: String,
    pub rules: Vec<Rule>,
    pub elements: Vec<Elem>,
}

impl Skeleton {
    fn extend(&mut self, other: Skeleton) {
        self.objects += &other.objects;
        self.rules.extend(other.rules);
        self.elements.extend(other.elements);
    }
}

/// Everything a network needs, in the order the rules go in.
pub fn skeleton(net: &NetworkRules) -> Skeleton {
    let mut s = Skeleton { objects: format!("add table {INET}\n"), ..Default::default() };
    s.extend(masquerade::skeleton(net));
    s.extend(hostports::skeleton());
    s.extend(redirect::skeleton(net));
    if net.routed {
        s.extend(isolation::skeleton());
    }
    s.extend(antispoof::skeleton());
    s
}

/// The objects transaction: sets, maps and chains, then the elements
/// `stale` lists removed (before the adds: an interval set refuses a widened
/// range that overlaps the old one), then the skeleton's elements.
fn objects_script(s: &Skeleton, stale: &[Elem]) -> String {
    let mut script = s.objects.clone();
    for e in stale {
        script += &format!("delete element {INET} {} {{ {} }}\n", e.set, e.text);
    }
    for e in &s.elements {
        script += &format!("add element {INET} {} {{ {} }}\n", e.set, e.text);
    }
    script
}

/// One transaction: every chain of `rules` flushed, then the rules added.
fn rules_batch(rules: &[Rule]) -> Value {
    let mut chains: Vec<(Table, &str)> = Vec::new();
    for r in rules {
        if !chains.contains(&(r.table, r.chain)) {
            chains.push((r.table, r.chain));
        }
    }
    let flushes =
        chains.iter().map(|(t, c)| json!({"flush": {"chain": {"family": t.family, "table": t.name, "name": c}}}));
    let adds = rules.iter().map(|r| {
        json!({"add": {"rule": {"family": r.table.family, "table": r.table.name, "chain": r.chain, "expr": r.expr}}})
    });
    json!({"nftables": flushes.chain(adds).collect::<Vec<_>>()})
}

/// What the listings lack of `skeleton`, named.
fn missing(s: &Skeleton, inet: &listing::Listing, bridge: &listing::Listing) -> Vec<String> {
    let mut missing: Vec<String> = s
        .rules
        .iter()
        .filter(|r| !(if r.table == BRIDGE { bridge } else { inet }).has_rule(r.chain, &r.expr))
        .map(|r| r.name.clone())
        .collect();
    missing.extend(
        s.elements
            .iter()
            .filter(|e| !inet.has_element(&e.set, &e.json))
            .map(|e| format!("{} in set {}", e.text, e.set)),
    );
    missing
}

/// Anti-spoofing's bridge checks alone (table `bridge weavice`): the
/// iptables backend's identities live there too.
pub mod identity {
    use super::*;
    use crate::firewall::PodIdentity;

    pub fn apply_checks() -> Result<()> {
        let s = antispoof::bridge_skeleton();
        tool::apply_script(&objects_script(&s, &[]))?;
        tool::apply_json(&rules_batch(&s.rules))
    }

    pub fn missing_checks() -> Result<Vec<String>> {
        Ok(super::missing(&antispoof::bridge_skeleton(), &listing::Listing::default(), &tool::list(BRIDGE)?))
    }

    pub fn add(id: &PodIdentity) -> Result<()> {
        elements::add(&antispoof::elements(id))
    }

    pub fn remove(id: &PodIdentity) -> Result<Lingering> {
        elements::remove(&antispoof::elements(id))
    }

    /// The identities of bridge ports `ports`, found in the sets.
    pub fn remove_lost(ports: &[String]) -> Result<Lingering> {
        elements::remove_lost(&[], ports)
    }

    pub fn missing_of(id: &PodIdentity) -> Result<Vec<String>> {
        let bridge = tool::list(BRIDGE)?;
        Ok(antispoof::elements(id)
            .iter()
            .filter(|e| !bridge.has_element(&e.set, &e.json()))
            .map(|e| format!("{} in {}", e.describe_key(), e.set))
            .collect())
    }
}

pub struct Nftables;

impl Firewall for Nftables {
    fn apply_network(&self, net: &NetworkRules, previous: Option<&NetworkRules>) -> Result<()> {
        let s = skeleton(net);
        let stale = match previous {
            Some(p) => {
                let inet = tool::list(INET)?;
                let gone = |e: &Elem| !s.elements.contains(e) && inet.has_element(&e.set, &e.json);
                skeleton(p).elements.into_iter().filter(gone).collect()
            }
            None => Vec::new(),
        };
        tool::apply_script(&objects_script(&s, &stale))?;
        tool::apply_json(&rules_batch(&s.rules))
    }

    fn missing_network(&self, net: &NetworkRules) -> Result<Vec<String>> {
        Ok(missing(&skeleton(net), &tool::list(INET)?, &tool::list(BRIDGE)?))
    }

    fn add_pod(&self, r: &PodRules, _fresh: bool) -> Result<()> {
        // no NLM_F_EXCL: an identical element already there (a repeated ADD,
        // a repair) is fine, so nothing needs looking up first
        elements::add(&pod_elements(r))
    }

    fn remove_pod(&self, r: &PodRules) -> Result<Lingering> {
        elements::remove(&pod_elements(r))
    }

    fn remove_lost(&self, pod_ips: &[std::net::IpAddr], ports: &[String]) -> Result<Lingering> {
        elements::remove_lost(pod_ips, ports)
    }

    fn missing_pod(&self, r: &PodRules) -> Result<Vec<String>> {
        let (inet, bridge) = (tool::list(INET)?, tool::list(BRIDGE)?);
        Ok(pod_elements(r)
            .iter()
            .filter(|e| !(if e.table == BRIDGE { &bridge } else { &inet }).has_element(&e.set, &e.json()))
            .map(|e| format!("{} in {}", e.describe_key(), e.set))
            .collect())
    }

    fn checks_identity(&self) -> bool {
        true
    }

    fn port_with_mac(&self, mac: &[u8; 6]) -> Result<Option<String>> {
        antispoof::port_with_mac(mac)
    }
}

/// A pod's elements: its forwards, then its identity.
fn pod_elements(r: &PodRules) -> Vec<element::Element> {
    let mut out = hostports::elements(r);
    out.extend(r.identity.iter().flat_map(antispoof::elements));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::pod::tests::sample;

    /// `nft -s -j list ruleset` (nft 1.0.6) after one dual-stack pod with two
    /// port mappings on network 10.22.0.0/24 + fd22::/64, ipMasq, routed,
    /// anti-spoofing on (its veth wvfc8a77fab9d7, MAC 02:37:0e:10:8f:8f).
    const LISTING: &str = include_str!("testdata/listing.json");

    fn net() -> NetworkRules {
        NetworkRules {
            ranges: vec!["10.22.0.0/24".parse().unwrap(), "fd22::/64".parse().unwrap()],
            masquerade: true,
            bridge: "wv0".into(),
            routed: true,
        }
    }

    #[test]
    fn the_rules_weavice_writes_are_the_rules_nft_lists() {
        let inet = listing::Listing::parse(LISTING, INET).unwrap();
        let bridge = listing::Listing::parse(LISTING, BRIDGE).unwrap();
        assert_eq!(missing(&skeleton(&net()), &inet, &bridge), Vec::<String>::new());
        let empty = listing::Listing::default();
        let all = missing(&skeleton(&net()), &empty, &empty).join(", ");
        for name in [
            "masquerade rule",
            "drop rule for routed ports",
            "DNAT mark rule",
            "10.22.0.0/24 in set masq_v4",
            "neighbour advertisement target check",
        ] {
            assert!(all.contains(name), "{all}");
        }
    }

    #[test]
    fn the_elements_weavice_writes_are_the_elements_nft_lists() {
        let inet = listing::Listing::parse(LISTING, INET).unwrap();
        // the listed pod holds 10.22.0.2 and fd22::2; sample() has other addresses
        let listed: Vec<_> =
            hostports::elements(&sample()).iter().map(|e| inet.has_element(&e.set, &e.json())).collect();
        assert!(listed.iter().all(|l| !l), "{listed:?}");
        let mut f = sample();
        for fw in &mut f.forwards {
            fw.pod_ip = if fw.pod_ip.is_ipv4() { "10.22.0.2".parse().unwrap() } else { "fd22::2".parse().unwrap() };
        }
        f.hairpin = vec!["10.22.0.2".parse().unwrap(), "fd22::2".parse().unwrap()];
        for e in hostports::elements(&f) {
            assert!(inet.has_element(&e.set, &e.json()), "{e:?}");
        }
        let bridge = listing::Listing::parse(LISTING, BRIDGE).unwrap();
        let id = crate::firewall::PodIdentity {
            port: "wvfc8a77fab9d7".into(),
            mac: [0x02, 0x37, 0x0e, 0x10, 0x8f, 0x8f],
            ips: f.hairpin.clone(),
        };
        for e in antispoof::elements(&id) {
            assert!(bridge.has_element(&e.set, &e.json()), "{e:?}");
        }
    }

    #[test]
    fn a_batch_flushes_each_chain_once_before_adding() {
        let b = rules_batch(&skeleton(&net()).rules);
        let cmds = b["nftables"].as_array().unwrap();
        let flushes = cmds.iter().take_while(|c| c.get("flush").is_some()).count();
        assert_eq!(
            flushes, 12,
            "postrouting, WEAVICE-MASQ, prerouting, nat_output, WEAVICE-HOSTPORTS, output, dnat_mark, bridge \
             forward, bridge prerouting and input, antispoof, inet forward"
        );
        assert!(cmds[flushes..].iter().all(|c| c.get("add").is_some()));
    }
}
