//! The routing half of a chain: a table per (direction, route function),
//! whose default route leads to that function, and ip rules that send a
//! chain's packets, by mark, to the table of their next hop.
//!
//! A chain with route functions 1..n, on its network's bridge:
//! - requests from an endpoint (hop 0) look up the table of function 1;
//!   back from function k, that of k+1; back from n, no rule: the main table
//!   delivers them;
//! - replies go n, n-1, ..., 1 the same way.
//!
//! A route function outside weavice (`{address, interface}`, a VM or host)
//! is routed to by its address; its packets come back on its interface.
//!
//! A function that is gone (its pod deleted) leaves a blackhole in its
//! tables under `failurePolicy: Closed`, and under `Open` the route of the
//! next function still there, or a `throw` (on to the main table).

use super::{route_functions, Applied, ChainPod};
use crate::marks;
use crate::netlink::RouteSocket;
use crate::route::{Route, RouteFilter};
use crate::rule::Rule;
use crate::Result;
use conf::chain::FailurePolicy;
use ipnet::IpNet;
use std::net::IpAddr;

/// The priority of every chain rule: before the main table (32766).
pub const RULE_PRIORITY: u32 = 1000;
/// Chain N's tables are TABLE_BASE + 32 N + (16 for replies) + position.
pub const TABLE_BASE: u32 = 0x5700_0000;
const TABLES_PER_CHAIN: u32 = 32;

pub fn table(id: u16, reply: bool, position: u8) -> u32 {
    TABLE_BASE + TABLES_PER_CHAIN * u32::from(id) + if reply { 16 } else { 0 } + u32::from(position)
}

fn is_ours(t: u32) -> bool {
    (TABLE_BASE..TABLE_BASE + TABLES_PER_CHAIN * (u32::from(marks::MAX_CHAIN) + 1)).contains(&t)
}

/// The chain's ip rules, both families. A packet comes back from a pod
/// function on the bridge, from one outside weavice on its interface.
pub fn rules(a: &Applied, bridge: &str) -> Vec<Rule> {
    let functions = route_functions(a);
    let n = functions.len() as u8;
    let m = a.marks;
    let mark = m.chain(a.id);
    // where packets come in from hop k (0: an endpoint)
    let iif = |k: u8| -> String {
        let f = usize::from(k).checked_sub(1).and_then(|i| functions.get(i));
        f.and_then(|f| f.interface.clone()).unwrap_or_else(|| bridge.to_string())
    };
    let mut out = Vec::new();
    for v4 in [true, false] {
        let mut rule = |from: u8, bits: u32, table: u32| {
            let iif = Some(iif(from));
            out.push(Rule { v4, priority: RULE_PRIORITY, iif, fwmark: Some((bits, m.mask)), table });
        };
        if n == 0 {
            continue;
        }
        rule(0, mark, table(a.id, false, 1));
        for k in 1..n {
            rule(k, mark | m.hop(k), table(a.id, false, k + 1));
        }
        rule(0, mark | m.reply(), table(a.id, true, n));
        for k in 2..=n {
            rule(k, mark | m.reply() | m.hop(k), table(a.id, true, k - 1));
        }
    }
    out
}

fn default_route(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(Default::default())
    } else {
        IpNet::V6(Default::default())
    }
}

/// Every route of the chain's tables, for the families the network has.
/// `pods`: the network's pods now (a function is there when its pod is and
/// it is not one of `down`, found not forwarding by the daemon's probes).
pub fn routes(a: &Applied, pods: &[ChainPod], families: &[bool], down: &[&str]) -> Vec<Route> {
    let functions = route_functions(a);
    let n = functions.len() as u8;
    // function k's address of a family, if its pod is there
    let target = |k: u8, v4: bool| -> Option<IpAddr> {
        let f = functions.get(usize::from(k) - 1).filter(|f| !down.contains(&f.name.as_str()))?;
        // outside weavice: its address, through its interface
        if let Some(address) = f.address {
            return (address.is_ipv4() == v4).then_some(address);
        }
        let pod = pods.iter().find(|p| p.name.is_some() && p.name == f.pod)?;
        pod.ips.iter().copied().find(|ip| ip.is_ipv4() == v4)
    };
    let mut out = Vec::new();
    for &v4 in families {
        let dst = default_route(v4);
        for reply in [false, true] {
            for k in 1..=n {
                let route = match a.chain.spec.failure_policy {
                    FailurePolicy::Closed => match target(k, v4) {
                        Some(gw) => Route::via(dst, gw),
                        None => Route::blackhole(dst),
                    },
                    FailurePolicy::Open => {
                        let next: Vec<u8> = if reply { (1..=k).rev().collect() } else { (k..=n).collect() };
                        match next.into_iter().find_map(|j| target(j, v4)) {
                            Some(gw) => Route::via(dst, gw),
                            None => Route::throw(dst),
                        }
                    }
                };
                out.push(route.in_table(table(a.id, reply, k)));
                if a.chain.spec.failure_policy == FailurePolicy::Closed {
                    // should the route above go (a function's link down
                    // takes its routes with it), the chain's packets are
                    // dropped, not let through to the main table
                    out.push(Route::blackhole(dst).in_table(table(a.id, reply, k)).metric(FALLBACK_METRIC));
                }
            }
        }
    }
    out
}

/// The metric of the fail-closed fallback in every table of a `Closed` chain.
pub const FALLBACK_METRIC: u32 = 4000;

/// Whether `listed` (as the kernel lists it) is the wanted route: the
/// kernel names the interface it resolved a gateway on, and gives routes
/// without a metric its default one.
fn same(wanted: &Route, listed: &Route) -> bool {
    let metric = match wanted.metric {
        Some(m) => listed.metric == Some(m),
        None => listed.metric != Some(FALLBACK_METRIC),
    };
    metric && Route { oif: None, metric: None, ..listed.clone() } == Route { oif: None, metric: None, ..wanted.clone() }
}

/// Replaces each route in its table: a packet finds the old route or the
/// new one, never none.
pub fn install_routes(nl: &mut RouteSocket, routes: &[Route]) -> Result<()> {
    routes.iter().try_for_each(|r| nl.route().replace(r))
}

/// Deletes weavice's ip rules and routes that are not among `rules` and
/// `routes` (installed first by the caller: make before break).
pub fn prune(nl: &mut RouteSocket, rules: &[Rule], routes: &[Route]) -> Result<()> {
    for v4 in [true, false] {
        let held = nl.rule().list(v4)?;
        let stale = held.iter().filter(|r| r.priority == RULE_PRIORITY && is_ours(r.table) && !rules.contains(r));
        for r in stale.cloned().collect::<Vec<_>>() {
            nl.rule().delete(&r)?;
        }
        let tables: Vec<u32> = held.iter().map(|r| r.table).filter(|t| is_ours(*t)).collect();
        for t in tables {
            for r in nl.route().list(RouteFilter { v4, table: t, oif: None })? {
                if !routes.iter().any(|w| same(w, &r)) {
                    nl.route().delete(&r)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::chain::{Chain, PodRef};

    fn chain(policy: &str) -> Applied {
        let yaml = format!(
            r#"
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {{name: c}}
spec:
  network: podnet
  from: {{namespace: shop, pods: "a"}}
  to:   {{namespace: shop, pods: "b"}}
  failurePolicy: {policy}
  functions:
    - {{name: fw1, mode: route, pod: {{namespace: sec, name: fw1}}}}
    - {{name: ids, mode: mirror, address: 198.51.100.9}}
    - {{name: fw2, mode: route, pod: {{namespace: sec, name: fw2}}}}
"#
        );
        Applied { id: 2, chain: Chain::parse(&yaml).unwrap(), marks: marks::ChainMarks::DEFAULT }
    }

    fn pod(name: &str, ip: &str) -> ChainPod {
        ChainPod {
            name: Some(PodRef { namespace: "sec".into(), name: name.into() }),
            ips: vec![ip.parse().unwrap()],
            port: format!("wv{name}"),
        }
    }

    /// Routes as `ip route` prints them, chain 2's tables as T<offset>.
    fn described(routes: &[Route]) -> Vec<String> {
        let t = |r: &Route| format!("table {}", r.table);
        routes.iter().map(|r| r.describe().replace(&t(r), &format!("table T{}", r.table - TABLE_BASE - 64))).collect()
    }

    #[test]
    fn requests_go_through_the_functions_in_order_and_replies_back() {
        let a = chain("Closed");
        let rules: Vec<String> = rules(&a, "wv0").iter().filter(|r| r.v4).map(Rule::describe).collect();
        let t = |off: u32| TABLE_BASE + 64 + off;
        assert_eq!(
            rules,
            [
                format!("ipv4 pref 1000 iif wv0 fwmark 0x40/0x3fff lookup {}", t(1)),
                format!("ipv4 pref 1000 iif wv0 fwmark 0x41/0x3fff lookup {}", t(2)),
                format!("ipv4 pref 1000 iif wv0 fwmark 0x50/0x3fff lookup {}", t(16 + 2)),
                format!("ipv4 pref 1000 iif wv0 fwmark 0x52/0x3fff lookup {}", t(16 + 1)),
            ]
        );
        let pods = [pod("fw1", "10.0.0.4"), pod("fw2", "10.0.0.5")];
        let r = routes(&a, &pods, &[true], &[]);
        assert_eq!(
            described(&r),
            [
                "0.0.0.0/0 via 10.0.0.4 table T1",
                "blackhole 0.0.0.0/0 table T1 metric 4000",
                "0.0.0.0/0 via 10.0.0.5 table T2",
                "blackhole 0.0.0.0/0 table T2 metric 4000",
                "0.0.0.0/0 via 10.0.0.4 table T17",
                "blackhole 0.0.0.0/0 table T17 metric 4000",
                "0.0.0.0/0 via 10.0.0.5 table T18",
                "blackhole 0.0.0.0/0 table T18 metric 4000",
            ]
        );
    }

    #[test]
    fn a_gone_function_is_a_blackhole_when_closed_and_skipped_when_open() {
        let only_fw2 = [pod("fw2", "10.0.0.5")];
        let closed = described(&routes(&chain("Closed"), &only_fw2, &[true], &[]));
        assert_eq!(closed[0], "blackhole 0.0.0.0/0 table T1");
        assert_eq!(closed[4], "blackhole 0.0.0.0/0 table T17");
        let open = described(&routes(&chain("Open"), &only_fw2, &[true], &[]));
        // requests skip to fw2; replies, after fw2, on to the main table
        assert_eq!(open[0], "0.0.0.0/0 via 10.0.0.5 table T1");
        assert_eq!(open[2], "throw 0.0.0.0/0 table T17");
        assert_eq!(open[3], "0.0.0.0/0 via 10.0.0.5 table T18");
        // a function the probes found down counts as gone
        let both = [pod("fw1", "10.0.0.4"), pod("fw2", "10.0.0.5")];
        assert_eq!(described(&routes(&chain("Open"), &both, &[true], &["fw1"])), open);
    }
}
