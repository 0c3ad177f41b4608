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

pub use api::{as_kubectl_prints, Watch};
pub use file::NodeFile;

use datapath::firewall;
use datapath::netlink::RouteSocket;
use datapath::network;
use datapath::route::{Route, RouteFilter, MAIN_TABLE};
use datapath::Result;
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

/// One Node object as the API gives it; `Err` says why it cannot be used
/// ("" for what is no named Node).
pub fn node(item: &Value) -> std::result::Result<Node, String> {
    let name = item["metadata"]["name"].as_str().unwrap_or_default().to_string();
    if item["kind"] != "Node" || name.is_empty() {
        return Err(String::new());
    }
    let cidrs = item["spec"]["podCIDRs"].as_array().into_iter().flatten().chain([&item["spec"]["podCIDR"]]);
    let mut pod_cidrs: Vec<IpNet> = cidrs.filter_map(|c| c.as_str()?.parse().ok()).collect();
    pod_cidrs.sort();
    pod_cidrs.dedup();
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
    let mut out = Vec::new();
    for n in nodes.iter().filter(|n| n.name != me) {
        for cidr in &n.pod_cidrs {
            if let Some(via) = n.addresses.iter().find(|a| a.is_ipv4() == cidr.addr().is_ipv4()) {
                out.push(Route::via(cidr.trunc(), *via).metric(ROUTE_METRIC));
            }
        }
    }
    out
}

/// Makes the kernel's node routes `want`: missing ones added (or changed),
/// ours no longer wanted removed.
pub fn sync_routes(nl: &mut RouteSocket, want: &[Route]) -> Result<()> {
    for v4 in [true, false] {
        let held: Vec<Route> = nl
            .route()
            .list(RouteFilter { v4, table: MAIN_TABLE, oif: None })?
            .into_iter()
            .filter(|r| r.metric == Some(ROUTE_METRIC))
            .collect();
        for r in held.iter().filter(|r| !want.iter().any(|w| w.dst == r.dst && w.gw == r.gw)) {
            log::info!("nodes: route {} removed (its node is gone)", r.describe());
            nl.route().delete(r)?;
        }
        for w in want.iter().filter(|w| w.dst.addr().is_ipv4() == v4) {
            if !held.iter().any(|r| r.dst == w.dst && r.gw == w.gw) {
                nl.route().replace(w)?;
                log::info!("nodes: route {} added", w.describe());
            }
        }
    }
    Ok(())
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
    exceptions: Option<Applied>,
}

/// The masquerade's exceptions of the newest list, and the networks'
/// set-up times when they were last applied (`None`: not yet): a network
/// set up again (its rules made anew by the plugin, or repaired) gets them
/// again. A failed apply is retried with backoff.
struct Applied {
    ex: Exceptions,
    set_up: Option<Vec<(String, SystemTime)>>,
    retry: Option<(Instant, Duration)>,
}

impl Source {
    pub fn start(from: From, me: String, state_dir: &str, stop: &'static AtomicBool) -> std::io::Result<Source> {
        let feed = match from {
            From::File(path) => Feed::File(NodeFile::new(path)),
            From::Api => Feed::Api(Watch::start(stop)?),
        };
        Ok(Source { feed, me, state_dir: state_dir.to_string(), exceptions: None })
    }

    pub fn poll(&mut self, nl: &mut RouteSocket) {
        let (nodes, source) = match &mut self.feed {
            Feed::File(f) => (f.poll(), f.path.display().to_string()),
            Feed::Api(w) => (w.poll(), "the Kubernetes API".to_string()),
        };
        if let Some(nodes) = nodes {
            let ex = apply(nl, &nodes, &self.me, &source);
            self.exceptions = Some(Applied { ex, set_up: None, retry: None });
        }
        let Some(a) = self.exceptions.as_mut() else { return };
        let set_up = network::set_up_times(&self.state_dir);
        let retry_due = a.retry.is_some_and(|(at, _)| Instant::now() >= at);
        match &a.set_up {
            Some(then) if *then == set_up && !retry_due => return,
            Some(then) if *then != set_up => {
                log::info!("nodes: a network's rules were set up again; the masquerade's exceptions with them")
            }
            _ => {}
        }
        a.set_up = Some(set_up);
        match firewall::set_cluster_ranges(&a.ex.cluster, &a.ex.mine) {
            Ok(()) => a.retry = None,
            Err(e) => {
                let wait = a.retry.map_or(Duration::from_secs(1), |(_, w)| (w * 2).min(Duration::from_secs(60)));
                log::error!("nodes: the masquerade's cluster ranges: {e}; retrying in {}s", wait.as_secs());
                a.retry = Some((Instant::now() + wait, wait));
            }
        }
    }
}

/// The ranges the masquerade skips: every node's pod ranges, and which of
/// them are this node's.
struct Exceptions {
    cluster: Vec<IpNet>,
    mine: Vec<IpNet>,
}

/// Routes follow `nodes` (from `source`, for the log); errors are logged,
/// what could be done is done. Returns the masquerade's exceptions, for
/// the caller to apply.
fn apply(nl: &mut RouteSocket, nodes: &[Node], me: &str, source: &str) -> Exceptions {
    if !nodes.iter().any(|n| n.name == me) {
        log::warn!("nodes: this node ({me}) is not among {source}'s; --node-name names it");
    }
    if let Err(e) = sync_routes(nl, &routes(nodes, me)) {
        log::error!("nodes: {e}");
    }
    let ranges = |n: &Node| n.pod_cidrs.iter().map(IpNet::trunc).collect::<Vec<_>>();
    let ex = Exceptions {
        cluster: nodes.iter().flat_map(ranges).collect(),
        mine: nodes.iter().filter(|n| n.name == me).flat_map(ranges).collect(),
    };
    log::info!("nodes: {} nodes from {source}", nodes.len());
    ex
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
}
