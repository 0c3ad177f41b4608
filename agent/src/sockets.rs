//! `weavice-agent sockets`: for each weavice pod on the node (from the
//! journal's pod records), its listening and established TCP and UDP
//! sockets, read with sock_diag inside its network namespace (setns on a
//! dedicated thread; no nsenter, no netstat). With policies and the cluster
//! file: listeners no ingress rule reaches, ports a policy opens where
//! nothing listens, and listeners open to all because no policy isolates
//! the pod. The `nsenter -t PID -n netstat` check, for every pod at once.

use datapath::netns::NetNs;
use datapath::sockets::{self, Listed, State, Transport};
use journal::read::{line, Line};
use journal::{PodEvent, PodRecord};
use policy::cluster::Cluster;
use policy::netpol::evaluate::{admits_port, ingress_rules, Pod};
use policy::netpol::model::{NetworkPolicy, PortRef, Protocol};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SocketsError {
    /// Wrong input: exit 2.
    #[error("{0}")]
    Input(String),
}

/// A pod attached now, as its last pod record says.
struct Attached {
    namespace: String,
    name: String,
    netns: String,
    ips: Vec<String>,
}

/// What the policy check needs.
pub struct Policies {
    pub policies: Vec<NetworkPolicy>,
    pub cluster: Cluster,
}

impl Policies {
    pub fn load(policies: &[PathBuf], cluster: Option<&PathBuf>) -> Result<Policies, SocketsError> {
        let Some(cluster) = cluster else {
            return Err(SocketsError::Input("--policies needs --cluster: the pods' labels are there".into()));
        };
        let input = |e: policy::error::Error| SocketsError::Input(e.to_string());
        Ok(Policies {
            policies: policy::netpol::load::policies(policies).map_err(input)?,
            cluster: Cluster::load(cluster).map_err(input)?,
        })
    }
}

/// The pods attached now: each container's last record is an ADD.
fn attached(state_dir: &str, namespace: Option<&str>) -> Result<Vec<Attached>, SocketsError> {
    let dir = journal::Journal::new(state_dir).dir().to_path_buf();
    let files = journal::rotate::files(&dir);
    if files.is_empty() {
        return Err(SocketsError::Input(format!(
            "no journal in {} (is --state-dir the networks' stateDir?)",
            dir.display()
        )));
    }
    let mut last: BTreeMap<(String, String), PodRecord> = BTreeMap::new();
    for f in files {
        let Ok(text) = std::fs::read(&f) else { continue };
        for l in text.split(|b| *b == b'\n') {
            if let Line::Record(r) = line::<PodRecord>(l, "pod") {
                last.insert((r.container_id.clone(), r.ifname.clone()), r);
            }
        }
    }
    let mut out: Vec<Attached> = last
        .into_values()
        .filter(|r| r.event == PodEvent::Add)
        .filter_map(|r| {
            let pod = r.pod?;
            Some(Attached { namespace: pod.namespace, name: pod.pod_name, netns: r.netns, ips: r.ips })
        })
        .filter(|a| namespace.is_none_or(|ns| a.namespace == ns))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Every pod's sockets and findings, as JSON.
pub fn report(state_dir: &str, namespace: Option<&str>, policies: Option<&Policies>) -> Result<Value, SocketsError> {
    let mut pods = Vec::new();
    for a in attached(state_dir, namespace)? {
        let mut entry = json!({"namespace": a.namespace, "pod": a.name, "netns": a.netns, "ips": a.ips});
        // a pod's namespace may be gone or unreadable: said, not fatal
        let listed = NetNs::open(&a.netns).and_then(|ns| ns.run(sockets::list)).and_then(|r| r);
        let listed = match listed {
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
                Ok(pod) => findings(&pod, &listed, &p.policies),
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
fn findings(pod: &Pod, listed: &[Listed], policies: &[NetworkPolicy]) -> Vec<String> {
    let listeners: Vec<(Protocol, u16)> = {
        let mut l: Vec<(Protocol, u16)> = listed
            .iter()
            // loopback listeners are for the pod itself
            .filter(|s| s.state == State::Listening && !s.local.ip().is_loopback())
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
