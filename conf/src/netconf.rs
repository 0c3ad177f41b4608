//! The weavice plugin entry of a conflist, as the runtime hands it over.

use crate::error::ConfError;
use crate::names::{validate_ifname, validate_network_name};
use crate::version::CniVersion;
use serde::Deserialize;
use serde_json::Value;

pub const DEFAULT_BRIDGE: &str = "wv0";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/weavice";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodToPod {
    /// Isolated bridge ports: pod-to-pod crosses the host at L3.
    #[default]
    Routed,
    /// Plain L2 switching on the bridge.
    Bridged,
}

/// Which netfilter interface weavice programs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallBackend {
    /// nftables where the `nft` tool is installed, iptables otherwise.
    #[default]
    Auto,
    Nftables,
    Iptables,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ips: Vec<String>,
    /// Raw; validated into `NetConf::port_mappings`.
    #[serde(default, rename = "portMappings")]
    pub port_mappings: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CniArgs {
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Args {
    #[serde(default)]
    pub cni: CniArgs,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentKey {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNetConf {
    name: String,
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default = "yes")]
    is_gateway: bool,
    #[serde(default = "yes")]
    ip_masq: bool,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default = "yes")]
    anti_spoofing: bool,
    #[serde(default)]
    pod_to_pod: PodToPod,
    #[serde(default)]
    firewall_backend: FirewallBackend,
    #[serde(default)]
    ipam: Option<Value>,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    journal_max_bytes: Option<u64>,
    #[serde(default)]
    journal_max_files: Option<u64>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    args: Args,
    #[serde(default)]
    prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<AttachmentKey>>,
    #[serde(default, rename = "cni.dev/attachments")]
    attachments: Option<Vec<AttachmentKey>>,
}

/// A validated plugin configuration. `raw` is kept to hand to a delegated IPAM plugin.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    pub plugin_type: String,
    pub bridge: String,
    pub mtu: Option<u32>,
    pub is_gateway: bool,
    pub ip_masq: bool,
    pub hairpin_mode: bool,
    /// A pod's frames must carry its own MAC and addresses (firewall antispoof).
    pub anti_spoofing: bool,
    pub pod_to_pod: PodToPod,
    pub firewall_backend: FirewallBackend,
    pub ipam: Option<Value>,
    pub ipam_type: Option<String>,
    pub log_file: Option<String>,
    pub log_level: log_level::Level,
    pub state_dir: String,
    /// The journal's rotation size and files kept (its defaults when unset).
    pub journal_max_bytes: Option<u64>,
    pub journal_max_files: Option<usize>,
    pub runtime_config: RuntimeConfig,
    pub args: Args,
    pub prev_result: Option<Value>,
    /// From the `portMappings` capability, validated.
    pub port_mappings: Vec<crate::portmap::PortMapping>,
    /// GC: attachments to keep (either spelling of the key; see cni#1101).
    pub valid_attachments: Option<Vec<AttachmentKey>>,
    pub raw: Value,
}

pub mod log_level {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Level {
        Error,
        Warn,
        Info,
        Debug,
    }

    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

/// Just the version, read even when the rest of the config is wrong, so
/// errors can be reported in the caller's version.
pub fn peek_version(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.get("cniVersion")?.as_str().map(String::from)
}

/// `logFile`, when it parses, so a refused config can still be logged there.
pub fn peek_log_file(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let p = v.get("logFile")?.as_str()?;
    (p.starts_with('/') && !p.split('/').any(|part| part == "..")).then(|| p.to_string())
}

impl NetConf {
    /// For DEL, which must not fail on a runtimeConfig it cannot read (the
    /// attachment's state says what to remove): such a runtimeConfig is set
    /// aside, and its error returned for the log.
    pub fn parse_setting_aside_runtime_config(bytes: &[u8]) -> Result<(Self, Option<ConfError>), ConfError> {
        let refused = match Self::parse(bytes) {
            Ok(c) => return Ok((c, None)),
            Err(e) => e,
        };
        let mut raw: Value = serde_json::from_slice(bytes).map_err(|e| ConfError::Decode(e.to_string()))?;
        match raw.as_object_mut().and_then(|o| o.remove("runtimeConfig")) {
            Some(_) => Ok((Self::parse(raw.to_string().as_bytes())?, Some(refused))),
            None => Err(refused),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ConfError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| ConfError::Decode(e.to_string()))?;
        if !raw.is_object() {
            return Err(ConfError::Decode("the network configuration must be a JSON object".into()));
        }
        let version = match raw.get("cniVersion") {
            Some(Value::String(v)) => CniVersion::parse(v)?,
            Some(other) => return Err(ConfError::Invalid(format!("cniVersion must be a string, got {other}"))),
            None => return Err(ConfError::Invalid("cniVersion is missing".into())),
        };
        let c: RawNetConf = crate::error::typed(&raw, "")?;
        validate_network_name(&c.name).map_err(ConfError::Invalid)?;
        let bridge = c.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        validate_ifname(&bridge).map_err(|why| ConfError::Invalid(format!("bridge {why}")))?;
        if let Some(mtu) = c.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(ConfError::Invalid(format!("mtu {mtu} is outside 68..65535")));
            }
        }
        let log_level = match &c.log_level {
            None => log_level::Level::Info,
            Some(s) => log_level::parse(s)
                .ok_or_else(|| ConfError::Invalid(format!("logLevel {s:?} is not one of error, warn, info, debug")))?,
        };
        for (key, path) in [("logFile", &c.log_file), ("stateDir", &c.state_dir)] {
            if let Some(p) = path {
                if !p.starts_with('/') || p.split('/').any(|part| part == "..") {
                    return Err(ConfError::Invalid(format!("{key} {p:?} must be an absolute path without '..'")));
                }
            }
        }
        if c.journal_max_bytes.is_some_and(|b| b < 4096) {
            return Err(ConfError::Invalid("journalMaxBytes must be at least 4096 (bytes)".into()));
        }
        if c.journal_max_files.is_some_and(|n| !(1..=10000).contains(&n)) {
            return Err(ConfError::Invalid("journalMaxFiles must be between 1 and 10000 (files kept)".into()));
        }
        let ipam_type = match &c.ipam {
            None => None,
            Some(v) => match v.get("type") {
                Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => Some(t.clone()),
                _ => {
                    return Err(ConfError::Invalid("ipam.type must name an IPAM plugin, e.g. \"weavice-ipam\"".into()))
                }
            },
        };
        let port_mappings = crate::portmap::parse(c.runtime_config.port_mappings.as_ref())?;
        Ok(NetConf {
            cni_version: version,
            name: c.name,
            plugin_type: c.plugin_type,
            bridge,
            mtu: c.mtu,
            is_gateway: c.is_gateway,
            ip_masq: c.ip_masq,
            hairpin_mode: c.hairpin_mode,
            anti_spoofing: c.anti_spoofing,
            pod_to_pod: c.pod_to_pod,
            firewall_backend: c.firewall_backend,
            ipam: c.ipam,
            ipam_type,
            log_file: c.log_file,
            log_level,
            state_dir: c.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.to_string()),
            journal_max_bytes: c.journal_max_bytes,
            journal_max_files: c.journal_max_files.map(|n| n as usize),
            runtime_config: c.runtime_config,
            args: c.args,
            prev_result: c.prev_result,
            port_mappings,
            valid_attachments: c.valid_attachments.or(c.attachments),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn parse(s: &str) -> Result<NetConf, ConfError> {
        NetConf::parse(s.as_bytes())
    }

    #[test]
    fn del_sets_aside_a_runtime_config_it_cannot_read() {
        let bad = br#"{"cniVersion":"1.0.0","name":"n","type":"weavice","logFile":"/var/log/w.log","runtimeConfig":{"portMappings":[{"hostPort":"x"}]}}"#;
        assert!(NetConf::parse(bad).is_err());
        let (c, refused) = NetConf::parse_setting_aside_runtime_config(bad).unwrap();
        assert!(c.port_mappings.is_empty());
        assert!(refused.unwrap().to_string().contains("hostPort"));
        let worse = br#"{"cniVersion":"1.0.0","name":"n","type":"weavice","mtu":"x"}"#;
        assert!(NetConf::parse_setting_aside_runtime_config(worse).is_err(), "the rest is still checked");
        assert_eq!(peek_log_file(bad).as_deref(), Some("/var/log/w.log"));
        assert_eq!(peek_log_file(br#"{"logFile":"rel/x"}"#), None);
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"weavice","unknownKey":[1]}"#).unwrap();
        assert_eq!(c.bridge, "wv0");
        assert!(c.is_gateway && c.ip_masq && !c.hairpin_mode && c.anti_spoofing);
        assert_eq!(c.pod_to_pod, PodToPod::Routed);
        assert_eq!(c.state_dir, DEFAULT_STATE_DIR);
    }

    #[test]
    fn accepts_both_gc_keys() {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let c = parse(&format!(r#"{{"cniVersion":"1.1.0","name":"n","type":"weavice","{key}":[{{"containerID":"a","ifname":"eth0"}}]}}"#)).unwrap();
            assert_eq!(c.valid_attachments.unwrap()[0].container_id, "a");
        }
    }

    #[test]
    fn bad_input_gets_the_spec_code() {
        let cases = [
            ("{not json", ErrorCode::Decode),
            ("[1]", ErrorCode::Decode),
            (r#"{"cniVersion":"9.9.9","name":"n","type":"weavice"}"#, ErrorCode::IncompatibleVersion),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","mtu":"big"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","mtu":20}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","ipMasq":"yes"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","podToPod":"tunnel"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","firewallBackend":"pf"}"#, ErrorCode::InvalidConfig),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","bridge":"a-very-long-bridge-name"}"#,
                ErrorCode::InvalidConfig,
            ),
            (r#"{"cniVersion":"1.0.0","name":"../n","type":"weavice"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","stateDir":"tmp"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","journalMaxBytes":100}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","journalMaxFiles":0}"#, ErrorCode::InvalidConfig),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","journalMaxFiles":"many"}"#,
                ErrorCode::InvalidConfig,
            ),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","logLevel":"loud"}"#, ErrorCode::InvalidConfig),
            (r#"{"cniVersion":"1.0.0","name":"n","type":"weavice","ipam":{"type":"../x"}}"#, ErrorCode::InvalidConfig),
            (r#"{"name":"n","type":"weavice"}"#, ErrorCode::InvalidConfig),
        ];
        for (input, code) in cases {
            assert_eq!(parse(input).unwrap_err().code(), code, "{input}");
        }
    }
}
