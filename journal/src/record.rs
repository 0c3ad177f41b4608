//! The records. Field names follow Cilium Hubble's flow export where they
//! overlap (an endpoint's `namespace` and `pod_name`), so a Hubble user reads
//! them without a manual. Every record has the schema version `v`, a `time`
//! and a `kind`.

use serde::{Deserialize, Serialize};

/// The schema version every record carries.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodEvent {
    Add,
    Del,
}

/// A Kubernetes pod, as the runtime named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub namespace: String,
    pub pod_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// A pod's attachment made (ADD) or taken down (DEL). Both carry the
/// addresses: the address-to-pod join needs the end of each holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub v: u32,
    pub time: String,
    /// Always "pod".
    pub kind: String,
    pub event: PodEvent,
    pub node: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Endpoint>,
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_veth: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<serde_json::Value>,
    /// Records the plugin could not write since the last one it could
    /// (a full disk, an unwritable directory).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_before: u64,
}

/// What a flow record says of its connection. A connection's records share
/// `conntrack_id` and `first_seen`; a later one supersedes an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowEvent {
    /// Just made (conntrack's NEW): no counters yet.
    New,
    /// Still open when the daemon listed the table (at start, after lost
    /// events, at stop): counters so far.
    Open,
    /// Ended (conntrack's DESTROY): final counters.
    End,
}

/// Hubble's `IP`: the addresses the connection is between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    pub source: String,
    pub destination: String,
    #[serde(rename = "ipVersion")]
    pub ip_version: String,
}

/// Hubble's `l4`: `{"TCP": {"source_port": …, "destination_port": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum L4 {
    TCP(Ports),
    UDP(Ports),
    SCTP(Ports),
    ICMPv4(Icmp),
    ICMPv6(Icmp),
    /// Any other protocol, by number.
    Other {
        protocol: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub source_port: u16,
    pub destination_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Icmp {
    #[serde(rename = "type")]
    pub kind: u8,
    pub code: u8,
}

/// One direction of a connection as conntrack keys it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuple {
    pub source: String,
    pub destination: String,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub source_port: u16,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub destination_port: u16,
}

/// The address and port a connection was made to when conntrack translated
/// it (a Service's): `IP` and `l4` hold the endpoint it reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Via {
    pub ip: String,
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub port: u16,
}

/// A connection that touches a pod range, seen by the node daemon. `IP` and
/// `l4` are the connection as it really ran: from its initiator before any
/// source NAT to the endpoint after destination NAT; `original` and `reply`
/// are conntrack's tuples unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub v: u32,
    pub time: String,
    /// Always "flow".
    pub kind: String,
    pub event: FlowEvent,
    pub node: String,
    pub conntrack_id: u32,
    #[serde(rename = "IP")]
    pub ip: Ip,
    pub l4: L4,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// Always false: a record describes its connection from the initiator.
    pub is_reply: bool,
    pub original: Tuple,
    pub reply: Tuple,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Initiator to endpoint, then back; present with `nf_conntrack_acct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_packets: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<String>,
}

/// Hubble's LostEvent: events that never became records, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostRecord {
    pub v: u32,
    pub time: String,
    /// Always "lost".
    pub kind: String,
    pub node: String,
    /// `CONNTRACK_EVENTS` (the kernel dropped announcements for the daemon's
    /// socket) or `JOURNAL_WRITE` (records the daemon could not write).
    pub source: String,
    pub num_events_lost: u64,
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_record_is_one_line_of_json_with_hubbles_names() {
        let r = PodRecord {
            v: SCHEMA,
            time: "2026-11-28T07:31:07.000000001Z".into(),
            kind: "pod".into(),
            event: PodEvent::Add,
            node: "node-1".into(),
            network: "podnet".into(),
            container_id: "abc".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            pod: Some(Endpoint { namespace: "shop".into(), pod_name: "frontend-0".into(), uid: None }),
            ips: vec!["10.22.0.2".into()],
            mac: String::new(),
            host_veth: String::new(),
            port_mappings: vec![],
            lost_before: 0,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""pod":{"namespace":"shop","pod_name":"frontend-0"}"#), "{line}");
        assert!(line.contains(r#""event":"add""#) && !line.contains("lost_before"), "{line}");
        assert_eq!(serde_json::from_str::<PodRecord>(&line).unwrap(), r);
    }
}
