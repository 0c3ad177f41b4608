//! NetworkPolicy as the API server accepts it: read from YAML or JSON into
//! checked types. A field the API server would reject is bad input naming
//! the file, the policy and the field. Null fields are absent, as Go decodes
//! them.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Protocol {
    TCP,
    UDP,
    SCTP,
}

impl TryFrom<crate::connections::Protocol> for Protocol {
    type Error = ();

    /// The protocols a policy can name; not ICMP and the like.
    fn try_from(p: crate::connections::Protocol) -> Result<Protocol, ()> {
        use crate::connections::Protocol as Seen;
        match p {
            Seen::TCP => Ok(Protocol::TCP),
            Seen::UDP => Ok(Protocol::UDP),
            Seen::SCTP => Ok(Protocol::SCTP),
            _ => Err(()),
        }
    }
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::TCP),
            "UDP" => Some(Protocol::UDP),
            "SCTP" => Some(Protocol::SCTP),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A label selector; the empty one selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// `namespace`: None is the policy's own namespace; `pods`: None is
    /// every pod of the namespaces selected.
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    Block {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub protocol: Protocol,
    /// None: every port of the protocol.
    pub port: Option<PortRef>,
    pub end_port: Option<u16>,
}

/// A rule: `peers` None (absent or empty) admits every peer, `ports` None
/// every port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub peers: Option<Vec<Peer>>,
    pub ports: Option<Vec<Port>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    pub namespace: String,
    pub name: String,
    pub pod_selector: Selector,
    pub ingress_isolates: bool,
    pub egress_isolates: bool,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    /// Where it was read: a file.
    pub source: String,
}

impl NetworkPolicy {
    /// `namespace/name`
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Reads one object; `Err` names the field.
pub fn parse(v: &Value, source: &str) -> Result<NetworkPolicy, String> {
    if v["apiVersion"] != "networking.k8s.io/v1" || v["kind"] != "NetworkPolicy" {
        return Err(format!(
            "not a NetworkPolicy (apiVersion {}, kind {}; expected networking.k8s.io/v1 NetworkPolicy)",
            v["apiVersion"], v["kind"]
        ));
    }
    let name = v["metadata"]["name"].as_str().filter(|n| !n.is_empty()).ok_or("metadata.name is missing")?;
    let at = |field: &str| format!("{name}: {field}");
    let namespace = match &v["metadata"]["namespace"] {
        Value::Null => "default",
        Value::String(s) if !s.is_empty() => s,
        other => return Err(format!("{}: expected a name, found {other}", at("metadata.namespace"))),
    };
    let spec = &v["spec"];
    if !spec.is_object() {
        return Err(at("spec is missing"));
    }
    let pod_selector = selector(&spec["podSelector"], &at("spec.podSelector"))?.unwrap_or_default();
    let ingress = rules(&spec["ingress"], "from", &at("spec.ingress"))?;
    let egress = rules(&spec["egress"], "to", &at("spec.egress"))?;
    let (ingress_isolates, egress_isolates) = match &spec["policyTypes"] {
        Value::Null => (true, !egress.is_empty()),
        Value::Array(types) if !types.is_empty() => {
            let mut t = (false, false);
            for (i, ty) in types.iter().enumerate() {
                let field = at(&format!("spec.policyTypes[{i}]"));
                let seen = match ty.as_str() {
                    Some("Ingress") => &mut t.0,
                    Some("Egress") => &mut t.1,
                    _ => return Err(format!("{field}: {ty} is not Ingress or Egress")),
                };
                if std::mem::replace(seen, true) {
                    return Err(format!("{field}: {ty} is given twice"));
                }
            }
            t
        }
        // an empty list defaults as an absent one
        Value::Array(_) => (true, !egress.is_empty()),
        other => return Err(format!("{}: expected a list, found {other}", at("spec.policyTypes"))),
    };
    Ok(NetworkPolicy {
        namespace: namespace.to_string(),
        name: name.to_string(),
        pod_selector,
        ingress_isolates,
        egress_isolates,
        ingress,
        egress,
        source: source.to_string(),
    })
}

fn list<'a>(v: &'a Value, at: &str) -> Result<&'a [Value], String> {
    match v {
        Value::Null => Ok(&[]),
        Value::Array(a) => Ok(a),
        other => Err(format!("{at}: expected a list, found {other}")),
    }
}

fn rules(v: &Value, peers_key: &str, at: &str) -> Result<Vec<Rule>, String> {
    let mut out = Vec::new();
    for (i, r) in list(v, at)?.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if !r.is_object() {
            return Err(format!("{at}: expected an object, found {r}"));
        }
        let peers: Vec<Peer> = list(&r[peers_key], &format!("{at}.{peers_key}"))?
            .iter()
            .enumerate()
            .map(|(j, p)| peer(p, &format!("{at}.{peers_key}[{j}]")))
            .collect::<Result<_, _>>()?;
        let ports: Vec<Port> = list(&r["ports"], &format!("{at}.ports"))?
            .iter()
            .enumerate()
            .map(|(j, p)| port(p, &format!("{at}.ports[{j}]")))
            .collect::<Result<_, _>>()?;
        out.push(Rule { peers: (!peers.is_empty()).then_some(peers), ports: (!ports.is_empty()).then_some(ports) });
    }
    Ok(out)
}

fn peer(v: &Value, at: &str) -> Result<Peer, String> {
    let block = &v["ipBlock"];
    let (ns, pods) = (
        selector(&v["namespaceSelector"], &format!("{at}.namespaceSelector"))?,
        selector(&v["podSelector"], &format!("{at}.podSelector"))?,
    );
    if !block.is_null() {
        if ns.is_some() || pods.is_some() {
            return Err(format!("{at}: ipBlock may not be combined with podSelector or namespaceSelector in one peer"));
        }
        let cidr = cidr(&block["cidr"], &format!("{at}.ipBlock.cidr"))?;
        let mut except = Vec::new();
        for (i, e) in list(&block["except"], &format!("{at}.ipBlock.except"))?.iter().enumerate() {
            let field = format!("{at}.ipBlock.except[{i}]");
            let e = self::cidr(e, &field)?;
            if !cidr.contains(e.addr) || e.bits <= cidr.bits {
                return Err(format!("{field}: {e} is not strictly within {cidr}"));
            }
            except.push(e);
        }
        return Ok(Peer::Block { cidr, except });
    }
    if ns.is_none() && pods.is_none() {
        return Err(format!("{at}: a peer needs podSelector, namespaceSelector or ipBlock"));
    }
    Ok(Peer::Pods { namespaces: ns, pods })
}

fn cidr(v: &Value, at: &str) -> Result<Cidr, String> {
    let s = v.as_str().ok_or_else(|| format!("{at}: expected a CIDR such as 10.0.0.0/16, found {v}"))?;
    let bad = || format!("{at}: {s:?} is not a CIDR such as 10.0.0.0/16");
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    if bits > if addr.is_ipv4() { 32 } else { 128 } {
        return Err(bad());
    }
    Ok(Cidr { addr, bits })
}

fn port(v: &Value, at: &str) -> Result<Port, String> {
    let protocol = match &v["protocol"] {
        Value::Null => Protocol::TCP,
        p => {
            p.as_str().and_then(Protocol::parse).ok_or_else(|| format!("{at}.protocol: {p} is not TCP, UDP or SCTP"))?
        }
    };
    let number = |n: &Value, field: &str| -> Result<u16, String> {
        n.as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{at}.{field}: {n} is not a port (1-65535)"))
    };
    let port = match &v["port"] {
        Value::Null => None,
        Value::String(name) => {
            // IANA_SVC_NAME
            let ok = !name.is_empty()
                && name.len() <= 15
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && name.bytes().any(|b| b.is_ascii_lowercase())
                && !name.starts_with('-')
                && !name.ends_with('-')
                && !name.contains("--");
            if !ok {
                // the API server reads a quoted number as a (bad) name too
                return Err(format!(
                    "{at}.port: {name:?} is not a port name (1-15 of a-z, 0-9, '-', with a letter); write a number unquoted"
                ));
            }
            Some(PortRef::Name(name.clone()))
        }
        n => Some(PortRef::Number(number(n, "port")?)),
    };
    let end_port = match &v["endPort"] {
        Value::Null => None,
        e => {
            let e = number(e, "endPort")?;
            match &port {
                Some(PortRef::Number(p)) if e >= *p => Some(e),
                Some(PortRef::Number(p)) => return Err(format!("{at}.endPort: {e} is below port {p}")),
                Some(PortRef::Name(_)) => return Err(format!("{at}.endPort: may not be set with a named port")),
                None => return Err(format!("{at}.endPort: may not be set without port")),
            }
        }
    };
    Ok(Port { protocol, port, end_port })
}

fn selector(v: &Value, at: &str) -> Result<Option<Selector>, String> {
    if v.is_null() {
        return Ok(None);
    }
    if !v.is_object() {
        return Err(format!("{at}: expected a label selector, found {v}"));
    }
    let mut s = Selector::default();
    match &v["matchLabels"] {
        Value::Null => {}
        Value::Object(m) => {
            for (k, val) in m {
                let val = match val {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => return Err(format!("{at}.matchLabels.{k}: expected a string, found {other}")),
                };
                s.match_labels.insert(k.clone(), val);
            }
        }
        other => return Err(format!("{at}.matchLabels: expected a map, found {other}")),
    }
    for (i, e) in list(&v["matchExpressions"], &format!("{at}.matchExpressions"))?.iter().enumerate() {
        let at = format!("{at}.matchExpressions[{i}]");
        let key = e["key"].as_str().filter(|k| !k.is_empty()).ok_or_else(|| format!("{at}.key is missing"))?;
        let operator = match e["operator"].as_str() {
            Some("In") => Operator::In,
            Some("NotIn") => Operator::NotIn,
            Some("Exists") => Operator::Exists,
            Some("DoesNotExist") => Operator::DoesNotExist,
            _ => return Err(format!("{at}.operator: {} is not In, NotIn, Exists or DoesNotExist", e["operator"])),
        };
        let values: Vec<String> = list(&e["values"], &format!("{at}.values"))?
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{at}.values: {v} is not a string")))
            .collect::<Result<_, _>>()?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(format!("{at}.values: {operator:?} needs at least one value"))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!("{at}.values: {operator:?} takes no values"))
            }
            _ => {}
        }
        s.match_expressions.push(Requirement { key: key.to_string(), operator, values });
    }
    Ok(Some(s))
}
