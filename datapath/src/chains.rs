//! Applied security-function chains: `<stateDir>/chains/<name>.json`, one
//! file per chain, written atomically, root-only. `weavice-agent chain`
//! writes them; the plugin and the agent read them.

use crate::attachment::write_atomically;
use crate::{DatapathError, Result};
use conf::chain::Chain;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

fn dir(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("chains")
}

/// The file of chain `name` (a validated chain name: a file name as it is).
fn path(state_dir: &str, name: &str) -> PathBuf {
    dir(state_dir).join(format!("{name}.json"))
}

/// Saves `chain`; false when an identical one was applied already.
pub fn save(state_dir: &str, chain: &Chain) -> Result<bool> {
    if load(state_dir, chain.name())?.as_ref() == Some(chain) {
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(chain)
        .map_err(|e| DatapathError::State { path: chain.name().into(), why: e.to_string() })?;
    write_atomically(&path(state_dir, chain.name()), &bytes)?;
    Ok(true)
}

pub fn load(state_dir: &str, name: &str) -> Result<Option<Chain>> {
    let p = path(state_dir, name);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| DatapathError::State {
            path: p.display().to_string(),
            why: format!("unreadable ({e}); apply the chain again"),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DatapathError::io(format!("read {}", p.display()))(e)),
    }
}

/// Every applied chain, by name.
pub fn list(state_dir: &str) -> Result<Vec<Chain>> {
    let Ok(entries) = fs::read_dir(dir(state_dir)) else { return Ok(Vec::new()) };
    let mut names: Vec<String> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(String::from)).collect();
    names.sort();
    names.iter().filter_map(|n| load(state_dir, n).transpose()).collect()
}

/// Removes chain `name`; false when there was none.
pub fn remove(state_dir: &str, name: &str) -> Result<bool> {
    let p = path(state_dir, name);
    match fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DatapathError::io(format!("remove {}", p.display()))(e)),
    }
}
