//! Which attachment holds which host port. One file per claim,
//! `<stateDir>/hostports/<proto>/<port>/<hostIP or "any">`, so a conflicting
//! request is refused before anything is installed, naming the holder.

use crate::attachment::write_private;
use crate::{DatapathError, Result};
use conf::PortMapping;
use ipam::filelock::FileLock;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    /// `namespace/name` when the runtime passed K8S_POD_* arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl Holder {
    pub fn new(network: &str, container_id: &str, ifname: &str, pod: Option<&crate::attachment::Pod>) -> Self {
        Holder {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            pod: pod.map(ToString::to_string),
        }
    }

    fn same_attachment(&self, other: &Holder) -> bool {
        self.network == other.network && self.container_id == other.container_id && self.ifname == other.ifname
    }

    fn describe(&self) -> String {
        match &self.pod {
            Some(pod) => format!("pod {pod} (container {}, network {})", self.container_id, self.network),
            None => format!("container {} (network {})", self.container_id, self.network),
        }
    }
}

fn root(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("hostports")
}

fn claim_dir(state_dir: &str, m: &PortMapping) -> PathBuf {
    root(state_dir).join(m.protocol.to_string()).join(m.host_port.to_string())
}

fn claim_name(m: &PortMapping) -> String {
    m.host_ip.map_or_else(|| "any".to_string(), |ip| ip.to_string())
}

fn lock(state_dir: &str) -> Result<FileLock> {
    Ok(FileLock::acquire(&root(state_dir).join("lock"), Duration::from_secs(20))?)
}

/// Claims every mapping for `holder`, or none of them.
pub fn claim(state_dir: &str, holder: &Holder, mappings: &[PortMapping]) -> Result<()> {
    if mappings.is_empty() {
        return Ok(());
    }
    let _lock = lock(state_dir)?;
    for m in mappings {
        let dir = claim_dir(state_dir, m);
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let held = PortMapping { host_ip: name.parse().ok(), ..m.clone() };
            if !m.collides(&held) {
                continue;
            }
            let other: Holder =
                fs::read(entry.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| {
                    DatapathError::State { path: entry.path().display().to_string(), why: "unreadable claim".into() }
                })?;
            if !other.same_attachment(holder) {
                return Err(DatapathError::PortInUse { mapping: m.to_string(), holder: other.describe() });
            }
        }
    }
    let body = serde_json::to_vec(holder).unwrap_or_default();
    for m in mappings {
        write_private(&claim_dir(state_dir, m).join(claim_name(m)), &body)?;
    }
    Ok(())
}

/// Drops the claims `holder` has on these mappings; others' claims stay.
pub fn release(state_dir: &str, holder: &Holder, mappings: &[PortMapping]) -> Result<()> {
    if mappings.is_empty() {
        return Ok(());
    }
    let _lock = lock(state_dir)?;
    for m in mappings {
        let path = claim_dir(state_dir, m).join(claim_name(m));
        let ours = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
            .is_some_and(|h| h.same_attachment(holder));
        if ours {
            fs::remove_file(&path).map_err(DatapathError::io(format!("remove {}", path.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::Protocol;

    fn holder(id: &str) -> Holder {
        Holder {
            network: "n".into(),
            container_id: id.into(),
            ifname: "eth0".into(),
            pod: Some(format!("default/{id}")),
        }
    }

    fn pm(port: u16, ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: port,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn a_port_has_one_holder() {
        let dir = std::env::temp_dir().join(format!("wv-hostports-{}", std::process::id()));
        let d = dir.to_str().unwrap();
        claim(d, &holder("a"), &[pm(8080, None)]).unwrap();
        claim(d, &holder("a"), &[pm(8080, None)]).unwrap(); // repeated ADD
        let e = claim(d, &holder("b"), &[pm(9090, None), pm(8080, Some("10.0.0.1"))]).unwrap_err().to_string();
        assert!(e.contains("default/a"), "{e}");
        // all or nothing: 9090 was not claimed by b
        claim(d, &holder("c"), &[pm(9090, None)]).unwrap();
        release(d, &holder("b"), &[pm(8080, None)]).unwrap(); // not b's: stays
        assert!(claim(d, &holder("b"), &[pm(8080, None)]).is_err());
        release(d, &holder("a"), &[pm(8080, None)]).unwrap();
        claim(d, &holder("b"), &[pm(8080, Some("10.0.0.1"))]).unwrap();
        claim(d, &holder("d"), &[pm(8080, Some("10.0.0.2"))]).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }
}
