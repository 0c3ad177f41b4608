//! The verdict for one connection under a set of policies, with Kubernetes'
//! semantics: a pod is isolated for a direction only when a policy that
//! selects it has that direction; then some rule of those policies must
//! admit the connection. A connection needs the source's egress and the
//! destination's ingress. A pod may always reach itself, and its own node
//! may always reach it. Pure: no I/O.

use super::model::{NetworkPolicy, Peer, Port, PortRef, Protocol, Rule};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A pod as the evaluator needs it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Its container ports: name, number, protocol.
    pub ports: Vec<(String, u16, Protocol)>,
    /// Its node's address, when known.
    pub host_ip: Option<IpAddr>,
}

/// One end of a connection: a pod at the address it used, or an address.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    Pod(&'a Pod, IpAddr),
    Address(IpAddr),
}

impl End<'_> {
    fn ip(&self) -> IpAddr {
        match self {
            End::Pod(_, ip) | End::Address(ip) => *ip,
        }
    }
}

/// An end that owns its pod: what `explain` and `validate` build.
#[derive(Debug, Clone)]
pub enum Owned {
    Pod(Pod, IpAddr),
    Address(IpAddr),
}

impl Owned {
    pub fn end(&self) -> End<'_> {
        match self {
            Owned::Pod(p, ip) => End::Pod(p, *ip),
            Owned::Address(ip) => End::Address(*ip),
        }
    }
}

/// Namespaces' labels; a namespace not in it has only
/// `kubernetes.io/metadata.name`, which the API server sets on every one.
#[derive(Debug, Default, Clone)]
pub struct Namespaces(pub BTreeMap<String, BTreeMap<String, String>>);

impl Namespaces {
    pub fn labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.0.get(ns).cloned().unwrap_or_else(|| [("kubernetes.io/metadata.name".to_string(), ns.to_string())].into())
    }
}

/// What one direction says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Side {
    /// Whether a policy selecting the pod has this direction.
    pub isolated: bool,
    /// The policies that do.
    pub selected_by: Vec<String>,
    /// `namespace/policy/ingress[0]`: the rules that admit the connection.
    pub allowed_by: Vec<String>,
}

impl Side {
    pub fn allows(&self) -> bool {
        !self.isolated || !self.allowed_by.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub egress: Side,
    pub ingress: Side,
    /// Why, one line each: what isolates, and why each rule does or does
    /// not admit.
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

pub fn evaluate(
    policies: &[NetworkPolicy],
    namespaces: &Namespaces,
    from: End,
    to: End,
    protocol: Protocol,
    port: u16,
) -> Verdict {
    let mut reasons = Vec::new();
    if let (End::Pod(a, _), End::Pod(b, _)) = (from, to) {
        if a.namespace == b.namespace && a.name == b.name {
            reasons.push("a pod may always connect to itself".to_string());
            return Verdict { allowed: true, egress: Side::default(), ingress: Side::default(), reasons };
        }
    }
    let egress = side(policies, namespaces, Direction::Egress, from, to, protocol, port, &mut reasons);
    let ingress = match (from, to) {
        (End::Address(ip), End::Pod(p, _)) if p.host_ip == Some(ip) => {
            reasons.push(format!("ingress: {ip} is the pod's own node, which may always connect"));
            Side::default()
        }
        _ => side(policies, namespaces, Direction::Ingress, to, from, protocol, port, &mut reasons),
    };
    Verdict { allowed: egress.allows() && ingress.allows(), egress, ingress, reasons }
}

/// One direction for the pod `inside` (the source for egress, the
/// destination for ingress) and its `peer`.
#[allow(clippy::too_many_arguments)]
fn side(
    policies: &[NetworkPolicy],
    namespaces: &Namespaces,
    direction: Direction,
    inside: End,
    peer: End,
    protocol: Protocol,
    port: u16,
    reasons: &mut Vec<String>,
) -> Side {
    let word = match direction {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    };
    let End::Pod(pod, _) = inside else {
        reasons.push(format!("{word}: {} is no pod: no policy applies", inside.ip()));
        return Side::default();
    };
    let mut s = Side::default();
    for p in policies {
        let isolates = match direction {
            Direction::Ingress => p.ingress_isolates,
            Direction::Egress => p.egress_isolates,
        };
        if !isolates || !p.selects(pod) {
            continue;
        }
        s.isolated = true;
        s.selected_by.push(p.id());
        let rules = match direction {
            Direction::Ingress => &p.ingress,
            Direction::Egress => &p.egress,
        };
        if rules.is_empty() {
            reasons.push(format!("{word}: {} selects {}/{} and has no {word} rule", p.id(), pod.namespace, pod.name));
        }
        // the destination pod names the ports, in both directions
        let destination = match direction {
            Direction::Ingress => Some(pod),
            Direction::Egress => match peer {
                End::Pod(d, _) => Some(d),
                End::Address(_) => None,
            },
        };
        for (i, rule) in rules.iter().enumerate() {
            let id = format!("{}/{word}[{i}]", p.id());
            match admits(rule, p, namespaces, peer, destination, protocol, port) {
                Ok(()) => {
                    reasons.push(format!("{word}: {id} admits it"));
                    s.allowed_by.push(id);
                }
                Err(why) => reasons.push(format!("{word}: {id} does not admit it: {why}")),
            }
        }
    }
    if !s.isolated {
        reasons.push(format!("{word}: no policy isolates {}/{} for {word}", pod.namespace, pod.name));
    }
    s
}

/// The ingress rules that apply to `pod`: `None` when no policy isolates
/// it for ingress (everything may reach it), else every rule of the
/// policies that do, as `namespace/policy/ingress[i]`.
pub fn ingress_rules<'a>(policies: &'a [NetworkPolicy], pod: &Pod) -> Option<Vec<(String, &'a Rule)>> {
    let selecting: Vec<&NetworkPolicy> = policies.iter().filter(|p| p.ingress_isolates && p.selects(pod)).collect();
    if selecting.is_empty() {
        return None;
    }
    Some(
        selecting
            .into_iter()
            .flat_map(|p| p.ingress.iter().enumerate().map(move |(i, r)| (format!("{}/ingress[{i}]", p.id()), r)))
            .collect(),
    )
}

/// Whether `rule` admits `protocol`/`port` on `pod` from some peer.
pub fn admits_port(rule: &Rule, pod: &Pod, protocol: Protocol, port: u16) -> bool {
    rule.ports.as_ref().is_none_or(|ports| ports.iter().any(|p| port_matches(p, Some(pod), protocol, port)))
}

fn admits(
    rule: &Rule,
    policy: &NetworkPolicy,
    namespaces: &Namespaces,
    peer: End,
    destination: Option<&Pod>,
    protocol: Protocol,
    port: u16,
) -> Result<(), String> {
    if let Some(peers) = &rule.peers {
        if !peers.iter().any(|p| peer_matches(p, policy, namespaces, peer)) {
            return Err(match peer {
                End::Pod(p, ip) => format!("no peer matches {}/{} ({ip})", p.namespace, p.name),
                End::Address(ip) => format!("no peer matches {ip}"),
            });
        }
    }
    if let Some(ports) = &rule.ports {
        if !ports.iter().any(|p| port_matches(p, destination, protocol, port)) {
            return Err(format!("no port matches {protocol} {port}"));
        }
    }
    Ok(())
}

fn peer_matches(peer: &Peer, policy: &NetworkPolicy, namespaces: &Namespaces, end: End) -> bool {
    match (peer, end) {
        // pod addresses too, as the upstream e2e tests expect
        (Peer::Block { cidr, except }, _) => {
            let ip = end.ip();
            cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))
        }
        (Peer::Pods { .. }, End::Pod(pod, _)) => peer.selects_pod(&policy.namespace, namespaces, pod),
        (Peer::Pods { .. }, End::Address(_)) => false,
    }
}

impl NetworkPolicy {
    /// Whether the policy applies to `pod` (whatever its types).
    pub fn selects(&self, pod: &Pod) -> bool {
        self.namespace == pod.namespace && self.pod_selector.matches(&pod.labels)
    }
}

impl Peer {
    /// Whether this selector peer of a policy in `policy_namespace` picks
    /// `pod` (an ipBlock peer picks no pod by selector).
    pub fn selects_pod(&self, policy_namespace: &str, namespaces: &Namespaces, pod: &Pod) -> bool {
        let Peer::Pods { namespaces: ns_sel, pods } = self else { return false };
        let ns_ok = match ns_sel {
            Some(sel) => sel.matches(&namespaces.labels(&pod.namespace)),
            None => pod.namespace == policy_namespace,
        };
        ns_ok && pods.as_ref().is_none_or(|sel| sel.matches(&pod.labels))
    }
}

fn port_matches(p: &Port, destination: Option<&Pod>, protocol: Protocol, port: u16) -> bool {
    if p.protocol != protocol {
        return false;
    }
    match &p.port {
        None => true,
        Some(PortRef::Number(n)) => (*n..=p.end_port.unwrap_or(*n)).contains(&port),
        Some(PortRef::Name(name)) => destination.is_some_and(|d| {
            d.ports.iter().any(|(pn, number, proto)| pn == name && *proto == protocol && *number == port)
        }),
    }
}
