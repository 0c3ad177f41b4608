//! `weavice-agent sockets`: for each weavice pod on the node (from the
//! state dir's attachments), its listening and established TCP and UDP
//! sockets, read with sock_diag inside its network namespace (setns on a
//! dedicated thread; no nsenter, no netstat). With policies and the cluster
//! file: listeners no ingress rule reaches, ports a policy opens where
//! nothing listens, and listeners open to all because no policy isolates
//! the pod. The `nsenter -t PID -n netstat` check, for every pod at once.

use datapath::attachment::Attachment;
use datapath::netns::NetNs;
use datapath::network;
use datapath::sockets::{self, Listed, State, Transport};
use policy::cluster::Cluster;
use policy::netpol::evaluate::{admits_port, ingress_rules, Pod};
use policy::netpol::model::{NetworkPolicy, PortRef, Protocol};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SocketsError {
    /// Wrong input: exit 2.
    #[error("{0}")]
    Input(String),
    /// The node's state could not be read: exit 1.
    #[error("{0}")]
    Node(String),
}

impl SocketsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            SocketsError::Input(_) => 2,
            SocketsError::Node(_) => 1,
        }
    }
}

/// What the policy check needs.
pub struct Policies {
    pub policies: Vec<NetworkPolicy>,
    pub cluster: Cluster,
}

impl Policies {
    /// None without --policies; the two flags go together.
    pub fn load(policies: &[PathBuf], cluster: Option<&PathBuf>) -> Result<Option<Policies>, SocketsError> {
        let cluster = match (policies.is_empty(), cluster) {
            (true, None) => return Ok(None),
            (false, Some(c)) => c,
            _ => {
                return Err(SocketsError::Input(
                    "--policies and --cluster go together: the pods' labels are in the cluster file".into(),
                ))
            }
        };
        let error = |e: policy::error::Error| match e.exit_code() {
            2 => SocketsError::Input(e.to_string()),
            _ => SocketsError::Node(e.to_string()),
        };
        let policies = policy::netpol::load::policies(policies).map_err(error)?;
        Ok(Some(Policies { policies, cluster: Cluster::load(cluster).map_err(error)? }))
    }
}

/// A pod attached now.
struct Attached {
    namespace: String,
    name: String,
    netns: String,
    ips: Vec<String>,
}

/// The named pods attached now, from the state dir: one entry a pod (its
/// interfaces share one namespace).
fn attached(state_dir: &str, namespace: Option<&str>) -> Result<Vec<Attached>, SocketsError> {
    let networks = network::recorded(state_dir).map_err(|e| SocketsError::Node(e.to_string()))?;
    if networks.is_empty() {
        return Err(SocketsError::Input(format!(
            "no weavice network in {state_dir} (is --state-dir the networks' stateDir?)"
        )));
    }
    let mut out: BTreeMap<(String, String), Attached> = BTreeMap::new();
    for (name, _) in networks {
        for a in Attachment::list(state_dir, &name).into_iter().flatten() {
            let Some(pod) = a.pod.clone().filter(|p| namespace.is_none_or(|ns| p.namespace == ns)) else { continue };
            let entry = out.entry((pod.namespace.clone(), pod.name.clone())).or_insert_with(|| Attached {
                namespace: pod.namespace,
                name: pod.name,
                netns: a.netns.clone(),
                ips: vec![],
            });
            entry.ips.extend(a.pod_ips().iter().map(|ip| ip.to_string()));
        }
    }
    Ok(out.into_values().collect())
}

/// Every pod's sockets and findings, as JSON.
pub fn report(state_dir: &str, namespace: Option<&str>, policies: Option<&Policies>) -> Result<Value, SocketsError> {
    let mut pods = Vec::new();
    for a in attached(state_dir, namespace)? {
        let mut entry = json!({"namespace": a.namespace, "pod": a.name, "netns": a.netns, "ips": a.ips});
        // a pod's namespace may be gone or unreadable: said, not fatal
        let listed = NetNs::open(&a.netns)
            .and_then(|ns| ns.run(|| Ok::<_, datapath::DatapathError>((sockets::list()?, sockets::ephemeral_ports()))))
            .and_then(|r| r);
        let (listed, ephemeral) = match listed {
            Ok(l) => l,
            Err(e) => {
                entry["error"] = json!(format!("cannot read its sockets: {e}"));
                pods.push(entry);
                continue;
            }
        };
        entry["sockets"] = Value::Array(listed.iter().map(socket_json).collect());
        if let Some(p) = policies {
            entry["findings"] = json!(match p.cluster.eval_pod(&a.namespace, &a.name) {
                Ok(pod) => findings(&pod, &listed, &ephemeral, &p.policies),
                Err(e) => vec![format!("not checked: {e}")],
            });
        }
        pods.push(entry);
    }
    Ok(Value::Array(pods))
}

fn socket_json(s: &Listed) -> Value {
    json!({
        "protocol": match s.transport { Transport::Tcp => "TCP", Transport::Udp => "UDP" },
        "state": match s.state { State::Listening => "LISTEN", State::Established => "ESTABLISHED" },
        "local": s.local.to_string(),
        "remote": s.remote.to_string(),
    })
}

/// What the policies say of this pod's listeners.
fn findings(pod: &Pod, listed: &[Listed], ephemeral: &RangeInclusive<u16>, policies: &[NetworkPolicy]) -> Vec<String> {
    let listeners: Vec<(Protocol, u16)> = {
        let mut l: Vec<(Protocol, u16)> = listed
            .iter()
            // loopback listeners are for the pod itself; an unconnected UDP
            // socket on an ephemeral port is a client's
            .filter(|s| s.state == State::Listening && !s.local.ip().is_loopback())
            .filter(|s| s.transport == Transport::Tcp || !ephemeral.contains(&s.local.port()))
            .map(|s| (if s.transport == Transport::Tcp { Protocol::TCP } else { Protocol::UDP }, s.local.port()))
            .collect();
        l.sort();
        l.dedup();
        l
    };
    let mut out = Vec::new();
    let Some(rules) = ingress_rules(policies, pod) else {
        for (proto, port) in &listeners {
            out.push(format!("{proto} {port} is open to every peer: no policy isolates the pod for ingress"));
        }
        return out;
    };
    for (proto, port) in &listeners {
        if !rules.iter().any(|(_, r)| admits_port(r, pod, *proto, *port)) {
            out.push(format!("{proto} {port} listens, but no ingress rule admits it"));
        }
    }
    for (id, rule) in &rules {
        for p in rule.ports.iter().flatten() {
            let range = match &p.port {
                None => continue,
                Some(PortRef::Number(n)) => *n..=p.end_port.unwrap_or(*n),
                Some(PortRef::Name(name)) => {
                    match pod.ports.iter().find(|(n, _, proto)| n == name && *proto == p.protocol) {
                        Some((_, n, _)) => *n..=*n,
                        None => {
                            out.push(format!("{id} names the port {name:?}, which the pod does not define"));
                            continue;
                        }
                    }
                }
            };
            if !listeners.iter().any(|(proto, port)| *proto == p.protocol && range.contains(port)) {
                let ports = if range.start() == range.end() {
                    range.start().to_string()
                } else {
                    format!("{}-{}", range.start(), range.end())
                };
                out.push(format!("{id} admits {} {ports}, where nothing listens", p.protocol));
            }
        }
    }
    out
}

pub fn text(report: &Value) -> String {
    let mut out = String::new();
    for p in report.as_array().into_iter().flatten() {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let ips: Vec<String> = p["ips"].as_array().into_iter().flatten().map(s).collect();
        out += &format!("{}/{} ({})\n", s(&p["namespace"]), s(&p["pod"]), ips.join(", "));
        if let Some(e) = p["error"].as_str() {
            out += &format!("  {e}\n");
            continue;
        }
        for k in p["sockets"].as_array().into_iter().flatten() {
            let remote = if k["state"] == "ESTABLISHED" { format!(" <-> {}", s(&k["remote"])) } else { String::new() };
            out += &format!("  {} {:<11} {}{remote}\n", s(&k["protocol"]), s(&k["state"]), s(&k["local"]));
        }
        for f in p["findings"].as_array().into_iter().flatten() {
            out += &format!("  ! {}\n", s(f));
        }
    }
    out
}
