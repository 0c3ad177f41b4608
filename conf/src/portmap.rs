//! The `portMappings` capability: parsing and validation.

use crate::error::ConfError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    // Kubernetes spells them in capitals (chain specs take either)
    #[serde(alias = "TCP")]
    Tcp,
    #[serde(alias = "UDP")]
    Udp,
    #[serde(alias = "SCTP")]
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// One validated mapping. `host_ip` None means every local address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}/{} -> {}", self.host_port, self.protocol, self.container_port),
            Some(ip) => write!(f, "{ip}:{}/{} -> {}", self.host_port, self.protocol, self.container_port),
            None => write!(f, "*:{}/{} -> {}", self.host_port, self.protocol, self.container_port),
        }
    }
}

impl PortMapping {
    /// Whether two mappings claim the same host socket.
    pub fn collides(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

/// `key` in any letter case: containerd 1.6 (go-cni) sends Go field names,
/// `HostPort`, `ContainerPort`, `Protocol`, `HostIP`, and Go plugins accept
/// them because Go's JSON decoding ignores case.
fn field<'a>(m: &'a Value, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| m.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn port(v: &Value, key: &str, i: usize) -> Result<u16, ConfError> {
    let n = field(v, key).and_then(Value::as_i64).ok_or_else(|| {
        ConfError::Invalid(format!("runtimeConfig.portMappings[{i}].{key} must be a number from 1 to 65535"))
    })?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfError::Invalid(format!("runtimeConfig.portMappings[{i}].{key} {n} is outside 1..65535"))),
    }
}

/// Parses `runtimeConfig.portMappings`; rejects bad ports, unknown protocols,
/// host IPs that do not parse and duplicates within the request.
pub fn parse(v: Option<&Value>) -> Result<Vec<PortMapping>, ConfError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| ConfError::Invalid("runtimeConfig.portMappings must be a list".into()))?;
    let mut out: Vec<PortMapping> = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let protocol = match field(m, "protocol").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("sctp") => Protocol::Sctp,
            Some(other) => {
                return Err(ConfError::Invalid(format!(
                    "runtimeConfig.portMappings[{i}].protocol {other:?} is not tcp, udp or sctp"
                )))
            }
        };
        let host_ip = match field(m, "hostIP").and_then(Value::as_str) {
            None | Some("") => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                ConfError::Invalid(format!("runtimeConfig.portMappings[{i}].hostIP {s:?} is not an IP address"))
            })?),
        };
        // an unspecified address means every address, as with portmap
        let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
        let pm = PortMapping {
            host_port: port(m, "hostPort", i)?,
            container_port: port(m, "containerPort", i)?,
            protocol,
            host_ip,
        };
        if let Some(prev) = out.iter().find(|p| p.collides(&pm)) {
            return Err(ConfError::Invalid(format!("runtimeConfig.portMappings: {pm} duplicates {prev}")));
        }
        out.push(pm);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_containerds_go_field_names() {
        let m = parse(Some(&json!([{"HostPort": 18080, "ContainerPort": 80, "Protocol": "udp", "HostIP": "10.0.0.1"}, {"HostPort": 18081, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]))).unwrap();
        assert_eq!((m[0].host_port, m[0].container_port, m[0].protocol), (18080, 80, Protocol::Udp));
        assert_eq!(m[0].host_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(m[1].host_ip, None);
    }

    #[test]
    fn parses_and_defaults_to_tcp() {
        let m = parse(Some(&json!([{"hostPort": 8080, "containerPort": 80}, {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]))).unwrap();
        assert_eq!(m[0].protocol, Protocol::Tcp);
        assert_eq!(m[1].protocol, Protocol::Udp);
        assert_eq!(m[1].host_ip, Some("10.0.0.1".parse().unwrap()));
        assert!(parse(None).unwrap().is_empty());
        assert_eq!(
            parse(Some(&json!([{"hostPort": 1, "containerPort": 1, "hostIP": "0.0.0.0"}]))).unwrap()[0].host_ip,
            None
        );
    }

    #[test]
    fn rejects_bad_mappings() {
        for (bad, needle) in [
            (json!([{"hostPort": 0, "containerPort": 80}]), "hostPort 0"),
            (json!([{"hostPort": 70000, "containerPort": 80}]), "hostPort 70000"),
            (json!([{"hostPort": 80, "containerPort": -1}]), "containerPort -1"),
            (json!([{"hostPort": "80", "containerPort": 80}]), "hostPort must be"),
            (json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]), "icmp"),
            (json!([{"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.300"}]), "10.0.0.300"),
            (
                json!([{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81, "hostIP": "10.0.0.1"}]),
                "duplicates",
            ),
            (json!({"hostPort": 80}), "must be a list"),
        ] {
            let e = parse(Some(&bad)).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        // different protocols or host IPs do not collide
        assert!(parse(Some(
            &json!([{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 80, "protocol": "udp"}])
        ))
        .is_ok());
        assert!(parse(Some(&json!([{"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.1"}, {"hostPort": 80, "containerPort": 80, "hostIP": "10.0.0.2"}]))).is_ok());
    }
}
