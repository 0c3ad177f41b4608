//! A NetworkPolicy evaluator for the tests, written from the API reference
//! and independent of weavice-policy: does a set of policies allow a
//! connection? Covers what standard policies use: podSelector,
//! namespaceSelector (matchLabels, matchExpressions), ipBlock with except,
//! numeric ports with protocol and endPort, policyTypes. Named ports are not
//! needed here and panic.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One end of a connection: a pod (its namespace's labels, its own, its
/// address) or an address outside the cluster.
#[derive(Debug, Clone)]
pub enum End {
    Pod { namespace: String, namespace_labels: BTreeMap<String, String>, labels: BTreeMap<String, String>, ip: IpAddr },
    Outside(IpAddr),
}

impl End {
    fn ip(&self) -> IpAddr {
        match self {
            End::Pod { ip, .. } | End::Outside(ip) => *ip,
        }
    }
}

/// Whether `policies` let `from` connect to `to` on `protocol`/`port`: the
/// source's egress and the destination's ingress must both allow it.
pub fn allowed(policies: &[Value], from: &End, to: &End, protocol: &str, port: u16) -> bool {
    side(policies, from, to, protocol, port, "Egress") && side(policies, to, from, protocol, port, "Ingress")
}

/// One direction: the policies that select `inside` for `kind` (Ingress or
/// Egress); none means not isolated, else one of their rules must admit
/// `peer`.
fn side(policies: &[Value], inside: &End, peer: &End, protocol: &str, port: u16, kind: &str) -> bool {
    let End::Pod { namespace, labels, .. } = inside else { return true };
    let selecting: Vec<&Value> = policies
        .iter()
        .filter(|p| p["metadata"]["namespace"].as_str() == Some(namespace))
        .filter(|p| selects(&p["spec"]["podSelector"], labels))
        .filter(|p| types(p).contains(&kind))
        .collect();
    if selecting.is_empty() {
        return true;
    }
    let (rules_key, peers_key) = if kind == "Egress" { ("egress", "to") } else { ("ingress", "from") };
    selecting.iter().any(|p| {
        p["spec"][rules_key].as_array().into_iter().flatten().any(|rule| {
            let peers = rule[peers_key].as_array().filter(|a| !a.is_empty());
            let peer_ok = peers.is_none_or(|peers| peers.iter().any(|pp| peer_matches(pp, peer, namespace)));
            let ports = rule["ports"].as_array().filter(|a| !a.is_empty());
            peer_ok && ports.is_none_or(|ports| ports.iter().any(|pt| port_matches(pt, protocol, port)))
        })
    })
}

fn types(p: &Value) -> Vec<&str> {
    match p["spec"]["policyTypes"].as_array() {
        Some(t) => t.iter().filter_map(Value::as_str).collect(),
        // an empty egress list makes no Egress policy, as Go decodes it
        None if p["spec"]["egress"].as_array().is_some_and(|e| !e.is_empty()) => vec!["Ingress", "Egress"],
        None => vec!["Ingress"],
    }
}

fn peer_matches(pp: &Value, peer: &End, policy_ns: &str) -> bool {
    if let Some(block) = pp.get("ipBlock") {
        let ip = peer.ip();
        let inside = |cidr: &Value| cidr.as_str().is_some_and(|c| cidr_contains(c, ip));
        return inside(&block["cidr"]) && !block["except"].as_array().into_iter().flatten().any(inside);
    }
    let End::Pod { namespace, namespace_labels, labels, .. } = peer else { return false };
    let ns_ok = match pp.get("namespaceSelector") {
        Some(sel) => selects(sel, namespace_labels),
        None => namespace == policy_ns,
    };
    let pod_ok = pp.get("podSelector").is_none_or(|sel| selects(sel, labels));
    ns_ok && pod_ok
}

fn port_matches(pt: &Value, protocol: &str, port: u16) -> bool {
    if pt["protocol"].as_str().unwrap_or("TCP") != protocol {
        return false;
    }
    match &pt["port"] {
        Value::Null => true,
        Value::Number(n) => {
            let from = n.as_u64().unwrap();
            let to = pt["endPort"].as_u64().unwrap_or(from);
            (from..=to).contains(&u64::from(port))
        }
        other => panic!("named ports are not evaluated here: {other}"),
    }
}

/// Whether a label selector picks `labels` (an empty selector picks all).
pub fn selects(sel: &Value, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let by_expressions = sel["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str().unwrap() {
            "In" => labels.get(key).is_some_and(|v| values.contains(&v.as_str())),
            "NotIn" => labels.get(key).is_none_or(|v| !values.contains(&v.as_str())),
            "Exists" => labels.contains_key(key),
            "DoesNotExist" => !labels.contains_key(key),
            op => panic!("operator {op}"),
        }
    });
    by_labels && by_expressions
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let bits: u32 = bits.parse().unwrap();
    match (net.parse::<IpAddr>().unwrap(), ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, app: &str, ip: &str) -> End {
        End::Pod {
            namespace: ns.into(),
            namespace_labels: [("kubernetes.io/metadata.name".to_string(), ns.to_string())].into(),
            labels: [("app".to_string(), app.to_string())].into(),
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn the_evaluator_follows_the_api_reference() {
        let deny_all =
            json!({"metadata": {"namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
        let allow_b = json!({"metadata": {"namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"app": "b"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}},
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}}],
                "ports": [{"port": 80, "endPort": 81}]}]}});
        let (xa, xb, ya) = (pod("x", "a", "10.0.0.1"), pod("x", "b", "10.0.0.2"), pod("y", "a", "10.0.1.1"));
        assert!(allowed(&[], &xa, &xb, "TCP", 80), "no policy: allowed");
        assert!(!allowed(std::slice::from_ref(&deny_all), &xa, &xb, "TCP", 80));
        assert!(allowed(std::slice::from_ref(&allow_b), &ya, &xb, "TCP", 81), "ingress only: egress of y not isolated");
        assert!(!allowed(std::slice::from_ref(&allow_b), &ya, &xb, "UDP", 80), "protocol defaults to TCP");
        assert!(!allowed(std::slice::from_ref(&allow_b), &xa, &xb, "TCP", 80), "both selectors: namespace y only");
        assert!(!allowed(&[allow_b, deny_all.clone()], &ya, &xb, "TCP", 82));
        let out = json!({"metadata": {"namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.9/32"]}}]}]}});
        assert!(allowed(std::slice::from_ref(&out), &xa, &End::Outside("203.0.113.2".parse().unwrap()), "UDP", 9));
        assert!(!allowed(&[out], &xa, &End::Outside("203.0.113.9".parse().unwrap()), "UDP", 9));
    }
}
