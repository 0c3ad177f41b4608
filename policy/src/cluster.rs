//! `--cluster FILE`: what `kubectl get pods,namespaces,deployments,
//! replicasets,statefulsets,daemonsets,services -A -o json` prints (a
//! `List`). It gives each pod its workload and the selector that picks the
//! workload's pods: the owner's own selector (a Deployment's through its
//! ReplicaSet), never per-revision labels; a bare pod's own labels.

use crate::error::{bad, Error, Result};
use crate::netpol::evaluate;
use crate::netpol::model::Protocol;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Labels that differ between revisions or replicas of one workload: a
/// selector on them breaks at the next rollout.
/// Also labels that differ between pods of one workload.
const PER_REVISION: [&str; 10] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index",
    "job-completion-index",
    "rollouts-pod-template-hash",
];

/// Labels that name one run of a CronJob.
const PER_RUN: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];

/// A label selector as the API spells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// What owns a pod, and how to select its pods.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub namespace: String,
    /// `deployment`, `statefulset`, `daemonset`, `replicaset`, `job`, or
    /// `pod` for a bare pod.
    pub kind: String,
    pub name: String,
    pub selector: Selector,
}

impl Workload {
    /// `deployment/api`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

#[derive(Deserialize)]
struct List {
    items: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    owner_references: Vec<Owner>,
}

#[derive(Deserialize, Clone)]
struct Owner {
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

struct Controller {
    selector: Option<Selector>,
    owner: Option<Owner>,
}

/// What the evaluator needs of a pod besides its labels.
#[derive(Default)]
struct PodSpec {
    ports: Vec<(String, u16, Protocol)>,
    host_ip: Option<IpAddr>,
}

#[derive(Default)]
pub struct Cluster {
    pods: HashMap<(String, String), Meta>,
    specs: HashMap<(String, String), PodSpec>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Pod addresses (not host-network pods, which share their node's).
    by_ip: HashMap<IpAddr, (String, String)>,
    /// (kind, namespace, name): selector and owner.
    controllers: HashMap<(String, String, String), Controller>,
    /// Service (ClusterIP, port) to namespace/name.
    services: HashMap<SocketAddr, String>,
}

impl Cluster {
    pub fn load(path: &Path) -> Result<Cluster> {
        if path.is_dir() {
            return Err(bad(format!("--cluster {}: a directory, not the file kubectl wrote", path.display())));
        }
        let text = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                bad(format!("--cluster {}: {e}", path.display()))
            }
            _ => Error::io(path)(e),
        })?;
        Cluster::parse(&text).map_err(|e| bad(format!("--cluster {}: {e}", path.display())))
    }

    pub fn parse(text: &[u8]) -> std::result::Result<Cluster, String> {
        let hint = "expected the JSON of `kubectl get pods,namespaces,deployments,replicasets,statefulsets,daemonsets,services -A -o json`";
        let list: List = serde_json::from_slice(text).map_err(|e| format!("{e}; {hint}"))?;
        let mut c = Cluster::default();
        for (i, item) in list.items.iter().enumerate() {
            let kind = item["kind"].as_str().ok_or_else(|| format!("items[{i}] has no kind; {hint}"))?;
            let meta: Meta = serde_json::from_value(item["metadata"].clone())
                .map_err(|e| format!("items[{i}] ({kind}) metadata: {e}"))?;
            if meta.name.is_empty() {
                return Err(format!("items[{i}] ({kind}) has no metadata.name"));
            }
            let selector = |at: &Value| -> std::result::Result<Option<Selector>, String> {
                if at.is_null() {
                    return Ok(None);
                }
                serde_json::from_value(at.clone())
                    .map(Some)
                    .map_err(|e| format!("{kind} {}: spec.selector: {e}", meta.name))
            };
            match kind {
                "Pod" => {
                    let status = &item["status"];
                    // host-network pods share their node's address; finished ones
                    // keep an address another pod may hold now
                    let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
                    if item["spec"]["hostNetwork"] != Value::Bool(true) && !finished {
                        let ips = status["podIPs"].as_array().into_iter().flatten().map(|p| &p["ip"]);
                        for ip in ips.chain([&status["podIP"]]).filter_map(|v| v.as_str()?.parse().ok()) {
                            c.by_ip.insert(ip, (meta.namespace.clone(), meta.name.clone()));
                        }
                    }
                    let mut spec =
                        PodSpec { host_ip: status["hostIP"].as_str().and_then(|ip| ip.parse().ok()), ports: vec![] };
                    let containers = item["spec"]["containers"].as_array().into_iter().flatten();
                    for p in containers.flat_map(|c| c["ports"].as_array().into_iter().flatten()) {
                        let (Some(name), Some(number)) =
                            (p["name"].as_str(), p["containerPort"].as_u64().and_then(|n| u16::try_from(n).ok()))
                        else {
                            continue;
                        };
                        let protocol = p["protocol"].as_str().map_or(Some(Protocol::TCP), Protocol::parse);
                        if let Some(protocol) = protocol {
                            spec.ports.push((name.to_string(), number, protocol));
                        }
                    }
                    c.specs.insert((meta.namespace.clone(), meta.name.clone()), spec);
                    c.pods.insert((meta.namespace.clone(), meta.name.clone()), meta);
                }
                "Namespace" => {
                    c.namespaces.insert(meta.name.clone(), meta.labels.clone());
                }
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => {
                    let selector = selector(&item["spec"]["selector"])?;
                    let owner = controller_of(&meta.owner_references);
                    c.controllers.insert(
                        (kind.to_string(), meta.namespace.clone(), meta.name.clone()),
                        Controller { selector, owner },
                    );
                }
                "Service" => {
                    let ips = item["spec"]["clusterIPs"].as_array().into_iter().flatten();
                    let ips: Vec<IpAddr> =
                        ips.chain([&item["spec"]["clusterIP"]]).filter_map(|v| v.as_str()?.parse().ok()).collect();
                    for port in item["spec"]["ports"].as_array().into_iter().flatten() {
                        let Some(port) = port["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else { continue };
                        for ip in &ips {
                            c.services.insert(SocketAddr::new(*ip, port), format!("{}/{}", meta.namespace, meta.name));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Pod `namespace/name` as the evaluator sees it: from the file, or, for
    /// a pod gone since, with its workload's selector labels (what any pod of
    /// the workload carries). `Err` says why neither is known.
    pub fn eval_pod(&self, namespace: &str, name: &str) -> std::result::Result<evaluate::Pod, String> {
        let key = (namespace.to_string(), name.to_string());
        let (labels, spec) = match self.pods.get(&key) {
            Some(meta) => (meta.labels.clone(), self.specs.get(&key)),
            None => (labels_for(&self.workload_by_name(namespace, name)?.selector), None),
        };
        Ok(evaluate::Pod {
            namespace: namespace.into(),
            name: name.into(),
            labels,
            ports: spec.map(|s| s.ports.clone()).unwrap_or_default(),
            host_ip: spec.and_then(|s| s.host_ip),
        })
    }

    /// The address pod `namespace/name` holds, per the file.
    pub fn ip_of(&self, namespace: &str, name: &str) -> Option<IpAddr> {
        let mut ips: Vec<IpAddr> =
            self.by_ip.iter().filter(|(_, (ns, n))| ns == namespace && n == name).map(|(ip, _)| *ip).collect();
        ips.sort();
        ips.into_iter().next()
    }

    /// Every pod of the file, as the evaluator sees it.
    pub fn eval_pods(&self) -> Vec<evaluate::Pod> {
        let mut keys: Vec<&(String, String)> = self.pods.keys().collect();
        keys.sort();
        keys.into_iter().filter_map(|(ns, n)| self.eval_pod(ns, n).ok()).collect()
    }

    /// Namespace labels for the evaluator.
    pub fn namespaces(&self) -> evaluate::Namespaces {
        evaluate::Namespaces(self.namespaces.clone())
    }

    /// The Service at `addr`, as `namespace/name`.
    pub fn service(&self, addr: SocketAddr) -> Option<&str> {
        self.services.get(&addr).map(String::as_str)
    }

    /// The pod that holds `ip` now (not joined by time: for addresses no
    /// journal here recorded).
    pub fn pod_at(&self, ip: IpAddr) -> Option<(&str, &str)> {
        self.by_ip.get(&ip).map(|(ns, n)| (ns.as_str(), n.as_str()))
    }

    /// The workload of pod `namespace/name`, or why it has none that a
    /// selector can pick.
    pub fn workload(&self, namespace: &str, name: &str) -> std::result::Result<Workload, String> {
        let Some(pod) = self.pods.get(&(namespace.to_string(), name.to_string())) else {
            return self.workload_by_name(namespace, name);
        };
        let make = |kind: &str, wname: &str, selector: Selector| Workload {
            namespace: namespace.to_string(),
            kind: kind.to_lowercase(),
            name: wname.to_string(),
            selector,
        };
        let Some(owner) = controller_of(&pod.owner_references) else {
            return own_labels(&pod.labels).map(|s| make("pod", name, s));
        };
        let key = (owner.kind.clone(), namespace.to_string(), owner.name.clone());
        match (owner.kind.as_str(), self.controllers.get(&key)) {
            // a Deployment's pods are its ReplicaSet's: select by the Deployment's selector
            ("ReplicaSet", Some(rs)) => {
                if let Some(d) = rs.owner.as_ref().filter(|o| o.kind == "Deployment") {
                    if let Some(sel) = self.selector_of("Deployment", namespace, &d.name) {
                        return Ok(make("Deployment", &d.name, sel));
                    }
                    return own_labels(&pod.labels).map(|s| make("Deployment", &d.name, s));
                }
                let sel = rs.selector.clone().map(without_revisions).filter(|s| *s != Selector::default());
                sel.map(|s| make("ReplicaSet", &owner.name, s))
                    .ok_or_else(|| format!("ReplicaSet {} has no selector", owner.name))
            }
            // a ReplicaSet the file lacks: its Deployment by the pod-template-hash suffix
            ("ReplicaSet", None) => {
                let deployment = pod
                    .labels
                    .get("pod-template-hash")
                    .and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
                    .map(str::to_string);
                match deployment {
                    Some(d) => match self.selector_of("Deployment", namespace, &d) {
                        Some(s) => Ok(make("Deployment", &d, s)),
                        None => own_labels(&pod.labels).map(|s| make("Deployment", &d, s)),
                    },
                    None => own_labels(&pod.labels).map(|s| make("ReplicaSet", &owner.name, s)),
                }
            }
            ("StatefulSet" | "DaemonSet", Some(c)) => match &c.selector {
                Some(s) => Ok(make(&owner.kind, &owner.name, s.clone())),
                None => Err(format!("{} {} has no selector", owner.kind, owner.name)),
            },
            // a CronJob's run (`<cronjob>-<scheduled minute>`): the run's labels go
            ("Job", job) => {
                let cron =
                    job.and_then(|j| j.owner.clone()).filter(|o| o.kind == "CronJob").map(|o| o.name).or_else(|| {
                        let (cron, minute) = owner.name.rsplit_once('-')?;
                        (minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit())).then(|| cron.to_string())
                    });
                match cron {
                    Some(cron) => {
                        let mut labels = pod.labels.clone();
                        labels.retain(|k, _| !PER_RUN.contains(&k.as_str()));
                        own_labels(&labels).map(|s| make("CronJob", &cron, s))
                    }
                    // a Job's own selector is per run (controller-uid): its pods' stable labels
                    None => own_labels(&pod.labels).map(|s| make("Job", &owner.name, s)),
                }
            }
            (kind, _) => own_labels(&pod.labels).map(|s| make(kind, &owner.name, s)),
        }
    }

    fn selector_of(&self, kind: &str, namespace: &str, name: &str) -> Option<Selector> {
        self.controllers
            .get(&(kind.to_string(), namespace.to_string(), name.to_string()))
            .and_then(|c| c.selector.clone())
    }

    /// A pod gone from the cluster (its flows are older than the file): its
    /// workload from its name, as controllers name pods
    /// (`<deployment>-<hash>-<5>` also for a revision whose ReplicaSet is gone).
    fn workload_by_name(&self, namespace: &str, name: &str) -> std::result::Result<Workload, String> {
        let mut found = Vec::new();
        for ((kind, ns, cname), c) in &self.controllers {
            let Some(suffix) = name.strip_prefix(cname.as_str()).and_then(|s| s.strip_prefix('-')) else { continue };
            let random = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric());
            let fits = match kind.as_str() {
                "StatefulSet" => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
                "ReplicaSet" | "DaemonSet" => random(suffix),
                "Deployment" => suffix.split_once('-').is_some_and(|(hash, r)| {
                    !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_alphanumeric()) && random(r)
                }),
                _ => false,
            };
            if ns != namespace || !fits {
                continue;
            }
            let resolved = match (kind.as_str(), &c.owner) {
                ("ReplicaSet", Some(d)) if d.kind == "Deployment" => {
                    let dkey = ("Deployment".to_string(), namespace.to_string(), d.name.clone());
                    self.controllers
                        .get(&dkey)
                        .and_then(|c| c.selector.clone())
                        .map(|s| ("deployment", d.name.clone(), s))
                }
                ("ReplicaSet", _) => {
                    c.selector.clone().map(without_revisions).map(|s| ("replicaset", cname.clone(), s))
                }
                ("Deployment", _) => c.selector.clone().map(|s| ("deployment", cname.clone(), s)),
                _ => c
                    .selector
                    .clone()
                    .map(|s| (if kind == "StatefulSet" { "statefulset" } else { "daemonset" }, cname.clone(), s)),
            };
            if let Some((kind, wname, selector)) = resolved {
                found.push(Workload { namespace: namespace.into(), kind: kind.into(), name: wname, selector });
            }
        }
        found.sort();
        found.dedup();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err("not in the cluster file, and no workload there names pods like it".into()),
            _ => Err("not in the cluster file, and more than one workload there names pods like it".into()),
        }
    }
}

/// Labels a selector picks: what every pod of its workload carries.
fn labels_for(s: &Selector) -> BTreeMap<String, String> {
    let mut labels = s.match_labels.clone();
    for r in &s.match_expressions {
        match (r.operator.as_str(), r.values.first()) {
            ("In", Some(v)) => {
                labels.insert(r.key.clone(), v.clone());
            }
            ("Exists", _) => {
                labels.entry(r.key.clone()).or_default();
            }
            _ => {}
        }
    }
    labels
}

fn controller_of(owners: &[Owner]) -> Option<Owner> {
    owners.iter().find(|o| o.controller == Some(true)).or(owners.first()).cloned()
}

fn without_revisions(mut s: Selector) -> Selector {
    s.match_labels.retain(|k, _| !PER_REVISION.contains(&k.as_str()));
    s.match_expressions.retain(|r| !PER_REVISION.contains(&r.key.as_str()));
    s
}

fn own_labels(labels: &BTreeMap<String, String>) -> std::result::Result<Selector, String> {
    let s = without_revisions(Selector { match_labels: labels.clone(), match_expressions: vec![] });
    if s.match_labels.is_empty() {
        return Err("has no labels to select it by (besides per-revision ones)".into());
    }
    Ok(s)
}
