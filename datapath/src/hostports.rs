//! Which attachment holds which host port. One file per claim,
//! `<stateDir>/hostports/<proto>/<port>/<hostIP or "any">`, so a conflicting
//! request is refused before anything is installed, naming the holder.

use crate::attachment::{write_atomically, Attachment};
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

/// The claims in a port's directory, with the mapping each stands for
/// (`any` or a host IP; anything else, such as a write's temporary file,
/// is no claim).
fn claims(dir: &Path, port: &PortMapping) -> Vec<(PathBuf, PortMapping)> {
    let entries = fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // callers hold the claims lock: the writer of this one died
                // between its write and its rename
                let _ = fs::remove_file(e.path());
                return None;
            }
            let host_ip = match name.as_str() {
                "any" => None,
                ip => Some(ip.parse().ok()?),
            };
            Some((e.path(), PortMapping { host_ip, ..port.clone() }))
        })
        .collect()
}

fn read_claim(path: &Path) -> Option<Holder> {
    fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// Who holds a claim that cannot be read (a write cut short by a kill or a
/// full disk): the attachment whose saved state maps that port, if any.
fn holder_in_state(state_dir: &str, held: &PortMapping) -> Option<Holder> {
    Attachment::every_readable(state_dir)
        .into_iter()
        .find(|a| a.port_mappings.iter().any(|m| m.collides(held)))
        .map(|a| a.holder())
}

/// Claims every mapping for `holder`, or none of them. An unreadable claim
/// that no attachment's state holds is reclaimed, with a log line.
pub fn claim(state_dir: &str, holder: &Holder, mappings: &[PortMapping]) -> Result<()> {
    if mappings.is_empty() {
        return Ok(());
    }
    let _lock = lock(state_dir)?;
    for m in mappings {
        for (path, held) in claims(&claim_dir(state_dir, m), m) {
            if !m.collides(&held) {
                continue;
            }
            let other = match read_claim(&path) {
                Some(other) => other,
                None => match holder_in_state(state_dir, &held) {
                    Some(other) => other,
                    None => {
                        log::warn!(
                            "reclaiming host port {held}: its claim {} is unreadable and held by no pod",
                            path.display()
                        );
                        fs::remove_file(&path).map_err(DatapathError::io(format!("remove {}", path.display())))?;
                        continue;
                    }
                },
            };
            if !other.same_attachment(holder) {
                return Err(DatapathError::PortInUse { mapping: m.to_string(), holder: other.describe() });
            }
        }
    }
    let body = serde_json::to_vec(holder).unwrap_or_default();
    let mut written = Vec::new();
    for m in mappings {
        let path = claim_dir(state_dir, m).join(claim_name(m));
        // already ours (a repeated ADD): not this call's to undo
        let new = !path.exists();
        if let Err(e) = write_atomically(&path, &body) {
            // all or nothing: a claim left here would name a pod that never came
            for p in written {
                let _ = fs::remove_file(p);
            }
            return Err(e);
        }
        if new {
            written.push(path);
        }
    }
    Ok(())
}

/// A claim file, what it stands for and who holds it (None: unreadable).
struct Claim {
    path: PathBuf,
    mapping: PortMapping,
    holder: Option<Holder>,
}

/// Every claim on the node (a walk: DEL without state and GC only).
fn all_claims(state_dir: &str) -> Vec<Claim> {
    let mut out = Vec::new();
    for proto in fs::read_dir(root(state_dir)).into_iter().flatten().flatten() {
        let Ok(protocol) = serde_json::from_value(serde_json::json!(proto.file_name().to_string_lossy())) else {
            continue;
        };
        for port in fs::read_dir(proto.path()).into_iter().flatten().flatten() {
            let Ok(host_port) = port.file_name().to_string_lossy().parse() else { continue };
            let any = PortMapping { host_port, container_port: host_port, protocol, host_ip: None };
            out.extend(claims(&port.path(), &any).into_iter().map(|(path, mapping)| Claim {
                holder: read_claim(&path),
                path,
                mapping,
            }));
        }
    }
    out
}

/// Removes the claims `doomed` picks; returns the ports they held.
fn release_where(state_dir: &str, doomed: impl Fn(&Claim) -> bool) -> Result<Vec<String>> {
    let _lock = lock(state_dir)?;
    let mut freed = Vec::new();
    for c in all_claims(state_dir).into_iter().filter(|c| doomed(c)) {
        fs::remove_file(&c.path).map_err(DatapathError::io(format!("remove {}", c.path.display())))?;
        freed.push(c.mapping.to_string());
    }
    Ok(freed)
}

/// Drops every claim `holder` has, wherever it is (DEL of an attachment
/// whose state, and so its list of mappings, is lost).
pub fn release_all_of(state_dir: &str, holder: &Holder) -> Result<Vec<String>> {
    release_where(state_dir, |c| c.holder.as_ref().is_some_and(|h| h.same_attachment(holder)))
}

/// Drops the claims of `network` whose holder `live` does not accept (GC: an
/// attachment whose state was lost would otherwise keep its ports for ever).
pub fn release_unlisted(state_dir: &str, network: &str, live: impl Fn(&Holder) -> bool) -> Result<Vec<String>> {
    release_where(state_dir, |c| c.holder.as_ref().is_some_and(|h| h.network == network && !live(h)))
}

/// Removes every unreadable claim that no attachment's state holds (GC);
/// returns the ports freed.
pub fn reclaim_unreadable(state_dir: &str) -> Result<Vec<String>> {
    release_where(state_dir, |c| c.holder.is_none() && holder_in_state(state_dir, &c.mapping).is_none())
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
