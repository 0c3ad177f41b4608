//! Which route functions the node daemon's probes found not forwarding:
//! `<stateDir>/chains/.health.json` (no chain's name: those begin with a
//! letter or digit), `{"<chain>": ["<function>", ...]}`,
//! written by `weavice-agent run`, read by everything that routes a chain's
//! hops (a function down is routed as if its pod were gone). No file, or one
//! that does not read: every function is taken as up.

use crate::attachment::write_atomically;
use crate::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

/// Functions found down, by chain name.
pub type Down = BTreeMap<String, BTreeSet<String>>;

fn path(state_dir: &str) -> PathBuf {
    PathBuf::from(state_dir).join("chains").join(".health.json")
}

pub fn load(state_dir: &str) -> Down {
    let p = path(state_dir);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            log::warn!("{}: {e}; every function is taken as up", p.display());
            Down::new()
        }),
        Err(_) => Down::new(),
    }
}

pub fn save(state_dir: &str, down: &Down) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(down).unwrap_or_default();
    write_atomically(&path(state_dir), &bytes)
}

/// The functions of chain `name` found down.
pub fn of<'a>(down: &'a Down, name: &str) -> Vec<&'a str> {
    down.get(name).map(|s| s.iter().map(String::as_str).collect()).unwrap_or_default()
}
