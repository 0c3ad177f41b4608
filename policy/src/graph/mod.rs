//! `weavice-policy graph`: the observed flow graph. Nodes are workloads
//! (pods when the cluster file does not know them) and outside addresses;
//! an edge is every connection from one to the other, labelled with its
//! protocols and ports. Drawn as Graphviz DOT, as SVG laid out here (no
//! Graphviz needed), or as a self-contained HTML report.

pub mod dot;
pub mod html;
pub mod svg;

use crate::cluster::Cluster;
use crate::connections::{Connection, Peer};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    /// Unique: `ns/kind/name`, `ns/pod`, or the address.
    pub id: String,
    /// The first line drawn: the workload's or pod's name, or the address.
    pub name: String,
    /// The second: `deployment · shop`, `pod · shop`, `outside`.
    pub detail: String,
    /// The namespace, or "" for outside addresses.
    pub namespace: String,
}

#[derive(Debug, Default)]
pub struct Edge {
    /// `TCP 8080`, `UDP 53`, in order.
    pub ports: BTreeSet<String>,
    pub flows: u64,
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    pub edges: BTreeMap<(String, String), Edge>,
}

pub fn build(connections: &[Connection], cluster: Option<&Cluster>) -> Graph {
    let mut g = Graph::default();
    for c in connections {
        let (from, to) = (node(&c.key.client, cluster), node(&c.key.server, cluster));
        let e = g.edges.entry((from.id.clone(), to.id.clone())).or_default();
        e.ports.insert(if c.key.protocol.has_ports() {
            format!("{} {}", c.key.protocol, c.key.port)
        } else {
            c.key.protocol.to_string()
        });
        e.flows += c.evidence.flows;
        g.nodes.insert(from.id.clone(), from);
        g.nodes.insert(to.id.clone(), to);
    }
    g
}

/// The graph node a connection's end belongs to.
pub fn node(peer: &Peer, cluster: Option<&Cluster>) -> Node {
    match peer.pod() {
        Some((ns, name)) => match cluster.and_then(|c| c.workload(ns, name).ok()) {
            Some(w) => Node {
                id: format!("{ns}/{}", w.id()),
                name: w.name.clone(),
                detail: format!("{} · {ns}", w.kind),
                namespace: ns.into(),
            },
            None => Node {
                id: format!("{ns}/{name}"),
                name: name.into(),
                detail: format!("pod · {ns}"),
                namespace: ns.into(),
            },
        },
        None => {
            let ip = peer.ip().to_string();
            let detail = if matches!(peer, Peer::Unnamed { .. }) { "unnamed pod" } else { "outside" };
            Node { id: ip.clone(), name: ip, detail: detail.into(), namespace: String::new() }
        }
    }
}

/// Text for XML and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 has no other control characters
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
