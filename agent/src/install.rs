//! `weavice-agent install`: what the DaemonSet's init container runs on
//! each node. It copies `weavice` and `weavice-ipam` (beside this binary)
//! into the CNI bin dir and writes the conflist with the node's podCIDRs,
//! taken from `--pod-cidr` or from the node's Node object in the Kubernetes
//! API. Files are written beside their place and renamed in, so a runtime
//! never reads half a plugin or half a conflist. What cannot be done yet (an
//! unreachable API server, a node without a podCIDR so far, a directory not
//! writable) is logged and retried with backoff until it can.

use ipnet::IpNet;
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The conflist's file and network name.
pub const CONFLIST: &str = "10-weavice.conflist";
const PLUGINS: [&str; 2] = ["weavice", "weavice-ipam"];

pub struct Install {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    /// Given: no API needed.
    pub pod_cidrs: Vec<IpNet>,
    pub node_name: String,
}

/// Installs, retrying what fails with backoff (up to a minute between
/// tries), until it is done.
pub fn run(i: &Install) {
    let mut wait = Duration::from_secs(1);
    loop {
        match once(i) {
            Ok(()) => return,
            Err(e) => log::error!("install: {e}; retrying in {}s", wait.as_secs()),
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

fn once(i: &Install) -> Result<(), String> {
    let here = std::env::current_exe().map_err(|e| format!("where this binary is: {e}"))?;
    let from = here.parent().unwrap_or(Path::new("/"));
    for p in PLUGINS {
        let bytes = fs::read(from.join(p)).map_err(|e| format!("{}: {e}", from.join(p).display()))?;
        write_into(&i.bin_dir, p, &bytes, 0o755)?;
    }
    let cidrs = if i.pod_cidrs.is_empty() { node_cidrs(&i.node_name)? } else { i.pod_cidrs.clone() };
    write_into(&i.conf_dir, CONFLIST, conflist(&cidrs).as_bytes(), 0o644)?;
    log::info!(
        "install: {} in {}, {CONFLIST} for {} in {}",
        PLUGINS.join(" and "),
        i.bin_dir.display(),
        cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        i.conf_dir.display()
    );
    Ok(())
}

/// The conflist for a node's pod ranges: one range set per family.
pub fn conflist(cidrs: &[IpNet]) -> String {
    let ranges: Vec<_> = cidrs.iter().map(|c| json!([{"subnet": c.trunc().to_string()}])).collect();
    let c = json!({
        "cniVersion": "1.0.0",
        "name": "weavice",
        "plugins": [{
            "type": "weavice",
            "capabilities": {"portMappings": true},
            "ipam": {"type": "weavice-ipam", "ranges": ranges},
        }],
    });
    format!("{c:#}\n")
}

/// `name` in `dir`, whole or not at all.
fn write_into(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), String> {
    let (tmp, path) = (dir.join(format!(".{name}.tmp")), dir.join(name));
    let written = fs::write(&tmp, bytes)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&tmp, &path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

/// The node's podCIDRs from its Node object.
fn node_cidrs(name: &str) -> Result<Vec<IpNet>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| format!("no Kubernetes client: {e}"))?;
        let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
        let n = api.get(name).await.map_err(|e| format!("the Node {name}: {e}"))?;
        let cidrs = crate::nodes::pod_cidrs(&serde_json::to_value(&n).unwrap_or_default());
        // the podCIDR may come later: the controller manager assigns it
        match cidrs.is_empty() {
            true => Err(format!("node {name} has no podCIDR (spec.podCIDRs) yet")),
            false => Ok(cidrs),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_has_one_range_set_per_pod_cidr() {
        let c: serde_json::Value =
            serde_json::from_str(&conflist(&["10.244.1.0/24".parse().unwrap(), "fd00:10:244:1::/64".parse().unwrap()]))
                .unwrap();
        assert_eq!(
            c["plugins"][0]["ipam"]["ranges"],
            json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]])
        );
        assert_eq!(c["plugins"][0]["capabilities"], json!({"portMappings": true}));
    }
}
