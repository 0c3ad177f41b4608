//! `weavice-policy validate`: every recorded connection, with the pods that
//! held its addresses then, replayed against the policies. Reports what
//! they would deny and why, rules no recorded flow used, and selectors and
//! named ports that match no pod.

use crate::cluster::Cluster;
use crate::connections::{Connection, Peer};
use crate::list;
use crate::netpol::evaluate::{self, Namespaces, Owned, Pod};
use crate::netpol::model::{NetworkPolicy, Peer as PolicyPeer, PortRef, Protocol};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Report {
    /// Connections the policies deny, as `list` shows them, with `deniedBy`
    /// and `reasons`.
    pub denied: Vec<Value>,
    /// `namespace/policy/ingress[0]` and the flows that used each rule.
    pub rule_flows: BTreeMap<String, u64>,
    /// Selectors and named ports that match no pod in the cluster file.
    pub matching_nothing: Vec<String>,
    /// Pods whose labels are unknown, and why: their connections are not
    /// checked.
    pub unresolved: BTreeMap<String, String>,
    pub flows_checked: u64,
    /// Flows of protocols a policy cannot name (ICMP): not checked.
    pub flows_without_ports: u64,
}

impl Report {
    pub fn unused_rules(&self) -> Vec<&str> {
        self.rule_flows.iter().filter(|(_, n)| **n == 0).map(|(r, _)| r.as_str()).collect()
    }
}

pub fn validate(connections: &[Connection], policies: &[NetworkPolicy], cluster: Option<&Cluster>) -> Report {
    let mut r = Report::default();
    for p in policies {
        for (word, rules) in [("ingress", &p.ingress), ("egress", &p.egress)] {
            for i in 0..rules.len() {
                // as the evaluator names them
                r.rule_flows.insert(format!("{}/{word}[{i}]", p.id()), 0);
            }
        }
    }
    let namespaces = cluster.map(Cluster::namespaces).unwrap_or_default();
    for c in connections {
        let Ok(protocol) = Protocol::try_from(c.key.protocol) else {
            r.flows_without_ports += c.evidence.flows;
            continue;
        };
        let (from, to) = match (end(&c.key.client, cluster), end(&c.key.server, cluster)) {
            (Ok(f), Ok(t)) => (f, t),
            (f, t) => {
                for e in [f.err(), t.err()].into_iter().flatten() {
                    r.unresolved.insert(e.0, e.1);
                }
                continue;
            }
        };
        r.flows_checked += c.evidence.flows;
        let v = evaluate::evaluate(policies, &namespaces, from.end(), to.end(), protocol, c.key.port);
        for rule in v.egress.allowed_by.iter().chain(&v.ingress.allowed_by) {
            *r.rule_flows.entry(rule.clone()).or_default() += c.evidence.flows;
        }
        if !v.allowed {
            let by = match (v.egress.allows(), v.ingress.allows()) {
                (false, false) => "egress and ingress",
                (false, true) => "egress",
                _ => "ingress",
            };
            let mut listed = list::json(std::slice::from_ref(c), cluster)[0].clone();
            listed["deniedBy"] = json!(by);
            let why: Vec<&String> = v.reasons.iter().filter(|l| !l.contains(" admits it")).collect();
            listed["reasons"] = json!(why);
            r.denied.push(listed);
        }
    }
    if let Some(c) = cluster {
        r.matching_nothing = matching_nothing(policies, &c.eval_pods(), &namespaces);
    }
    r
}

/// A connection's end as the evaluator takes it. Without a cluster file a
/// pod has no labels: exact for namespace-wide policies (`podSelector: {}`
/// and namespace names), which is what namespace granularity writes.
fn end(peer: &Peer, cluster: Option<&Cluster>) -> Result<Owned, (String, String)> {
    match (peer.pod(), peer) {
        (Some((ns, name)), _) => match cluster {
            Some(c) => c.eval_pod(ns, name).map(|p| Owned::Pod(p, peer.ip())).map_err(|e| (format!("{ns}/{name}"), e)),
            None => Ok(Owned::Pod(
                Pod { namespace: ns.into(), name: name.into(), labels: BTreeMap::new(), ports: vec![], host_ip: None },
                peer.ip(),
            )),
        },
        (None, Peer::Unnamed { ip }) => Err((ip.to_string(), "a pod the runtime did not name".into())),
        (None, _) => Ok(Owned::Address(peer.ip())),
    }
}

/// Pod selectors and peers that select no pod of the cluster file, and
/// named ports that no pod they could reach defines.
fn matching_nothing(policies: &[NetworkPolicy], pods: &[Pod], namespaces: &Namespaces) -> Vec<String> {
    let mut out = Vec::new();
    for p in policies {
        let selected: Vec<&Pod> = pods.iter().filter(|q| p.selects(q)).collect();
        if selected.is_empty() {
            out.push(format!("{}: spec.podSelector selects no pod", p.id()));
        }
        for (word, peers_key, rules) in [("ingress", "from", &p.ingress), ("egress", "to", &p.egress)] {
            for (i, rule) in rules.iter().enumerate() {
                let mut peer_pods: Vec<&Pod> = Vec::new();
                for (j, peer) in rule.peers.iter().flatten().enumerate() {
                    if !matches!(peer, PolicyPeer::Pods { .. }) {
                        continue;
                    }
                    let matched: Vec<&Pod> =
                        pods.iter().filter(|q| peer.selects_pod(&p.namespace, namespaces, q)).collect();
                    if matched.is_empty() {
                        out.push(format!("{}/{word}[{i}].{peers_key}[{j}] matches no pod", p.id()));
                    }
                    peer_pods.extend(matched);
                }
                // who defines a named port: the destination pods
                let destinations: Vec<&Pod> = match (word, &rule.peers) {
                    ("ingress", _) => selected.clone(),
                    (_, Some(_)) => peer_pods,
                    (_, None) => pods.iter().collect(),
                };
                for (j, port) in rule.ports.iter().flatten().enumerate() {
                    let Some(PortRef::Name(name)) = &port.port else { continue };
                    let defined = destinations
                        .iter()
                        .any(|d| d.ports.iter().any(|(n, _, proto)| n == name && *proto == port.protocol));
                    if !defined {
                        out.push(format!(
                            "{}/{word}[{i}].ports[{j}]: no pod it can reach defines the {} port {name:?}",
                            p.id(),
                            port.protocol
                        ));
                    }
                }
            }
        }
    }
    out
}

pub fn json(r: &Report) -> Value {
    json!({
        "denied": r.denied,
        "unusedRules": r.unused_rules(),
        "matchingNothing": r.matching_nothing,
        "unresolved": r.unresolved,
        "flowsChecked": r.flows_checked,
        "flowsWithoutPorts": r.flows_without_ports,
    })
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let denied_flows: u64 = r.denied.iter().filter_map(|d| d["flows"].as_u64()).sum();
    out += &format!(
        "{} recorded flows checked: {} connections ({} flows) would be denied\n",
        r.flows_checked,
        r.denied.len(),
        denied_flows
    );
    for d in &r.denied {
        out += &format!(
            "DENIED {} -> {} {} {} ({} flows, by {})\n",
            list::label(&d["from"]),
            list::label(&d["to"]),
            d["protocol"].as_str().unwrap_or_default(),
            d["port"],
            d["flows"],
            d["deniedBy"].as_str().unwrap_or_default()
        );
        for why in d["reasons"].as_array().into_iter().flatten() {
            out += &format!("  - {}\n", why.as_str().unwrap_or_default());
        }
    }
    let unused = r.unused_rules();
    if !unused.is_empty() {
        out += "rules no recorded flow used:\n";
        for u in unused {
            out += &format!("  {u}\n");
        }
    }
    if !r.matching_nothing.is_empty() {
        out += "matching no pod:\n";
        for m in &r.matching_nothing {
            out += &format!("  {m}\n");
        }
    }
    if !r.unresolved.is_empty() {
        out += "not checked (pods whose labels are unknown):\n";
        for (pod, why) in &r.unresolved {
            out += &format!("  {pod}: {why}\n");
        }
    }
    out
}
