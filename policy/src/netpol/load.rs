//! `--policies PATH`: a file of one or more YAML documents (JSON is YAML),
//! or a directory of `*.yaml`, `*.yml` and `*.json` files; a `List` (what
//! `kubectl get networkpolicies -A -o yaml` prints) gives its items.

use super::model::{self, NetworkPolicy};
use crate::error::{bad, Error, Result};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

pub fn policies(paths: &[PathBuf]) -> Result<Vec<NetworkPolicy>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| bad(format!("--policies {}: {e}", path.display())))?;
        let before = out.len();
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(|e| bad(format!("--policies {}: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for f in files {
            out.extend(file(&f)?);
        }
        if out.len() == before {
            return Err(bad(format!("--policies {}: no NetworkPolicy in it", path.display())));
        }
    }
    let mut ids: Vec<String> = out.iter().map(NetworkPolicy::id).collect();
    ids.sort();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("--policies: the policy {} is given twice", w[0])));
    }
    Ok(out)
}

fn file(path: &Path) -> Result<Vec<NetworkPolicy>> {
    let text = fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => bad(format!("{}: not UTF-8 text", path.display())),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound => {
            bad(format!("--policies {}: {e}", path.display()))
        }
        _ => Error::io(path)(e),
    })?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| bad(format!("{}: not YAML: {e}", path.display())))?;
    let name = path.display().to_string();
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate().filter(|(_, d)| !d.is_null()) {
        let items = match doc["kind"].as_str() {
            Some("List" | "NetworkPolicyList") => doc["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![doc.clone()],
        };
        for item in &items {
            let p = model::parse(item, &name).map_err(|e| bad(format!("{name} (document {}): {e}", i + 1)))?;
            out.push(p);
        }
    }
    Ok(out)
}
