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
