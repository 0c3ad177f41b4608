//! NetworkPolicies from observed connections. Each workload (or namespace)
//! seen gets one policy isolating both directions, with an egress rule per
//! server it called and an ingress rule per client that called it, every
//! observed port in it (the endpoint's port after DNAT), so that what was
//! not observed is denied. Standard `networking.k8s.io/v1` fields only.

use crate::cluster::{Cluster, Selector, Workload};
use crate::connections::{Connection, Evidence, Peer, Protocol};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Granularity {
    /// One policy for all pods of a namespace; peers are whole namespaces.
    Namespace,
    /// One policy per workload; peers are workloads.
    Workload,
}

pub struct Options<'a> {
    pub granularity: Granularity,
    pub allow_dns: bool,
    /// Only policies for this namespace's pods.
    pub namespace: Option<&'a str>,
}

/// The pods a policy is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Namespace(String),
    Workload(Workload),
}

impl Subject {
    fn selector(&self) -> Selector {
        match self {
            Subject::Namespace(_) => Selector::default(),
            Subject::Workload(w) => w.selector.clone(),
        }
    }

    fn namespace(&self) -> &str {
        match self {
            Subject::Namespace(ns) => ns,
            Subject::Workload(w) => &w.namespace,
        }
    }

    fn name(&self) -> String {
        match self {
            Subject::Namespace(_) => "weavice-namespace".into(),
            Subject::Workload(w) => dns_name(&format!("weavice-{}-{}", w.kind, w.name)),
        }
    }
}

/// A rule's peer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Pods: of the policy's namespace or `namespace`; all of them, or those
    /// `selector` picks.
    Pods {
        namespace: Option<String>,
        selector: Option<Selector>,
        label: String,
    },
    Address(IpAddr),
}

/// Evidence annotations per policy, well under the API's 256 KiB.
const EVIDENCE_BYTES: usize = 128 << 10;

/// A rule: the ports allowed with a peer, and the flows that used them.
type Rule = (BTreeSet<(Protocol, u16)>, Option<Evidence>);

#[derive(Default)]
struct Rules {
    ingress: BTreeMap<Target, Rule>,
    egress: BTreeMap<Target, Rule>,
}

pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub value: Value,
}

impl Policy {
    /// `<namespace>.<name>.yaml`, within a file system's 255 bytes.
    pub fn file_name(&self) -> String {
        let name = if self.name.len() > 180 {
            format!("{}-{:08x}", &self.name[..170], hash(&self.name))
        } else {
            self.name.clone()
        };
        format!("{}.{name}.yaml", self.namespace)
    }
}

#[derive(Default)]
pub struct Generated {
    pub policies: Vec<Policy>,
    /// Pods no selector can pick, and why.
    pub unresolved: BTreeMap<String, String>,
    /// Policies not written, and why.
    pub withheld: Vec<String>,
    /// Connections a NetworkPolicy cannot express (ICMP and the like).
    pub inexpressible: u64,
}

/// `pods`: every named pod the journal saw (namespace, name), so that pods
/// without connections are isolated too.
pub fn generate(
    connections: &[Connection],
    pods: &[(String, String)],
    cluster: Option<&Cluster>,
    opts: &Options,
) -> Generated {
    let mut out = Generated::default();
    let mut rules: BTreeMap<Subject, Rules> = BTreeMap::new();
    let mut blocked: BTreeMap<Subject, String> = BTreeMap::new();
    let wanted = |s: &Subject| opts.namespace.is_none_or(|ns| s.namespace() == ns);
    let subject = |ns: &str, pod: &str, out: &mut Generated| -> Option<Subject> {
        if let Err(why) = names_ok(ns, pod) {
            out.unresolved.insert(format!("{ns:?}/{pod:?}"), why);
            return None;
        }
        match opts.granularity {
            Granularity::Namespace => Some(Subject::Namespace(ns.to_string())),
            Granularity::Workload => match workload(cluster, ns, pod) {
                Ok(w) => Some(Subject::Workload(w)),
                Err(why) => {
                    out.unresolved.insert(format!("{ns}/{pod}"), why);
                    None
                }
            },
        }
    };
    for (ns, pod) in pods {
        if let Some(s) = subject(ns, pod, &mut out).filter(|s| wanted(s)) {
            rules.entry(s).or_default();
        }
    }
    for c in connections {
        let k = &c.key;
        if !k.protocol.has_ports() {
            out.inexpressible += c.evidence.flows;
            continue;
        }
        let dns = opts.allow_dns
            && matches!(k.protocol, Protocol::TCP | Protocol::UDP)
            && (k.port == 53 || k.via.is_some_and(|v| v.port() == 53));
        let ports: BTreeSet<(Protocol, u16)> =
            if dns { [(Protocol::UDP, k.port), (Protocol::TCP, k.port)].into() } else { [(k.protocol, k.port)].into() };
        for egress in [true, false] {
            let (inside, peer) = if egress { (&k.client, &k.server) } else { (&k.server, &k.client) };
            let Some((ns, pod)) = inside.pod() else { continue };
            let Some(s) = subject(ns, pod, &mut out).filter(|s| wanted(s)) else { continue };
            let target = match self::target(peer, ns, cluster, opts.granularity) {
                Ok(t) => t,
                Err((name, why)) => {
                    out.unresolved.insert(name.clone(), why);
                    blocked.entry(s.clone()).or_insert_with(|| {
                        format!("it talked to {name}, which no selector can pick: writing it would deny that")
                    });
                    continue;
                }
            };
            let r = rules.entry(s).or_default();
            let side = if egress { &mut r.egress } else { &mut r.ingress };
            let (p, e) = side.entry(target).or_default();
            p.extend(ports.iter().copied());
            match e {
                Some(e) => e.merge(&c.evidence),
                None => *e = Some(c.evidence.clone()),
            }
        }
    }
    // one name, two selectors (pods of one workload labelled apart): neither
    // policy would be whole
    let mut names: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in rules.keys() {
        *names.entry((s.namespace().to_string(), s.name())).or_default() += 1;
    }
    for (s, r) in rules {
        if names[&(s.namespace().to_string(), s.name())] > 1 {
            out.withheld.push(format!(
                "{}/{}: its pods are selected by more than one selector (labelled differently): {}",
                s.namespace(),
                s.name(),
                json!(s.selector())
            ));
            continue;
        }
        if let Some(why) = blocked.get(&s) {
            out.withheld.push(format!("{}/{}: {why}", s.namespace(), s.name()));
            continue;
        }
        out.policies.push(policy(&s, &r));
    }
    out
}

/// A namespace must be a DNS label and a pod name a DNS subdomain, as the
/// API server has them: names from a journal are used in files and YAML.
fn names_ok(ns: &str, pod: &str) -> Result<(), String> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !label(ns) {
        return Err("the journal's namespace is not a Kubernetes namespace name".into());
    }
    if pod.is_empty() || pod.len() > 253 || !pod.split('.').all(label) {
        return Err("the journal's pod name is not a Kubernetes object name".into());
    }
    Ok(())
}

fn workload(cluster: Option<&Cluster>, ns: &str, pod: &str) -> Result<Workload, String> {
    match cluster {
        Some(c) => c.workload(ns, pod),
        None => Err("no --cluster file to find its workload and labels in".into()),
    }
}

/// How a rule of a policy in namespace `here` names `peer`; else the peer's
/// name and why it cannot be named.
fn target(peer: &Peer, here: &str, cluster: Option<&Cluster>, g: Granularity) -> Result<Target, (String, String)> {
    let Some((ns, pod)) = peer.pod() else {
        return match peer {
            Peer::Unnamed { ip } => {
                Err((format!("the pod at {ip}"), "the runtime gave it no name (no K8S_POD_* arguments)".into()))
            }
            _ => Ok(Target::Address(peer.ip())),
        };
    };
    names_ok(ns, pod).map_err(|why| (format!("{ns:?}/{pod:?}"), why))?;
    let namespace = (ns != here).then(|| ns.to_string());
    match g {
        Granularity::Namespace => Ok(Target::Pods { namespace, selector: None, label: format!("namespace {ns}") }),
        Granularity::Workload => match workload(cluster, ns, pod) {
            Ok(w) => {
                Ok(Target::Pods { namespace, selector: Some(w.selector.clone()), label: format!("{ns}/{}", w.id()) })
            }
            Err(why) => Err((format!("{ns}/{pod}"), why)),
        },
    }
}

fn policy(s: &Subject, r: &Rules) -> Policy {
    let mut annotations = Map::new();
    annotations.insert("weavice.io/generated-by".into(), json!("weavice-policy"));
    let mut spec = Map::new();
    let selector = match s {
        Subject::Namespace(_) => json!({}),
        Subject::Workload(w) => json!(w.selector),
    };
    spec.insert("podSelector".into(), selector);
    spec.insert("policyTypes".into(), json!(["Ingress", "Egress"]));
    let mut evidence_bytes = 0;
    let mut evidence_omitted = 0;
    for (side, peers_key, rules) in [("ingress", "from", &r.ingress), ("egress", "to", &r.egress)] {
        let mut list = Vec::new();
        for (i, (target, (ports, evidence))) in rules.iter().enumerate() {
            list.push(json!({ peers_key: [peer(target)], "ports": port_list(ports) }));
            if let Some(e) = evidence {
                let label = match target {
                    Target::Pods { label, .. } => label.clone(),
                    Target::Address(ip) => ip.to_string(),
                };
                let flows = if e.flows == 1 { "1 flow".to_string() } else { format!("{} flows", e.flows) };
                let text = format!("{label}: {flows}, first {}, last {}", e.first, e.last);
                // the API server takes 256 KiB of annotations in all
                evidence_bytes += text.len() + 32;
                if evidence_bytes > EVIDENCE_BYTES {
                    evidence_omitted += 1;
                    continue;
                }
                annotations.insert(format!("weavice.io/{side}-{}", i + 1), json!(text));
            }
        }
        if !list.is_empty() {
            spec.insert(side.into(), Value::Array(list));
        }
    }
    if evidence_omitted > 0 {
        annotations.insert(
            "weavice.io/evidence-omitted".into(),
            json!(format!("{evidence_omitted} rules (annotations are capped)")),
        );
    }
    let value = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": s.name(),
            "namespace": s.namespace(),
            "labels": {"app.kubernetes.io/managed-by": "weavice-policy"},
            "annotations": annotations,
        },
        "spec": spec,
    });
    Policy { namespace: s.namespace().to_string(), name: s.name(), value }
}

fn peer(t: &Target) -> Value {
    match t {
        Target::Address(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            json!({"ipBlock": {"cidr": format!("{ip}/{bits}")}})
        }
        Target::Pods { namespace, selector, .. } => {
            let mut p = Map::new();
            if let Some(ns) = namespace {
                p.insert("namespaceSelector".into(), json!({"matchLabels": {"kubernetes.io/metadata.name": ns}}));
            }
            if let Some(sel) = selector {
                p.insert("podSelector".into(), json!(sel));
            } else if namespace.is_none() {
                p.insert("podSelector".into(), json!({}));
            }
            Value::Object(p)
        }
    }
}

/// Ports per protocol, runs of consecutive ports as one `port`..`endPort`.
fn port_list(ports: &BTreeSet<(Protocol, u16)>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut run: Option<(Protocol, u16, u16)> = None;
    let flush = |run: Option<(Protocol, u16, u16)>, out: &mut Vec<Value>| {
        if let Some((p, from, to)) = run {
            let mut v = json!({"protocol": p.to_string(), "port": from});
            if to > from {
                v["endPort"] = json!(to);
            }
            out.push(v);
        }
    };
    for &(p, port) in ports {
        match &mut run {
            Some((rp, _, to)) if *rp == p && u32::from(*to) + 1 == u32::from(port) => *to = port,
            _ => {
                flush(run.take(), &mut out);
                run = Some((p, port, port));
            }
        }
    }
    flush(run, &mut out);
    out
}

/// A valid object name: lower case, `[a-z0-9.-]`, at most 253 characters
/// (a long one cut, with a hash of the whole so that two stay apart).
fn dns_name(s: &str) -> String {
    let n: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    let n = if n.len() > 253 { format!("{}-{:08x}", &n[..243], hash(s)) } else { n };
    n.trim_end_matches(['-', '.']).to_string()
}

fn hash(s: &str) -> u32 {
    // FNV-1a: the same in every build, unlike the std hasher
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}
