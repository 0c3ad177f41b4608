//! What ADD made, per attachment, so DEL, CHECK and GC work from weavice's
//! own record rather than from whatever the runtime still remembers.
//!
//! `<stateDir>/attachments/<network>/<ifname>/<containerID>.json` (a hash
//! past 200 bytes: conf::names::id_file_name), root-only.

use crate::firewall::{Backend, PodIdentity, PodRules};
use crate::hostports::Holder;
use crate::{DatapathError, Result};
use conf::names::{id_file_name, is_hashed_id_file_name};
use conf::{IpConfig, Route};
use ipam::filelock::FileLock;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub network: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub bridge: String,
    pub host_veth: String,
    pub mac: String,
    /// The Kubernetes pod, when the runtime named it (`K8S_POD_*` in CNI_ARGS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    pub ips: Vec<IpConfig>,
    /// The pod ranges the addresses came from (the network's masquerade sets).
    pub ranges: Vec<IpNet>,
    pub routes: Vec<Route>,
    pub ipam_type: Option<String>,
    #[serde(default)]
    pub port_mappings: Vec<conf::PortMapping>,
    /// Chained after another main plugin: weavice made no interface.
    #[serde(default)]
    pub chained: bool,
    /// Where the port mappings (and the identity) live.
    #[serde(default)]
    pub backend: Backend,
    /// The pod is held to its identity (`host_veth`, `mac`, `ips`) on the
    /// bridge; false in state written before anti-spoofing existed.
    #[serde(default)]
    pub anti_spoofing: bool,
}

/// A Kubernetes pod's identity, as the runtime passed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl Pod {
    /// From `K8S_POD_NAMESPACE`, `K8S_POD_NAME` and `K8S_POD_UID`.
    pub fn from_args(args: &std::collections::HashMap<String, String>) -> Option<Self> {
        Some(Pod {
            namespace: args.get("K8S_POD_NAMESPACE")?.clone(),
            name: args.get("K8S_POD_NAME")?.clone(),
            uid: args.get("K8S_POD_UID").cloned(),
        })
    }
}

impl std::fmt::Display for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Attachment {
    pub fn pod_ips(&self) -> Vec<std::net::IpAddr> {
        self.ips.iter().map(|i| i.address.addr()).collect()
    }

    pub fn holder(&self) -> Holder {
        Holder::new(&self.network, &self.container_id, &self.ifname, self.pod.as_ref())
    }

    /// Its port mappings and identity as the firewall takes them.
    pub fn rules(&self) -> Result<PodRules> {
        Ok(PodRules::new(&self.port_mappings, &self.pod_ips())?.with_identity(self.identity()))
    }

    fn identity(&self) -> Option<PodIdentity> {
        if !self.anti_spoofing {
            return None;
        }
        let mac = crate::link::parse_mac(&self.mac)?.try_into().ok()?;
        Some(PodIdentity { port: self.host_veth.clone(), mac, ips: self.pod_ips() })
    }
}

/// Writes a file readable by root only. In place rather than through a
/// rename (a rename costs a journalled directory update on the ADD path):
/// state files are written once per attachment, and a torn one is reported
/// by name and cleared by GC.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = ipam::private_file::open(path, OpenOptions::new().write(true).create(true).truncate(true))
        .map_err(DatapathError::io(format!("write {}", path.display())))?;
    f.write_all(bytes).map_err(DatapathError::io(format!("write {}", path.display())))
}

/// Writes a root-only file through a temporary one and a rename, so a kill
/// or a full disk leaves the old content or the new, never a torn file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = write_private(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(DatapathError::io(format!("rename {}", tmp.display()))));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Serialises ADD and DEL of one attachment across processes: two ADDs of
/// one container ID at once (kubelet restarts have done it) would otherwise
/// both get its addresses, and the loser's rollback free the winner's. One
/// of 256 lock files in one directory, chosen by the attachment, so none is
/// ever removed from under a waiter.
pub fn lock(state_dir: &str, network: &str, container_id: &str, ifname: &str) -> Result<FileLock> {
    let d = Sha256::digest(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    let path = Path::new(state_dir).join("locks").join(format!("{:02x}", d[0]));
    Ok(FileLock::acquire(&path, Duration::from_secs(20))?)
}

fn network_dir(state_dir: &str, network: &str) -> PathBuf {
    Path::new(state_dir).join("attachments").join(network)
}

pub fn path(state_dir: &str, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    network_dir(state_dir, network).join(ifname).join(format!("{}.json", id_file_name(container_id)))
}

impl Attachment {
    pub fn save(&self, state_dir: &str) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| DatapathError::State { path: state_dir.into(), why: e.to_string() })?;
        write_private(&path(state_dir, &self.network, &self.container_id, &self.ifname), &bytes)
    }

    pub fn load(state_dir: &str, network: &str, container_id: &str, ifname: &str) -> Result<Option<Self>> {
        read(&path(state_dir, network, container_id, ifname))
    }

    pub fn remove(state_dir: &str, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let p = path(state_dir, network, container_id, ifname);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(DatapathError::io(format!("remove {}", p.display()))(e)),
            _ => Ok(()),
        }
    }

    /// Every saved attachment of the network, each read on its own, so one
    /// unreadable file does not hide the others (GC and repair: a walk).
    pub fn list(state_dir: &str, network: &str) -> Vec<std::result::Result<Self, Unreadable>> {
        let mut out = Vec::new();
        let Ok(ifdirs) = fs::read_dir(network_dir(state_dir, network)) else {
            return out;
        };
        for ifdir in ifdirs.flatten() {
            let Ok(files) = fs::read_dir(ifdir.path()) else {
                continue;
            };
            let ifname = ifdir.file_name().to_string_lossy().into_owned();
            for f in files.flatten() {
                let path = f.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                out.extend(
                    read(&path)
                        .transpose()
                        .map(|r| r.map_err(|error| Unreadable { ifname: ifname.clone(), path: path.clone(), error })),
                );
            }
        }
        out
    }
}

/// A state file that does not read (torn by a kill or a full disk): whose
/// it is shows in its path.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub ifname: String,
    pub error: DatapathError,
}

impl Unreadable {
    pub fn is_of(&self, container_id: &str, ifname: &str) -> bool {
        self.ifname == ifname
            && self.path.file_stem().is_some_and(|s| s.to_string_lossy() == id_file_name(container_id))
    }

    pub fn remove(&self) -> Result<()> {
        fs::remove_file(&self.path).map_err(DatapathError::io(format!("remove {}", self.path.display())))
    }

    /// The container ID its name gives (not a hashed one's).
    pub fn container_id(&self) -> Option<String> {
        let stem = self.path.file_stem()?.to_string_lossy().into_owned();
        (!is_hashed_id_file_name(&stem)).then_some(stem)
    }

    /// Whether it still does not read: checked again under the attachment's
    /// lock, it tells a file an ADD was writing from one a kill cut short.
    pub fn still_unreadable(&self) -> bool {
        read(&self.path).is_err()
    }
}

impl Attachment {
    /// Every attachment of every network whose state reads; the rest are
    /// skipped (for questions such as "does any pod hold this port").
    pub fn every_readable(state_dir: &str) -> Vec<Self> {
        let files = fs::read_dir(Path::new(state_dir).join("attachments"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|net| fs::read_dir(net.path()).into_iter().flatten().flatten())
            .flat_map(|ifdir| fs::read_dir(ifdir.path()).into_iter().flatten().flatten());
        files.filter_map(|f| read(&f.path()).ok().flatten()).collect()
    }
}

fn read(p: &Path) -> Result<Option<Attachment>> {
    match fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| DatapathError::State {
            path: p.display().to_string(),
            why: format!("unreadable ({e}); remove it and run GC"),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DatapathError::io(format!("read {}", p.display()))(e)),
    }
}
