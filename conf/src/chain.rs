//! A security-function chain spec (`kind: SecurityFunctionChain`, YAML):
//! traffic from some pods to others (optionally some ports) passes through
//! functions in order, replies in reverse. Parsing and validation only: what
//! the node holds is checked by the agent (datapath::chains).

use crate::names::validate_ifname;
use crate::portmap::Protocol;
use globset::{Glob, GlobMatcher};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const API_VERSION: &str = "weavice.io/v1alpha1";
pub const KIND: &str = "SecurityFunctionChain";

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The YAML does not parse into a chain: the message names the line and key.
    #[error("{0}")]
    Parse(String),
    #[error("chain {chain:?}: {why}")]
    Invalid { chain: String, why: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Chain {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ChainSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainSpec {
    /// The CNI network's name.
    pub network: String,
    pub from: Selector,
    pub to: Selector,
    /// Absent: all traffic between them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMatch>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    pub functions: Vec<Function>,
}

/// Pods by Kubernetes namespace and a name glob, or addresses by range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A glob over pod names (`frontend-*`); absent: every pod of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMatch {
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// A function that is gone drops the chain's traffic.
    #[default]
    Closed,
    /// A function that is gone is skipped.
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A pod, VM or host that forwards the packets.
    Route,
    /// An NFQUEUE served by a process on the node.
    Queue,
    /// An address that gets copies of both directions.
    Mirror,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub name: String,
    pub mode: Mode,
    /// route: a pod of the network on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// route (with `interface`): a VM or host outside weavice; mirror: the IDS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A chain's name as a command line gives it (it names a file).
pub fn validate_chain_name(name: &str) -> Result<(), String> {
    validate_name("chain name", name)
}

/// Kubernetes object names (RFC 1123 labels): chain and function names
/// become file names and appear in nft set names.
fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if name.is_empty()
        || name.len() > 63
        || !ok_chars
        || !ends(name.as_bytes().first())
        || !ends(name.as_bytes().last())
    {
        return Err(format!(
            "{what} {name:?} is not a name like \"shop-guard\" (lowercase letters, digits and '-', at most 63)"
        ));
    }
    Ok(())
}

impl Chain {
    /// Parses and validates a spec; errors name the line and key, or the rule broken.
    pub fn parse(yaml: &str) -> Result<Chain, ChainError> {
        // serde-saphyr's message names the line, column and key, with the text around it
        let chain: Chain = serde_saphyr::from_str(yaml).map_err(|e| ChainError::Parse(e.to_string()))?;
        chain.validate().map_err(|why| ChainError::Invalid { chain: chain.metadata.name.clone(), why })?;
        Ok(chain)
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    fn validate(&self) -> Result<(), String> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(format!(
                "apiVersion {:?} kind {:?}: expected {API_VERSION:?} and {KIND:?}",
                self.api_version, self.kind
            ));
        }
        validate_name("metadata.name", &self.metadata.name)?;
        crate::names::validate_network_name(&self.spec.network).map_err(|e| format!("spec.network: {e}"))?;
        for (side, s) in [("from", &self.spec.from), ("to", &self.spec.to)] {
            s.validate().map_err(|e| format!("spec.{side}: {e}"))?;
        }
        if let (Some(f), Some(t)) = (self.spec.from.family(), self.spec.to.family()) {
            if f != t {
                return Err("spec.from and spec.to are ranges of different address families: nothing can match".into());
            }
        }
        for p in &self.spec.ports {
            if p.port == 0 {
                return Err("spec.ports: port 0 is not a port".into());
            }
        }
        if self.spec.functions.is_empty() {
            return Err("spec.functions is empty: a chain needs at least one function".into());
        }
        let mut names: Vec<&str> = Vec::new();
        for f in &self.spec.functions {
            validate_name("function name", &f.name)?;
            if names.contains(&f.name.as_str()) {
                return Err(format!("two functions are named {:?}", f.name));
            }
            names.push(&f.name);
            f.validate().map_err(|e| format!("function {:?}: {e}", f.name))?;
        }
        // a queue's verdict ends the packet's pass through the hook: a
        // second queue on the same pass would never see it
        let mut queue_since_route: Option<&str> = None;
        for f in &self.spec.functions {
            match (f.mode, queue_since_route) {
                (Mode::Route, _) => queue_since_route = None,
                (Mode::Queue, Some(q)) => {
                    return Err(format!(
                        "queue functions {q:?} and {:?} have no route function between them: one queue per stretch",
                        f.name
                    ))
                }
                (Mode::Queue, None) => queue_since_route = Some(&f.name),
                (Mode::Mirror, _) => {}
            }
        }
        Ok(())
    }

    /// Whether this chain and `other` could claim the same traffic: the same
    /// network, sides that may select the same pods, and ports that meet.
    pub fn overlaps(&self, other: &Chain) -> bool {
        let ports_meet = self.spec.ports.is_empty()
            || other.spec.ports.is_empty()
            || self.spec.ports.iter().any(|p| other.spec.ports.contains(p));
        self.spec.network == other.spec.network
            && self.spec.from.may_meet(&other.spec.from)
            && self.spec.to.may_meet(&other.spec.to)
            && ports_meet
    }
}

impl Selector {
    fn validate(&self) -> Result<(), String> {
        match (&self.namespace, &self.cidr) {
            (Some(_), Some(_)) => Err("namespace/pods and cidr: give one of them".into()),
            (None, None) => Err("no namespace or cidr: say which pods".into()),
            (None, Some(_)) if self.pods.is_some() => Err("pods needs a namespace".into()),
            (Some(ns), None) if ns.is_empty() => Err("namespace is empty".into()),
            (None, Some(net)) if net.addr() != net.network() => {
                Err(format!("cidr {net} has host bits set (the range is {})", net.trunc()))
            }
            _ if self.pods.as_deref() == Some("") => Err("pods is empty (leave it out for every pod)".into()),
            _ => self.matcher().map(drop),
        }
    }

    fn matcher(&self) -> Result<GlobMatcher, String> {
        let glob = self.pods.as_deref().unwrap_or("*");
        Glob::new(glob).map(|g| g.compile_matcher()).map_err(|e| format!("pods {glob:?} is not a glob: {e}"))
    }

    /// Whether a pod (Kubernetes namespace and name, and its addresses) is selected.
    pub fn matches(&self, pod: Option<&PodRef>, ips: &[IpAddr]) -> bool {
        match (&self.namespace, &self.cidr, pod) {
            (Some(ns), _, Some(p)) => *ns == p.namespace && self.matcher().is_ok_and(|m| m.is_match(&p.name)),
            (_, Some(cidr), _) => ips.iter().any(|ip| cidr.contains(ip)),
            _ => false,
        }
    }

    /// Whether two selectors could select the same pod (conservative where
    /// two globs with wildcards could both match a name).
    fn may_meet(&self, other: &Selector) -> bool {
        match (&self.cidr, &other.cidr) {
            (Some(a), Some(b)) => a.contains(b) || b.contains(a),
            (None, None) => self.namespace == other.namespace && globs_may_meet(self.glob(), other.glob()),
            // pods by name against pods by address: they may be the same
            _ => true,
        }
    }

    fn glob(&self) -> &str {
        self.pods.as_deref().unwrap_or("*")
    }
}

/// Whether some name could match both globs: a literal is tried against the
/// other glob; two wildcard globs meet unless their literal beginnings or
/// endings differ.
fn globs_may_meet(a: &str, b: &str) -> bool {
    let wild = |g: &str| g.contains(['*', '?', '[', '{']);
    let matches = |glob: &str, name: &str| Glob::new(glob).is_ok_and(|g| g.compile_matcher().is_match(name));
    match (wild(a), wild(b)) {
        (false, false) => a == b,
        (false, true) => matches(b, a),
        (true, false) => matches(a, b),
        (true, true) => {
            let head = |g: &str| g[..g.find(['*', '?', '[', '{']).unwrap_or(g.len())].to_string();
            let tail = |g: &str| g[g.rfind(['*', '?', ']', '}']).map_or(0, |i| i + 1)..].to_string();
            let agree = |x: &str, y: &str, f: fn(&str, &str) -> bool| f(x, y) || f(y, x);
            agree(&head(a), &head(b), |x, y| x.starts_with(y)) && agree(&tail(a), &tail(b), |x, y| x.ends_with(y))
        }
    }
}

impl Selector {
    /// The address family a range side is of, if it is one.
    fn family(&self) -> Option<bool> {
        self.cidr.map(|c| c.addr().is_ipv4())
    }
}

impl Function {
    fn validate(&self) -> Result<(), String> {
        match self.mode {
            Mode::Route => match (&self.pod, self.address, &self.interface) {
                (Some(_), None, None) => Ok(()),
                (None, Some(_), Some(i)) => {
                    validate_ifname(i).map_err(|e| format!("interface {e}"))?;
                    // it is written into nft rules: plain names only (no quotes, no wildcard)
                    if !i.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                        return Err(format!("interface {i:?}: letters, digits, '_', '.' and '-' only"));
                    }
                    Ok(())
                }
                _ => Err("a route function is a pod {namespace, name}, or an address and an interface".into()),
            },
            Mode::Queue => match self.queue {
                _ if self.pod.is_some() || self.address.is_some() || self.interface.is_some() => {
                    Err("a queue function has only a queue number".into())
                }
                Some(q) if q <= 65535 => Ok(()),
                Some(q) => Err(format!("queue {q} is above 65535, the highest NFQUEUE number")),
                None => Err("a queue function needs a queue number".into()),
            },
            Mode::Mirror => match (self.address, &self.pod, self.queue) {
                (Some(_), None, None) => Ok(()),
                _ => Err("a mirror function is an address (the IDS)".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: shop-guard}
spec:
  network: podnet
  from: {namespace: shop, pods: "frontend-*"}
  to:   {namespace: shop, pods: "payments-*"}
  ports: [{protocol: TCP, port: 8080}]
  failurePolicy: Closed
  functions:
    - {name: fw,  mode: route,  pod: {namespace: sec, name: fw-0}}
    - {name: ips, mode: queue,  queue: 3}
    - {name: ids, mode: mirror, address: 198.51.100.9}
"#;

    #[test]
    fn the_issue_example_parses() {
        let c = Chain::parse(SHOP).unwrap();
        assert_eq!(c.name(), "shop-guard");
        assert_eq!(c.spec.functions.len(), 3);
        assert_eq!(c.spec.ports, vec![PortMatch { protocol: Protocol::Tcp, port: 8080 }]);
        let front = PodRef { namespace: "shop".into(), name: "frontend-7".into() };
        assert!(c.spec.from.matches(Some(&front), &[]));
        assert!(!c.spec.to.matches(Some(&front), &[]));
        // round trip through the stored form
        let again: Chain = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            (SHOP.replace("mode: queue,  queue: 3", "mode: queue,  queue: 70000"), "above 65535"),
            (SHOP.replace("mode: route", "mode: bounce"), "bounce"),
            (SHOP.replace("failurePolicy: Closed", "failurePolicy: Maybe"), "Maybe"),
            (SHOP.replace("network: podnet", "netwrok: podnet"), "netwrok"),
            (SHOP.replace("name: ips,", "name: fw,"), "two functions"),
            (SHOP.replace("shop-guard", "Shop Guard"), "metadata.name"),
            (SHOP.replace("{namespace: shop, pods: \"frontend-*\"}", "{cidr: 10.0.0.0/8, namespace: x}"), "give one"),
            (SHOP.replace("\"frontend-*\"", "\"front[\""), "not a glob"),
            (SHOP.replace("address: 198.51.100.9", "pod: {namespace: a, name: b}"), "mirror"),
            (
                SHOP.replace("pod: {namespace: sec, name: fw-0}", "address: 192.0.2.2, interface: \"w*\""),
                "letters, digits",
            ),
            (
                SHOP.replace("mode: route,  pod: {namespace: sec, name: fw-0}", "mode: queue, queue: 4"),
                "no route function between",
            ),
            ("spec: [".to_string(), "line"),
        ];
        for (yaml, expect) in cases {
            let e = Chain::parse(&yaml).unwrap_err().to_string();
            assert!(e.contains(expect), "{expect:?} not in {e:?}");
        }
        let e = Chain::parse(&SHOP.replace("netwrok", "x").replace("network: podnet", "netwrok: podnet")).unwrap_err();
        assert!(e.to_string().contains("line 6"), "the line of the unknown key: {e}");
    }

    #[test]
    fn chains_on_the_same_pods_and_ports_overlap() {
        let a = Chain::parse(SHOP).unwrap();
        let other_port = Chain::parse(&SHOP.replace("port: 8080", "port: 9090")).unwrap();
        let other_ns = Chain::parse(&SHOP.replace("to:   {namespace: shop", "to:   {namespace: bank")).unwrap();
        let all_ports = Chain::parse(&SHOP.replace("  ports: [{protocol: TCP, port: 8080}]\n", "")).unwrap();
        assert!(a.overlaps(&all_ports) && !a.overlaps(&other_port) && !a.overlaps(&other_ns));
        let names = |from: &str, to: &str| {
            let yaml =
                SHOP.replace("\"frontend-*\"", &format!("\"{from}\"")).replace("\"payments-*\"", &format!("\"{to}\""));
            Chain::parse(&yaml).unwrap()
        };
        assert!(!a.overlaps(&names("other-0", "other-1")), "literal names the globs do not match");
        assert!(!a.overlaps(&names("x*", "y*")), "wildcards with other beginnings");
        assert!(a.overlaps(&names("front*", "*")), "could meet");
        assert!(a.overlaps(&names("frontend-0", "payments-9")));
        assert!(a.overlaps(&names("*-canary", "payments-*")), "frontend-canary matches both");
    }

    #[test]
    fn selectors_that_cannot_match_are_refused() {
        let cases = [
            (SHOP.replace("pods: \"frontend-*\"", "pods: \"\""), "pods is empty"),
            (SHOP.replace("{namespace: shop, pods: \"frontend-*\"}", "{namespace: \"\"}"), "namespace is empty"),
            (SHOP.replace("{namespace: shop, pods: \"frontend-*\"}", "{cidr: 10.22.0.2/24}"), "host bits"),
            (
                SHOP.replace("{namespace: shop, pods: \"frontend-*\"}", "{cidr: 10.0.0.0/8}")
                    .replace("{namespace: shop, pods: \"payments-*\"}", "{cidr: \"fd00::/8\"}"),
                "different address families",
            ),
        ];
        for (yaml, expect) in cases {
            let e = Chain::parse(&yaml).unwrap_err().to_string();
            assert!(e.contains(expect), "{expect:?} not in {e:?}");
        }
    }
}
