//! Applied security-function chains: `<stateDir>/chains/<name>.json`, one
//! file per chain with the number it goes by in marks, set names and
//! routing tables, written atomically, root-only. `weavice-agent chain`
//! writes them; the plugin and the agent read them.

use crate::attachment::write_atomically;
use crate::marks::ChainMarks;
use crate::{DatapathError, Result};
use conf::chain::{validate_chain_name, Chain};
use ipam::filelock::FileLock;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A chain as applied on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// 1..=the marks' highest, unique on the node, kept for the chain's life.
    pub id: u16,
    pub chain: Chain,
    /// The node's mark layout (`.marks.json`), the same for every chain.
    #[serde(skip)]
    pub marks: ChainMarks,
}

fn dir(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("chains")
}

/// The file of chain `name` (a validated chain name: a file name as it is).
fn path(state_dir: &str, name: &str) -> PathBuf {
    dir(state_dir).join(format!("{name}.json"))
}

/// Whether the chains directory is there (made by the first apply, repair
/// or daemon start): without it pods' ADD and DEL skip the chains at once.
pub fn exists(state_dir: &str) -> bool {
    dir(state_dir).exists()
}

/// Serialises changes to chains and their members (the agent's apply and
/// repair, the plugin's ADD and DEL of their pods) across processes.
pub fn lock(state_dir: &str) -> Result<FileLock> {
    let d = dir(state_dir);
    fs::create_dir_all(&d).map_err(DatapathError::io(format!("create {}", d.display())))?;
    Ok(FileLock::acquire(&d.join(".lock"), Duration::from_secs(20))?)
}

/// Saves `chain` under its number (an existing one's, else the lowest
/// free); None when an identical chain was applied already.
pub fn save(state_dir: &str, chain: &Chain) -> Result<Option<Applied>> {
    let all = list(state_dir)?;
    let id = match all.iter().find(|a| a.chain.name() == chain.name()) {
        Some(a) if a.chain == *chain => return Ok(None),
        Some(a) => a.id,
        None => {
            let max = marks(state_dir).max_chain();
            (1..=max).find(|id| all.iter().all(|a| a.id != *id)).ok_or_else(|| {
                DatapathError::Invalid(format!(
                    "{max} chains are applied on this node already (what the chain mark bits hold): delete one"
                ))
            })?
        }
    };
    let applied = Applied { id, chain: chain.clone(), marks: marks(state_dir) };
    let bytes = serde_json::to_vec_pretty(&applied)
        .map_err(|e| DatapathError::State { path: chain.name().into(), why: e.to_string() })?;
    write_atomically(&path(state_dir, chain.name()), &bytes)?;
    Ok(Some(applied))
}

pub fn load(state_dir: &str, name: &str) -> Result<Option<Applied>> {
    let p = path(state_dir, name);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(|a| Some(Applied { marks: marks(state_dir), ..a })).map_err(|e| {
            DatapathError::State {
                path: p.display().to_string(),
                why: format!("unreadable ({e}); apply the chain again"),
            }
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DatapathError::io(format!("read {}", p.display()))(e)),
    }
}

fn marks_path(state_dir: &str) -> PathBuf {
    dir(state_dir).join(".marks.json")
}

/// The node's chain mark layout: the default unless one was chosen.
pub fn marks(state_dir: &str) -> ChainMarks {
    fs::read(marks_path(state_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Chooses the layout (while no chain is applied: the caller checks).
pub fn set_marks(state_dir: &str, m: ChainMarks) -> Result<()> {
    let d = dir(state_dir);
    fs::create_dir_all(&d).map_err(DatapathError::io(format!("create {}", d.display())))?;
    let bytes =
        serde_json::to_vec(&m).map_err(|e| DatapathError::State { path: "marks".into(), why: e.to_string() })?;
    write_atomically(&marks_path(state_dir), &bytes)
}

/// Every applied chain, by name.
pub fn list(state_dir: &str) -> Result<Vec<Applied>> {
    let Ok(entries) = fs::read_dir(dir(state_dir)) else { return Ok(Vec::new()) };
    // a chain's file is its name and .json; the rest (the lock, health) is not a chain
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(String::from))
        .filter(|n| validate_chain_name(n).is_ok())
        .collect();
    names.sort();
    names.iter().filter_map(|n| load(state_dir, n).transpose()).collect()
}

/// Removes chain `name`; what was applied, if anything.
pub fn remove(state_dir: &str, name: &str) -> Result<Option<Applied>> {
    let Some(applied) = load(state_dir, name)? else { return Ok(None) };
    let p = path(state_dir, name);
    match fs::remove_file(&p) {
        Ok(()) => Ok(Some(applied)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DatapathError::io(format!("remove {}", p.display()))(e)),
    }
}
