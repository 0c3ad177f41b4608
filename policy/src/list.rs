//! `weavice-policy list`: the observed connections, numbered, as a table or
//! as JSON (`{id, from, to, protocol, port, flows, firstSeen, lastSeen}`,
//! and `via` when the client asked for a Service).

use crate::cluster::Cluster;
use crate::connections::{Connection, Peer};
use serde_json::{json, Map, Value};

/// One end: `{namespace, pod, workload, ip}` as far as known, `{ip}` for an
/// address no pod held.
pub fn end(peer: &Peer, cluster: Option<&Cluster>) -> Value {
    let mut v = Map::new();
    if let Some((ns, name)) = peer.pod() {
        v.insert("namespace".into(), json!(ns));
        v.insert("pod".into(), json!(name));
        if let Some(w) = cluster.and_then(|c| c.workload(ns, name).ok()) {
            v.insert("workload".into(), json!(w.id()));
        }
    }
    v.insert("ip".into(), json!(peer.ip().to_string()));
    Value::Object(v)
}

pub fn json(connections: &[Connection], cluster: Option<&Cluster>) -> Value {
    let all = connections.iter().map(|c| {
        let mut v = json!({
            "id": c.id,
            "from": end(&c.key.client, cluster),
            "to": end(&c.key.server, cluster),
            "protocol": c.key.protocol.to_string(),
            "port": if c.key.protocol.has_ports() { json!(c.key.port) } else { Value::Null },
            "flows": c.evidence.flows,
            "firstSeen": c.evidence.first,
            "lastSeen": c.evidence.last,
        });
        if let Some(via) = c.key.via {
            v["via"] = json!({"ip": via.ip().to_string(), "port": via.port()});
            if let Some(s) = cluster.and_then(|c| c.service(via)) {
                v["via"]["service"] = json!(s);
            }
        }
        v
    });
    Value::Array(all.collect())
}

/// `namespace/pod (workload)` or the address.
pub fn label(v: &Value) -> String {
    match (v["namespace"].as_str(), v["pod"].as_str()) {
        (Some(ns), Some(pod)) => match v["workload"].as_str() {
            Some(w) => format!("{ns}/{pod} ({w})"),
            None => format!("{ns}/{pod}"),
        },
        _ => v["ip"].as_str().unwrap_or_default().to_string(),
    }
}

pub fn text(listed: &Value) -> String {
    let rows: Vec<[String; 7]> = listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let port = port(c);
            [
                c["id"].to_string(),
                label(&c["from"]),
                label(&c["to"]),
                c["protocol"].as_str().unwrap_or_default().to_string(),
                port,
                c["flows"].to_string(),
                format!("{} .. {}", short(&c["firstSeen"]), short(&c["lastSeen"])),
            ]
        })
        .collect();
    let header = ["ID", "FROM", "TO", "PROTO", "PORT", "FLOWS", "SEEN"].map(String::from);
    let mut widths = [0; 7];
    for r in rows.iter().chain([&header]) {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// A listed connection's port: `8080 (via shop/api 10.96.0.10:80)`, `-`
/// for ICMP.
pub fn port(c: &Value) -> String {
    match (&c["port"], &c["via"]) {
        (Value::Null, _) => "-".to_string(),
        (p, Value::Null) => p.to_string(),
        (p, via) => {
            let name = via["service"].as_str().map(|s| format!("{s} ")).unwrap_or_default();
            format!("{p} (via {name}{})", sock(via))
        }
    }
}

fn sock(via: &Value) -> String {
    let ip = via["ip"].as_str().unwrap_or_default();
    if ip.contains(':') {
        format!("[{ip}]:{}", via["port"])
    } else {
        format!("{ip}:{}", via["port"])
    }
}

/// A record time to the second: `2026-11-28 10:00:00`.
pub fn short(t: &Value) -> String {
    let t = t.as_str().unwrap_or_default();
    t.get(..19).map(|s| s.replace('T', " ")).unwrap_or_else(|| t.to_string())
}
