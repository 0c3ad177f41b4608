//! Security-function chains in nftables: which connections a chain takes,
//! and the marks that carry its decisions to the ip rules (chains/hops.rs).
//!
//! Table `inet weavice`:
//! - chain `steer` (prerouting, after DNAT, so the classifier sees a
//!   Service's endpoint pod): a connection from a `from` pod to a `to` pod
//!   (and port) gets its chain's number in the conntrack mark, on its first
//!   packet after the chain is applied; every packet of it then gets the
//!   number and its direction in the packet mark (the mark is cleared each
//!   time a packet crosses into a function's namespace and back);
//! - chain `steer_notrack` (raw): a packet coming back from a route
//!   function is not tracked again. Conntrack saw it on its first pass,
//!   where its DNAT was done, and a second entry for the same packet would
//!   clash with the first; its direction is read from its destination
//!   instead (the `from` side: reply).
//! - sets `c<N>_from_v4`, `c<N>_to_v6`, ...: the pods each side matches now,
//!   one element per address, added and removed by the plugin at ADD and
//!   DEL; `c<N>_ports`: the chain's ports.
//!
//! Table `bridge weavice`, chain `steer` (prerouting, after anti-spoofing):
//! a packet a route function forwards (one whose source is not the
//! function's own address) gets the function's chain and position in its
//! mark, from map `steer_hops`, keyed by the function's bridge port.
//! `steer_ports` lists those ports: anti-spoofing lets them send with the
//! endpoints' addresses.
//!
//! - chain `steer_count`: a counter per function, for `chain list`.
//!
//! Tables `ip weavice` and `ip6 weavice`, chain `mirror` (forward): a
//! mirror function gets a copy (`dup`) of each packet of its chain, in both
//! directions, on the pass through the node where it sits in the chain.
//!
//! Rules are per chain, never per pod: pods only change set elements.

use super::antispoof::STEER_PORTS;
use super::element::{Element, Field};
use super::{elements, tool, BRIDGE, INET};
use crate::chains::store::Applied;
use crate::lingering::Lingering;
use crate::marks::ChainMarks;
use crate::Result;
use conf::chain::{Mode, PortMatch, Selector};
use std::net::IpAddr;

const HOPS: &str = "steer_hops";
const OWN_V4: &str = "steer_own_v4";
const OWN_V6: &str = "steer_own_v6";
const CHAIN: &str = "steer";
const NOTRACK: &str = "steer_notrack";
/// Counts each function's packets (`chain list`).
const COUNT: &str = "steer_count";
/// Chain `mirror` of tables `ip weavice` and `ip6 weavice`.
const MIRROR: &str = "mirror";

/// A pod's part in one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub chain: u16,
    pub from: bool,
    pub to: bool,
    /// Its position among the chain's route functions (1-based), if it is one.
    pub hop: Option<u8>,
    /// The node's mark layout.
    pub marks: ChainMarks,
}

/// A pod as the chains' elements name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPort {
    /// The host side of its veth.
    pub port: String,
    pub ips: Vec<IpAddr>,
}

fn side_set(id: u16, side: &str, ip: &IpAddr) -> String {
    format!("c{id}_{side}_{}", super::family(ip))
}

fn address_sets(id: u16) -> Vec<String> {
    let mut out = Vec::new();
    for side in ["from", "to"] {
        for fam in ["v4", "v6"] {
            out.push(format!("c{id}_{side}_{fam}"));
        }
    }
    out
}

fn ports_set(id: u16) -> String {
    format!("c{id}_ports")
}

/// The elements of `pod` for its memberships.
fn pod_elements(pod: &PodPort, members: &[Member]) -> Vec<Element> {
    let element = |table, set: &str, key, data| Element { table, set: set.into(), key, data };
    let mut out = Vec::new();
    for m in members {
        for ip in &pod.ips {
            for (side, yes) in [("from", m.from), ("to", m.to)] {
                if yes {
                    out.push(element(INET, &side_set(m.chain, side, ip), vec![Field::Addr(*ip)], None));
                }
            }
        }
        if let Some(hop) = m.hop {
            let port = || Field::IfName(pod.port.clone());
            let mark = m.marks.chain(m.chain) | m.marks.hop(hop);
            out.push(element(BRIDGE, HOPS, vec![port()], Some(vec![Field::Mark(mark)])));
            out.push(element(BRIDGE, STEER_PORTS, vec![port()], None));
            for ip in &pod.ips {
                let own = if ip.is_ipv4() { OWN_V4 } else { OWN_V6 };
                out.push(element(BRIDGE, own, vec![port(), Field::Addr(*ip)], None));
            }
        }
    }
    out
}

/// Adds a pod's elements (one transaction).
pub fn add_pod(pod: &PodPort, members: &[Member]) -> Result<()> {
    elements::add(&pod_elements(pod, members))
}

/// Removes them, hop map elements by their key (whatever position they
/// hold); ones already gone are not an error.
pub fn remove_pod(pod: &PodPort, members: &[Member]) -> Result<Lingering> {
    let mut keys: Vec<Element> = Vec::new();
    for mut e in pod_elements(pod, members) {
        e.data = None;
        // a port's hop elements come once per chain: delete them once
        if !keys.contains(&e) {
            keys.push(e);
        }
    }
    elements::remove(&keys)
}

/// Removes the hop of a function's pod (its map element, its exemption and
/// its own addresses), whatever chain and position it had.
pub fn remove_hop(pod: &PodPort) -> Result<Lingering> {
    remove_pod(pod, &[Member { chain: 0, from: false, to: false, hop: Some(1), marks: ChainMarks::DEFAULT }])
}

/// What of them is missing, named (CHECK).
pub fn missing_pod(pod: &PodPort, members: &[Member]) -> Result<Vec<String>> {
    let (inet, bridge) = (tool::list(INET)?, tool::list(BRIDGE)?);
    Ok(pod_elements(pod, members)
        .iter()
        .filter(|e| !(if e.table == BRIDGE { &bridge } else { &inet }).has_element(&e.set, &e.json()))
        .map(|e| format!("{} in {} (security-function chain steering)", e.describe_key(), e.set))
        .collect())
}

/// `ip saddr @set` or `ip saddr 10.0.0.0/8`, for a side of a chain in one
/// family; None when a range side has no range of that family.
fn side_match(id: u16, side: &str, sel: &Selector, v4: bool, dir: &str) -> Option<String> {
    let proto = if v4 { "ip" } else { "ip6" };
    match &sel.cidr {
        Some(net) if net.addr().is_ipv4() == v4 => Some(format!("{proto} {dir} {net}")),
        Some(_) => None,
        None => Some(format!("{proto} {dir} @c{id}_{side}_{}", if v4 { "v4" } else { "v6" })),
    }
}

/// One chain's rules in `inet weavice steer`, as script lines.
fn chain_rules(a: &Applied) -> Vec<String> {
    let (id, spec) = (a.id, &a.chain.spec);
    let m = a.marks;
    let (mark, all, hop_mask, id_mask, reply) = (m.chain(id), m.mask, m.hop_mask(), m.id_mask(), m.reply());
    let mut out = Vec::new();
    let ports = |dir: &str| {
        if spec.ports.is_empty() {
            String::new()
        } else {
            format!(" meta l4proto . th {dir} @{}", ports_set(id))
        }
    };
    let unclassified = format!("meta mark & {hop_mask:#x} == 0 ct mark & {id_mask:#x} == 0");
    let classify = format!("ct mark set ct mark & {:#x} | {mark:#x}", !id_mask);
    for v4 in [true, false] {
        let side = |side, sel, dir| side_match(id, side, sel, v4, dir);
        if let (Some(fs), Some(td), Some(ts), Some(fd)) = (
            side("from", &spec.from, "saddr"),
            side("to", &spec.to, "daddr"),
            side("to", &spec.to, "saddr"),
            side("from", &spec.from, "daddr"),
        ) {
            // a connection's first packet after the chain came, either way
            out.push(format!("{unclassified} ct direction original {fs} {td}{} {classify}", ports("dport")));
            out.push(format!("{unclassified} ct direction reply {ts} {fd}{} {classify}", ports("sport")));
            // back from a function (untracked): towards `from` is the reply
            out.push(format!(
                "meta mark & {:#x} == {mark:#x} meta mark & {hop_mask:#x} != 0 {fd} {} meta mark set meta mark | {reply:#x}",
                id_mask | reply,
                side("to", &spec.to, "daddr").map_or(String::new(), |t| t.replacen(" daddr ", " daddr != ", 1))
            ));
        }
    }
    for (dir, bits) in [("original", mark), ("reply", mark | reply)] {
        out.push(format!(
            "meta mark & {hop_mask:#x} == 0 ct mark & {id_mask:#x} == {mark:#x} ct direction {dir} meta mark set meta mark & {:#x} | {bits:#x}",
            !all
        ));
    }
    out
}

/// The whole steering state as one nft transaction: the tables' objects,
/// every chain's sets (and ports), the sets of chains `gone` deleted, and
/// the rules rewritten. Set elements of pods are not touched here.
pub fn script(chains: &[Applied], gone: &[u16]) -> String {
    let mut s = format!("add table {INET}\n");
    s += &format!("add chain {INET} {NOTRACK} {{ type filter hook prerouting priority raw; policy accept; }}\n");
    s += &format!("add chain {INET} {CHAIN} {{ type filter hook prerouting priority dstnat + 10; policy accept; }}\n");
    s += &format!("add table {BRIDGE}\n");
    s += &format!("add set {BRIDGE} {STEER_PORTS} {{ type ifname; }}\n");
    s += &format!("add map {BRIDGE} {HOPS} {{ type ifname : mark; }}\n");
    s += &format!("add set {BRIDGE} {OWN_V4} {{ type ifname . ipv4_addr; }}\n");
    s += &format!("add set {BRIDGE} {OWN_V6} {{ type ifname . ipv6_addr; }}\n");
    s += &format!("add chain {BRIDGE} {CHAIN} {{ type filter hook prerouting priority -299; policy accept; }}\n");
    for c in [format!("{INET} {NOTRACK}"), format!("{INET} {CHAIN}"), format!("{BRIDGE} {CHAIN}")] {
        s += &format!("flush chain {c}\n");
    }
    let sets = |id: u16| {
        let mut out: Vec<String> = address_sets(id)
            .into_iter()
            .map(|n| format!("{n} {{ type {}; }}", if n.ends_with("v4") { "ipv4_addr" } else { "ipv6_addr" }))
            .collect();
        out.push(format!("{} {{ type inet_proto . inet_service; }}", ports_set(id)));
        out
    };
    for id in gone {
        for set in sets(*id) {
            // added first: deleting a set that is not there fails the transaction
            s += &format!("add set {INET} {set}\n");
            s += &format!("delete set {INET} {}\n", set.split(' ').next().unwrap_or_default());
        }
    }
    for a in chains {
        for set in sets(a.id) {
            s += &format!("add set {INET} {set}\n");
        }
        s += &format!("flush set {INET} {}\n", ports_set(a.id));
        for PortMatch { protocol, port } in &a.chain.spec.ports {
            s += &format!("add element {INET} {} {{ {protocol} . {port} }}\n", ports_set(a.id));
        }
    }
    // mirrors: `dup` is refused in the inet family (nft 1.0.6), so one table per family
    for (family, v4) in [("ip", true), ("ip6", false)] {
        s += &format!("add table {family} weavice\n");
        s += &format!(
            "add chain {family} weavice {MIRROR} {{ type filter hook forward priority filter; policy accept; }}\n"
        );
        s += &format!("flush chain {family} weavice {MIRROR}\n");
        for a in chains {
            for (i, f) in a.chain.spec.functions.iter().enumerate() {
                let Some(addr) = f.address.filter(|ip| f.mode == Mode::Mirror && ip.is_ipv4() == v4) else { continue };
                for mark in crate::chains::passes(a, i) {
                    s += &format!(
                        "add rule {family} weavice {MIRROR} meta mark & {:#x} == {mark:#x} counter dup to {addr}\n",
                        a.marks.mask
                    );
                }
            }
        }
    }
    s += &format!("add chain {INET} {COUNT} {{ type filter hook prerouting priority dstnat + 20; policy accept; }}\n");
    for a in chains {
        for r in external_hop_rules(a) {
            s += &format!("add rule {INET} {NOTRACK} {r}\n");
        }
    }
    s += &format!("flush chain {INET} {COUNT}\n");
    if !chains.is_empty() {
        let hop_mask = chains.first().map(|a| a.marks.hop_mask()).unwrap_or_default();
        s += &format!("add rule {INET} {NOTRACK} meta mark & {hop_mask:#x} != 0 notrack\n");
        for a in chains {
            for r in chain_rules(a) {
                s += &format!("add rule {INET} {CHAIN} {r}\n");
            }
            for (function, mark, mask) in counted_passes(a) {
                s += &format!(
                    "add rule {INET} {COUNT} meta mark & {mask:#x} == {mark:#x} counter comment \"{}/{function}\"\n",
                    a.chain.name()
                );
            }
        }
        s += &format!(
            "add rule {BRIDGE} {CHAIN} ether type ip ip saddr != 0.0.0.0 iifname . ip saddr != @{OWN_V4} meta mark set iifname map @{HOPS}\n"
        );
        s += &format!(
            "add rule {BRIDGE} {CHAIN} ether type ip6 ip6 saddr != {{ ::, fe80::/10 }} iifname . ip6 saddr != @{OWN_V6} meta mark set iifname map @{HOPS}\n"
        );
    }
    s
}

/// The numbers of the chains whose sets the node holds.
pub fn installed_ids() -> Result<Vec<u16>> {
    let inet = tool::list(INET)?;
    let mut ids: Vec<u16> =
        inet.sets().filter_map(|s| s.strip_prefix('c')?.strip_suffix("_from_v4")?.parse().ok()).collect();
    ids.sort();
    Ok(ids)
}

/// Packets that come back from a route function outside weavice arrive on
/// its interface, not from a bridge port: they get their hop there (towards
/// a `to` pod: a request, towards a `from` pod: a reply), and are not
/// tracked again either.
fn external_hop_rules(a: &Applied) -> Vec<String> {
    let spec = &a.chain.spec;
    let mut out = Vec::new();
    let routes = a.chain.spec.functions.iter().filter(|f| f.mode == Mode::Route);
    for (k, f) in routes.enumerate() {
        let Some(ifname) = &f.interface else { continue };
        let hop = a.marks.chain(a.id) | a.marks.hop(k as u8 + 1);
        for v4 in [true, false] {
            for (side, sel, bits) in [("to", &spec.to, hop), ("from", &spec.from, hop | a.marks.reply())] {
                let Some(dst) = side_match(a.id, side, sel, v4, "daddr") else { continue };
                out.push(format!(
                    "iifname \"{ifname}\" {dst} meta mark set meta mark & {:#x} | {bits:#x} notrack",
                    !a.marks.mask
                ));
            }
        }
    }
    out
}

/// Where each function's packets are counted: a route function's as they
/// come back from it (either direction), a queue's or mirror's on the passes
/// where it acts. (function name, mark, mask)
fn counted_passes(a: &Applied) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    let mut position = 0u8;
    for (i, f) in a.chain.spec.functions.iter().enumerate() {
        if f.mode == Mode::Route {
            position += 1;
            out.push((f.name.clone(), a.marks.chain(a.id) | a.marks.hop(position), a.marks.mask & !a.marks.reply()));
        } else {
            out.extend(crate::chains::passes(a, i).map(|m| (f.name.clone(), m, a.marks.mask)));
        }
    }
    out
}

/// Packets each function of each chain passed, by "chain/function", as the
/// counters of `steer_count` have them (empty without weavice's table).
pub fn packets() -> Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for (comment, n) in tool::counters(INET, COUNT)? {
        *out.entry(comment).or_default() += n;
    }
    Ok(out)
}

/// Installs [`script`] (one transaction).
pub fn apply(chains: &[Applied], gone: &[u16]) -> Result<()> {
    tool::apply_script(&script(chains, gone))
}

/// Makes the pods' elements what `wanted` says: adds what is missing and
/// removes, from the chains' sets and the hop map, what belongs to one of
/// `known` (the pods with state) but is not wanted, and the hop elements of
/// ports not among `links`. Elements of other pods (an ADD under way) are
/// left alone.
pub fn sync_pods(
    chains: &[Applied],
    wanted: &[(PodPort, Vec<Member>)],
    known: &[PodPort],
    links: &[String],
) -> Result<()> {
    let want: Vec<Element> = wanted.iter().flat_map(|(p, m)| pod_elements(p, m)).collect();
    let known_ip = |ip: &IpAddr| known.iter().any(|p| p.ips.contains(ip));
    let known_port = |n: &str| known.iter().any(|p| p.port == n) || !links.iter().any(|l| l == n);
    let mut stale = Vec::new();
    for a in chains {
        for set in address_sets(a.id) {
            for e in elements::held(INET, &set)? {
                if !want.contains(&e) && e.key.iter().any(|f| matches!(f, Field::Addr(ip) if known_ip(ip))) {
                    stale.push(e);
                }
            }
        }
    }
    for set in [HOPS, STEER_PORTS, OWN_V4, OWN_V6] {
        for e in elements::held(BRIDGE, set)? {
            if !want.contains(&e) && matches!(e.key.first(), Some(Field::IfName(n)) if known_port(n)) {
                stale.push(e);
            }
        }
    }
    // a map element whose data changes must go before the new one comes;
    // removed by key (a stale hop's position is whatever it was)
    for e in &mut stale {
        e.data = None;
    }
    elements::remove(&stale)?;
    elements::add(&want)
}

/// An element of a steering set, from what the kernel lists.
pub fn decode_element(table: super::Table, set: &str, key: &[u8], data: Option<&[u8]>) -> Option<Element> {
    let ifname = |b: &[u8]| String::from_utf8(b.iter().copied().take_while(|c| *c != 0).collect()).ok();
    let addr = |b: &[u8]| match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    };
    let (key, data) = match (table == BRIDGE, set) {
        (true, HOPS) => {
            let mark = u32::from_ne_bytes(data?.get(..4)?.try_into().ok()?);
            (vec![Field::IfName(ifname(key)?)], Some(vec![Field::Mark(mark)]))
        }
        (true, OWN_V4 | OWN_V6) => {
            (vec![Field::IfName(ifname(key.get(..16)?)?), Field::Addr(addr(key.get(16..)?)?)], None)
        }
        (false, s) if s.starts_with('c') => (vec![Field::Addr(addr(key)?)], None),
        _ => return None,
    };
    Some(Element { table, set: set.into(), key, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::chain::Chain;

    const SPEC: &str = r#"
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: shop-guard}
spec:
  network: podnet
  from: {namespace: shop, pods: "frontend-*"}
  to:   {cidr: 10.22.0.0/24}
  ports: [{protocol: TCP, port: 8080}]
  functions:
    - {name: fw, mode: route, pod: {namespace: sec, name: fw-0}}
"#;

    #[test]
    fn a_chain_is_a_few_rules_and_its_pods_are_elements() {
        let a = Applied { id: 3, chain: Chain::parse(SPEC).unwrap(), marks: ChainMarks::DEFAULT };
        let rules = chain_rules(&a);
        // a v4 range side: no IPv6 classification; 3 v4 rules and 2 restores
        assert_eq!(rules.len(), 5, "{rules:#?}");
        assert!(rules[0].contains("ip saddr @c3_from_v4 ip daddr 10.22.0.0/24 meta l4proto . th dport @c3_ports"));
        assert!(rules[0].ends_with("ct mark set ct mark & 0xffffc01f | 0x60"), "{}", rules[0]);
        assert!(rules[2].contains("ip daddr @c3_from_v4 ip daddr != 10.22.0.0/24 meta mark set meta mark | 0x10"));
        assert!(rules[4].ends_with("ct direction reply meta mark set meta mark & 0xffffc000 | 0x70"), "{}", rules[4]);

        let pod = PodPort { port: "wv1".into(), ips: vec!["10.22.0.4".parse().unwrap(), "fd22::4".parse().unwrap()] };
        let m = Member { chain: 3, from: true, to: false, hop: Some(2), marks: ChainMarks::DEFAULT };
        let listed: Vec<String> = pod_elements(&pod, &[m]).iter().map(|e| format!("{} {}", e.set, e.json())).collect();
        assert_eq!(
            listed,
            [
                r#"c3_from_v4 "10.22.0.4""#,
                r#"c3_from_v6 "fd22::4""#,
                r#"steer_hops ["wv1",98]"#,
                r#"steer_ports "wv1""#,
                r#"steer_own_v4 {"concat":["wv1","10.22.0.4"]}"#,
                r#"steer_own_v6 {"concat":["wv1","fd22::4"]}"#,
            ]
        );
        for e in pod_elements(&pod, &[m]) {
            if e.set != STEER_PORTS {
                assert_eq!(decode_element(e.table, &e.set, &e.key_bytes(), e.data_bytes().as_deref()), Some(e));
            }
        }
    }

    #[test]
    fn a_gone_chain_loses_its_sets_in_the_same_transaction() {
        let s = script(&[], &[7]);
        assert!(s.contains("add set inet weavice c7_to_v6 { type ipv6_addr; }\ndelete set inet weavice c7_to_v6\n"));
        assert!(!s.contains("add rule"), "no chain, no rules: {s}");
    }
}
