//! Size-based rotation and retention. The appender whose write took the
//! active file past its limit renames it to `journal-<time>.jsonl` (names
//! sort by time) and removes the oldest beyond the file limit, under an
//! flock, so that of many appenders reaching the limit at once only one
//! rotates. Appenders hold the same lock shared while they write, so no
//! line goes into a file after its rename: a follower that saw the rename
//! and read the file to its end has all of it.

use crate::append::ACTIVE;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `journalMaxBytes` and `journalMaxFiles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The size at which the active file is rotated.
    pub max_bytes: u64,
    /// Files kept, the active one included.
    pub max_files: usize,
}

pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_FILES: usize = 8;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_BYTES, max_files: DEFAULT_MAX_FILES }
    }
}

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".jsonl";

/// The rotation lock of `dir`, taken `how` (LOCK_SH to append, LOCK_EX to
/// rotate); released when the file is dropped.
pub fn lock(dir: &Path, how: libc::c_int) -> io::Result<File> {
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join(".rotate.lock"))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(lock.as_raw_fd(), how) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock)
}

/// Rotates the active file of `dir` if it is (still) at its limit.
pub fn rotate(dir: &Path, limits: &Limits) -> io::Result<()> {
    let _lock = lock(dir, libc::LOCK_EX)?;
    let active = dir.join(ACTIVE);
    match fs::metadata(&active) {
        Ok(m) if m.len() >= limits.max_bytes => {}
        // another appender rotated it meanwhile
        _ => return Ok(()),
    }
    let stamp: String = crate::time::now().chars().filter(|c| !matches!(c, '-' | ':')).collect();
    fs::rename(&active, dir.join(format!("{PREFIX}{stamp}{SUFFIX}")))?;
    let rotated = rotated(dir);
    let keep = limits.max_files.saturating_sub(1);
    for old in &rotated[..rotated.len().saturating_sub(keep)] {
        fs::remove_file(old)?;
    }
    Ok(())
}

/// The rotated files of `dir`, oldest first (regular files only).
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    files
}

/// Every file of the journal in `dir`, oldest first: its records in order.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files = rotated(dir);
    let active = dir.join(ACTIVE);
    if active.is_file() {
        files.push(active);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::Journal;

    #[test]
    fn rotation_keeps_the_newest_files_and_every_line_of_them() {
        let state = std::env::temp_dir().join(format!("wv-rotate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let j = Journal::new(&state.to_string_lossy()).with_limits(Limits { max_bytes: 100, max_files: 3 });
        for i in 0..20 {
            j.append_line(&format!("{{\"n\":{i:03},\"pad\":\"{}\"}}", "x".repeat(30))).unwrap();
        }
        let files = files(j.dir());
        assert_eq!(files.len(), 3, "{files:?}");
        let lines: Vec<String> = files
            .iter()
            .flat_map(|f| fs::read_to_string(f).unwrap().lines().map(String::from).collect::<Vec<_>>())
            .collect();
        let numbers: Vec<u32> = lines.iter().map(|l| l[5..8].parse().unwrap()).collect();
        // the newest lines, each once, in order
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert_eq!(numbers.last(), Some(&19));
        fs::remove_dir_all(&state).unwrap();
    }
}
