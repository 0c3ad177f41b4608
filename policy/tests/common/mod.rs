//! Journals and cluster files written by the tests.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("wv-policy-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `lines` as a journal file `rel`.
    pub fn journal(&self, rel: &str, lines: &[Value]) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn file(&self, rel: &str, v: &Value) -> PathBuf {
        let path = self.path(rel);
        std::fs::write(&path, v.to_string()).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // kept for a look at what a test wrote
        if std::env::var_os("WEAVICE_KEEP_TEST_DIRS").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `2026-11-28T10:MM:SS.000000000Z`
pub fn t(min: u32, sec: u32) -> String {
    format!("2026-11-28T10:{min:02}:{sec:02}.000000000Z")
}

/// A pod record: `event` add or del of `ns/name` holding `ips`.
pub fn pod(time: &str, node: &str, event: &str, id: &str, ns: &str, name: &str, ips: &[&str]) -> Value {
    json!({"v": 1, "time": time, "kind": "pod", "event": event, "node": node, "network": "podnet",
        "container_id": id, "ifname": "eth0", "netns": "/run/netns/x",
        "pod": {"namespace": ns, "pod_name": name}, "ips": ips})
}

/// A journal file `rel` of pods `ns/a` (10.22.0.2) and `ns/b` (10.22.0.3)
/// and one TCP connection from a to b's port 80.
pub fn pair(d: &Dir, rel: &str, ns: &str) -> String {
    let lines = [
        pod(&t(0, 0), "n", "add", "c1", ns, "a", &["10.22.0.2"]),
        pod(&t(0, 0), "n", "add", "c2", ns, "b", &["10.22.0.3"]),
        flow(
            "n",
            1,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", 1000), to: ("10.22.0.3", 80), via: None },
        ),
    ];
    d.journal(rel, &lines).to_string_lossy().into_owned()
}

pub struct F<'a> {
    pub proto: &'a str,
    pub from: (&'a str, u16),
    pub to: (&'a str, u16),
    /// The Service asked for, when DNAT made `to` of it.
    pub via: Option<(&'a str, u16)>,
}

/// An `end` flow record (no pod names: the tool joins them) on `node`.
pub fn flow(node: &str, id: u32, start: &str, end: &str, f: F) -> Value {
    let (dst, dport) = f.via.unwrap_or(f.to);
    let mut v = json!({"v": 1, "time": end, "kind": "flow", "event": "end", "node": node, "conntrack_id": id,
        "IP": {"source": f.from.0, "destination": f.to.0, "ipVersion": if f.from.0.contains(':') { "IPv6" } else { "IPv4" }},
        "l4": {f.proto: {"source_port": f.from.1, "destination_port": f.to.1}},
        "is_reply": false,
        "original": {"source": f.from.0, "destination": dst, "source_port": f.from.1, "destination_port": dport},
        "reply": {"source": f.to.0, "destination": f.from.0, "source_port": f.to.1, "destination_port": f.from.1},
        "first_seen": start, "last_seen": end, "packets": 4, "bytes": 300, "reply_packets": 3, "reply_bytes": 200});
    if let Some((ip, port)) = f.via {
        v["via"] = json!({"ip": ip, "port": port});
    }
    v
}

/// A kubectl `List` of `items`.
pub fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
}

/// A Deployment `name` selecting `app: name`, its ReplicaSet, and `pods`
/// (names) of it with `ips`.
pub fn deployment(ns: &str, name: &str, pods: &[(&str, &str)]) -> Vec<Value> {
    let hash = "5d8f7c9b4";
    let rs = format!("{name}-{hash}");
    let mut items = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs, "namespace": ns,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "d", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": name, "pod-template-hash": hash}}}}),
    ];
    for (pod, ip) in pods {
        items.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": ns,
            "labels": {"app": name, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}));
    }
    items
}

/// A StatefulSet `name` selecting `app: name` with pod `name-0` at `ip`.
pub fn statefulset(ns: &str, name: &str, ip: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}}}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{name}-0"), "namespace": ns,
            "labels": {"app": name, "controller-revision-hash": format!("{name}-6f9"), "statefulset.kubernetes.io/pod-name": format!("{name}-0")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": "s", "controller": true}]},
            "spec": {}, "status": {"podIP": ip}}),
    ]
}

pub fn service(ns: &str, name: &str, ip: &str, port: u16, target: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}],
            "selector": {"app": name}}})
}

/// Every policy file in `dir`, parsed, by file name.
pub fn policies(dir: &Path) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read_to_string(e.path()).unwrap();
        out.insert(e.file_name().to_string_lossy().into_owned(), serde_saphyr::from_str(&text).unwrap());
    }
    out
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_weavice-policy")
}

/// Runs weavice-policy; (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
