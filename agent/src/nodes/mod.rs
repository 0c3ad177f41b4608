//! The other nodes of the cluster, without an overlay: each other node's
//! podCIDR is routed to that node's InternalIP, as kind's own networking
//! does, and traffic to any node's podCIDR keeps the pod's source address
//! (the masquerade skips the cluster's pod ranges). The node list comes
//! from a file (file.rs: what `kubectl get nodes -o json` prints, read again
//! when it changes) or from the Kubernetes API (api.rs: a watch on Nodes).
//! A node without a podCIDR or an address is logged and skipped; the rest
//! is served.
//!
//! The routes carry [`ROUTE_METRIC`], so the daemon finds its own in the
//! kernel (after a restart, for a node gone meanwhile) without state.

mod api;
mod file;

pub use api::Watch;
pub use file::NodeFile;

use datapath::firewall;
use datapath::netlink::RouteSocket;
use datapath::network;
use datapath::route::{Route, RouteFilter, MAIN_TABLE};
use ipnet::IpNet;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

/// The metric of the routes to other nodes' pods: weavice's mark on them.
pub const ROUTE_METRIC: u32 = 4242;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub pod_cidrs: Vec<IpNet>,
    /// InternalIP addresses.
    pub addresses: Vec<IpAddr>,
}

/// The usable nodes of a `kubectl get nodes -o json` List; each unusable
/// one with why.
pub fn parse(text: &[u8]) -> std::result::Result<(Vec<Node>, Vec<String>), String> {
    let list: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let items = list["items"].as_array().ok_or("no `items`: expected what `kubectl get nodes -o json` prints")?;
    let (mut nodes, mut skipped) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        match node(item) {
            Ok(n) => nodes.push(n),
            Err(e) if e.is_empty() => skipped.push(format!("items[{i}] is not a named Node")),
            Err(e) => skipped.push(e),
        }
    }
    Ok((nodes, skipped))
}

/// A Node object's pod ranges (`spec.podCIDRs`, `spec.podCIDR`), sorted, once each.
pub fn pod_cidrs(item: &Value) -> Vec<IpNet> {
    let cidrs = item["spec"]["podCIDRs"].as_array().into_iter().flatten().chain([&item["spec"]["podCIDR"]]);
    let mut pod_cidrs: Vec<IpNet> = cidrs.filter_map(|c| c.as_str()?.parse().ok()).collect();
    pod_cidrs.sort();
    pod_cidrs.dedup();
    pod_cidrs
}

/// One Node object as the API gives it; `Err` says why it cannot be used
/// ("" for what is no named Node).
pub fn node(item: &Value) -> std::result::Result<Node, String> {
    let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if item["kind"] != "Node" || name.is_empty() {
        return Err(String::new());
    }
    let pod_cidrs = pod_cidrs(item);
    let addresses: Vec<IpAddr> = item["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .filter_map(|a| a["address"].as_str()?.parse().ok())
        .collect();
    match (pod_cidrs.is_empty(), addresses.is_empty()) {
        (true, _) => Err(format!("node {name} has no podCIDR (spec.podCIDRs)")),
        (_, true) => Err(format!("node {name} has no InternalIP address (status.addresses)")),
        _ => Ok(Node { name, pod_cidrs, addresses }),
    }
}

/// The routes to the other nodes' pods: each podCIDR via the node's
/// address of its family.
pub fn routes(nodes: &[Node], me: &str) -> Vec<Route> {
    let mine = mine(nodes, me);
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| n.name != me) {
        for cidr in n.pod_cidrs.iter().filter(|c| !overlaps_any(c, &mine)) {
            if let Some(via) = n.addresses.iter().find(|a| a.is_ipv4() == cidr.addr().is_ipv4()) {
                out.push(Route::via(cidr.trunc(), *via).metric(ROUTE_METRIC));
            }
        }
    }
    out
}

/// This node's pod ranges.
fn mine(nodes: &[Node], me: &str) -> Vec<IpNet> {
    nodes.iter().filter(|n| n.name == me).flat_map(|n| n.pod_cidrs.iter().map(IpNet::trunc)).collect()
}

/// Whether `range` shares addresses with one of `others`.
fn overlaps_any(range: &IpNet, others: &[IpNet]) -> bool {
    others.iter().any(|o| o.contains(&range.network()) || range.contains(&o.network()))
}

/// Makes the kernel's node routes `want`: missing ones added (or changed),
/// ours no longer wanted removed. One route failing (a node's address this
/// node cannot reach) does not keep the others out; the failures are returned.
pub fn sync_routes(nl: &mut RouteSocket, want: &[Route]) -> Vec<String> {
    let mut failed = Vec::new();
    for v4 in [true, false] {
        let held: Vec<Route> = match nl.route().list(RouteFilter { v4, table: MAIN_TABLE, oif: None }) {
            Ok(list) => list.into_iter().filter(|r| r.metric == Some(ROUTE_METRIC)).collect(),
            Err(e) => {
                failed.push(e.to_string());
                continue;
            }
        };
        for r in held.iter().filter(|r| !want.iter().any(|w| w.dst == r.dst && w.gw == r.gw)) {
            match nl.route().delete(r) {
                Ok(()) => log::info!("nodes: route {} removed (no node in the list has it)", r.describe()),
                Err(e) => failed.push(e.to_string()),
            }
        }
        for w in want.iter().filter(|w| w.dst.addr().is_ipv4() == v4) {
            if !held.iter().any(|r| r.dst == w.dst && r.gw == w.gw) {
                match nl.route().replace(w) {
                    Ok(()) => log::info!("nodes: route {} added", w.describe()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
        }
    }
    failed
}

/// Where the node list comes from.
pub enum From {
    File(PathBuf),
    Api,
}

enum Feed {
    File(NodeFile),
    Api(Watch),
}

/// The node list, followed: [`poll`](Self::poll) applies what changed.
pub struct Source {
    feed: Feed,
    /// This node's name in the list.
    me: String,
    state_dir: String,
    wanted: Option<Wanted>,
}

/// What the newest list asks of this node, and when it was last made so:
/// again when a network is set up again (its rules made anew by the plugin,
/// or repaired), after a failure (with backoff), and every [`RECONCILE`]
/// (a route someone deleted comes back).
struct Wanted {
    routes: Vec<Route>,
    ex: Exceptions,
    /// The networks' set-up times at the last apply (`None`: not yet).
    set_up: Option<Vec<(String, SystemTime)>>,
    retry: Option<(Instant, Duration)>,
    applied_at: Instant,
}

const RECONCILE: Duration = Duration::from_secs(60);

impl Source {
    pub fn start(from: From, me: String, state_dir: &str, stop: &'static AtomicBool) -> std::io::Result<Source> {
        let feed = match from {
            From::File(path) => Feed::File(NodeFile::new(path)),
            From::Api => Feed::Api(Watch::start(stop)?),
        };
        Ok(Source { feed, me, state_dir: state_dir.to_string(), wanted: None })
    }

    pub fn poll(&mut self, nl: &mut RouteSocket) {
        let (nodes, source) = match &mut self.feed {
            Feed::File(f) => (f.poll(), f.path.display().to_string()),
            Feed::Api(w) => (w.poll(), "the Kubernetes API".to_string()),
        };
        if let Some(nodes) = nodes {
            let (routes, ex) = plan(&nodes, &self.me, &source);
            self.wanted = Some(Wanted { routes, ex, set_up: None, retry: None, applied_at: Instant::now() });
        }
        let Some(a) = self.wanted.as_mut() else { return };
        let set_up = network::set_up_times(&self.state_dir);
        let changed = a.set_up.as_ref() != Some(&set_up);
        let retry_due = a.retry.is_some_and(|(at, _)| Instant::now() >= at);
        if !changed && !retry_due && a.applied_at.elapsed() < RECONCILE {
            return;
        }
        if changed && a.set_up.is_some() {
            log::info!("nodes: a network's rules were set up again; the masquerade's exceptions with them");
            a.retry = None;
        }
        a.set_up = Some(set_up);
        a.applied_at = Instant::now();
        let mut failed = sync_routes(nl, &a.routes);
        if let Err(e) = firewall::set_cluster_ranges(&a.ex.mine, &a.ex.others) {
            failed.push(format!("the masquerade's cluster ranges: {e}"));
        }
        if failed.is_empty() {
            a.retry = None;
            return;
        }
        let wait = a.retry.map_or(Duration::from_secs(1), |(_, w)| (w * 2).min(RECONCILE));
        for f in &failed {
            log::error!("nodes: {f}; retrying in {}s", wait.as_secs());
        }
        a.retry = Some((Instant::now() + wait, wait));
    }
}

/// The ranges the masquerade skips: this node's pod ranges, and the other
/// nodes' that do not overlap them.
struct Exceptions {
    mine: Vec<IpNet>,
    others: Vec<IpNet>,
}

/// What `nodes` (from `source`, for the log) asks of this node: routes to
/// the other nodes' pods and the masquerade's exceptions. Another node's
/// range that overlaps this node's own is named and left out of both: it
/// would take this node's pods away.
fn plan(nodes: &[Node], me: &str, source: &str) -> (Vec<Route>, Exceptions) {
    if !nodes.iter().any(|n| n.name == me) {
        log::warn!("nodes: this node ({me}) is not among {source}'s; --node-name names it");
    }
    let mine = mine(nodes, me);
    let mut others = Vec::new();
    for n in nodes.iter().filter(|n| n.name != me) {
        for c in n.pod_cidrs.iter().map(IpNet::trunc) {
            if overlaps_any(&c, &mine) {
                log::error!("nodes: node {}'s podCIDR {c} overlaps this node's ({mine:?}); skipped", n.name);
            } else {
                others.push(c);
            }
        }
    }
    log::info!("nodes: {} nodes from {source}", nodes.len());
    (routes(nodes, me), Exceptions { mine, others })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidrs: &[&str], ips: &[&str]) -> Value {
        let addresses: Vec<Value> = ips
            .iter()
            .map(|a| json!({"type": "InternalIP", "address": a}))
            .chain([json!({"type": "Hostname", "address": name})])
            .collect();
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidrs.first(), "podCIDRs": cidrs}, "status": {"addresses": addresses}})
    }

    #[test]
    fn each_other_nodes_pod_ranges_go_to_its_address_and_bad_nodes_are_named() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            node("n1", &["10.31.1.0/24", "fd31:1::/64"], &["192.168.50.1", "fd50::1"]),
            node("n2", &["10.31.2.0/24", "fd31:2::/64"], &["192.168.50.2"]),
            node("n3", &[], &["192.168.50.3"]),
            node("n4", &["10.31.4.0/24"], &[]),
        ]});
        let (nodes, skipped) = parse(list.to_string().as_bytes()).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            skipped,
            ["node n3 has no podCIDR (spec.podCIDRs)", "node n4 has no InternalIP address (status.addresses)"]
        );
        let r = routes(&nodes, "n1");
        assert_eq!(
            r,
            [Route::via("10.31.2.0/24".parse().unwrap(), "192.168.50.2".parse().unwrap()).metric(ROUTE_METRIC)]
        );
        assert_eq!(routes(&nodes, "n2").len(), 2, "IPv4 and IPv6 to n1");
        assert!(parse(b"[]").is_err() && parse(b"nope").is_err());
    }

    #[test]
    fn another_nodes_range_overlapping_this_ones_is_neither_routed_nor_excepted() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            node("n1", &["10.31.1.0/24"], &["192.168.50.1"]),
            node("n2", &["10.31.1.0/25", "10.31.2.0/24"], &["192.168.50.2"]),
            node("n3", &["10.31.0.0/16"], &["192.168.50.3"]),
        ]});
        let (nodes, _) = parse(list.to_string().as_bytes()).unwrap();
        let (routes, ex) = plan(&nodes, "n1", "a test");
        let dsts: Vec<String> = routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["10.31.2.0/24"]);
        let others: Vec<String> = ex.others.iter().map(ToString::to_string).collect();
        assert_eq!(others, ["10.31.2.0/24"]);
        assert_eq!(ex.mine, ["10.31.1.0/24".parse::<IpNet>().unwrap()]);
    }
}
