//! `weavice-policy explain`: the verdict for one connection, rule by rule.

use crate::cluster::Cluster;
use crate::error::{bad, Result};
use crate::netpol::evaluate::{self, Owned, Side, Verdict};
use crate::netpol::model::{NetworkPolicy, Peer, Protocol};
use serde_json::{json, Value};
use std::net::IpAddr;

/// `--from`/`--to`: `NS/POD` (the cluster file must know it) or an address
/// (a pod's, when a pod in the file holds it). A pod's address matters to
/// ipBlock peers: one the file does not give is asked for.
pub fn named(flag: &str, s: &str, cluster: &Cluster, policies: &[NetworkPolicy]) -> Result<Owned> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(match cluster.pod_at(ip) {
            Some((ns, name)) => {
                Owned::Pod(cluster.eval_pod(ns, name).map_err(|e| bad(format!("{flag} {s}: {e}")))?, ip)
            }
            None => Owned::Address(ip),
        });
    }
    let Some((ns, name)) = s.split_once('/').filter(|(ns, n)| !ns.is_empty() && !n.is_empty()) else {
        return Err(bad(format!("{flag} {s:?}: expected NAMESPACE/POD or an IP address")));
    };
    let pod = cluster
        .eval_pod(ns, name)
        .map_err(|e| bad(format!("{flag} {s}: the cluster file does not know this pod ({e})")))?;
    let blocks = policies.iter().flat_map(|p| p.ingress.iter().chain(&p.egress)).flat_map(|r| r.peers.iter().flatten());
    let ip = match (cluster.ip_of(ns, name), blocks.into_iter().any(|p| matches!(p, Peer::Block { .. }))) {
        (Some(ip), _) => ip,
        // no ipBlock to match it: the address does not matter
        (None, false) => IpAddr::from([0, 0, 0, 0]),
        (None, true) => {
            return Err(bad(format!(
                "{flag} {s}: the cluster file gives no address for this pod, and ipBlock peers need one: give its address instead"
            )))
        }
    };
    Ok(Owned::Pod(pod, ip))
}

/// `--port N|NAME`: a name is the destination pod's container port.
pub fn port(s: &str, protocol: Protocol, to: &Owned) -> Result<u16> {
    if let Ok(n) = s.parse::<u16>() {
        if n > 0 {
            return Ok(n);
        }
    }
    let Owned::Pod(pod, _) = to else {
        return Err(bad(format!("--port {s}: a port name needs a destination pod that defines it")));
    };
    pod.ports.iter().find(|(name, _, p)| name == s && *p == protocol).map(|(_, n, _)| *n).ok_or_else(|| {
        bad(format!("--port {s}: {}/{} has no {protocol} container port of that name", pod.namespace, pod.name))
    })
}

pub fn verdict(
    policies: &[NetworkPolicy],
    cluster: &Cluster,
    from: &Owned,
    to: &Owned,
    protocol: Protocol,
    port: u16,
) -> Verdict {
    evaluate::evaluate(policies, &cluster.namespaces(), from.end(), to.end(), protocol, port)
}

fn side(s: &Side) -> Value {
    json!({"isolated": s.isolated, "selectedBy": s.selected_by, "allowedBy": s.allowed_by})
}

pub fn json(v: &Verdict) -> Value {
    json!({"allowed": v.allowed, "egress": side(&v.egress), "ingress": side(&v.ingress), "reasons": v.reasons})
}

pub fn text(v: &Verdict, what: &str) -> String {
    let mut out = format!("{}: {what}\n", if v.allowed { "ALLOWED" } else { "DENIED" });
    for (name, s) in [("egress", &v.egress), ("ingress", &v.ingress)] {
        let state = match (s.isolated, s.allowed_by.is_empty()) {
            (false, _) => "not isolated".to_string(),
            (true, true) => format!("isolated by {}; no rule admits it", s.selected_by.join(", ")),
            (true, false) => format!("admitted by {}", s.allowed_by.join(", ")),
        };
        out += &format!("  {name}: {state}\n");
    }
    for r in &v.reasons {
        out += &format!("  - {r}\n");
    }
    out
}
