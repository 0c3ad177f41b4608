//! Appending records: one `write(2)` of whole lines to a file opened with
//! O_APPEND, which the kernel keeps whole against other appenders (the
//! plugin's processes run many at once, and the daemon), root-only. A write
//! cut short (a full disk) leaves a torn line: the next append first ends
//! it, so the record after it stays whole. A record that cannot be written
//! is counted and reported by the next one that can; the count is the name
//! of an empty file (`.lost.<n>`), which a full disk still takes. A file
//! that reaches its size limit is rotated (rotate.rs).

use crate::rotate::{self, Limits};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file records go to, in the journal directory.
pub const ACTIVE: &str = "journal.jsonl";
const LOST: &str = ".lost.";

/// The journal of one state dir: `<stateDir>/journal/`.
pub struct Journal {
    dir: PathBuf,
    limits: Limits,
}

impl Journal {
    pub fn new(state_dir: &str) -> Journal {
        Journal { dir: Path::new(state_dir).join("journal"), limits: Limits::default() }
    }

    pub fn with_limits(mut self, limits: Limits) -> Journal {
        self.limits = limits;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file records go to.
    pub fn path(&self) -> PathBuf {
        self.dir.join(ACTIVE)
    }

    /// Records lost since the last one written, and the file that says so.
    fn lost_file(&self) -> Option<(u64, PathBuf)> {
        fs::read_dir(&self.dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix(LOST)?.parse().ok()?;
            Some((n, e.path()))
        })
    }

    /// Records lost since the last one written.
    pub fn lost(&self) -> u64 {
        self.lost_file().map_or(0, |(n, _)| n)
    }

    fn count_lost(&self) {
        let next = |n: u64| self.dir.join(format!("{LOST}{}", n + 1));
        // best effort: a rename or an empty file needs no data block
        let _ = match self.lost_file() {
            Some((n, path)) => fs::rename(path, next(n)),
            None => OpenOptions::new().create(true).write(true).truncate(false).mode(0o600).open(next(0)).map(drop),
        };
    }

    /// Appends `lines`, each a record ending in a newline, in one write.
    pub fn append_lines(&self, lines: &[u8]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let len = {
            // shared against a rotation: the file is renamed only once no
            // append into it is under way, so a follower that saw the
            // rename has every line of it
            let _lock = rotate::lock(&self.dir, libc::LOCK_SH)?;
            let mut f = OpenOptions::new().create(true).append(true).read(true).mode(0o600).open(self.path())?;
            let torn = !ends_a_line(&f)?;
            let mut bytes = Vec::with_capacity(lines.len() + 1);
            if torn {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(lines);
            // one write: appends of whole lines do not interleave
            let n = f.write(&bytes)?;
            if n != bytes.len() {
                return Err(io::Error::new(io::ErrorKind::WriteZero, format!("wrote {n} of {} bytes", bytes.len())));
            }
            f.metadata().map(|m| m.len()).unwrap_or(0)
        };
        if len >= self.limits.max_bytes {
            // the lines are written: a failed rotation loses nothing, the
            // next append tries again
            if let Err(e) = rotate::rotate(&self.dir, &self.limits) {
                log::warn!("journal {}: rotation failed: {e}", self.dir.display());
            }
        }
        Ok(())
    }

    /// Appends `line` (a record without its newline).
    pub fn append_line(&self, line: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.append_lines(&bytes)
    }

    /// Appends a record built by `record` from the count of records lost
    /// before it; a failure is counted for the next one.
    pub fn append<R: serde::Serialize>(&self, record: impl FnOnce(u64) -> R) -> io::Result<()> {
        let lost = self.lost_file();
        let line = serde_json::to_string(&record(lost.as_ref().map_or(0, |(n, _)| *n))).map_err(io::Error::other)?;
        match self.append_line(&line) {
            Ok(()) => {
                if let Some((_, path)) = lost {
                    let _ = fs::remove_file(path);
                }
                Ok(())
            }
            Err(e) => {
                self.count_lost();
                Err(e)
            }
        }
    }
}

/// Whether `f` is empty or ends with a newline (a write cut short does not).
fn ends_a_line(f: &File) -> io::Result<bool> {
    let len = f.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        f.read_at(&mut last, len - 1)?;
    }
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(tag: &str) -> (Journal, PathBuf) {
        let state = std::env::temp_dir().join(format!("wv-append-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        (Journal::new(&state.to_string_lossy()), state)
    }

    #[test]
    fn a_torn_line_is_ended_before_the_next_record() {
        let (j, state) = journal("torn");
        j.append_line(r#"{"n":1}"#).unwrap();
        // a write cut short by a full disk
        OpenOptions::new().append(true).open(j.path()).unwrap().write_all(br#"{"n":2,"pa"#).unwrap();
        j.append_line(r#"{"n":3}"#).unwrap();
        assert_eq!(fs::read_to_string(j.path()).unwrap(), "{\"n\":1}\n{\"n\":2,\"pa\n{\"n\":3}\n");
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn records_not_written_are_counted_without_disk_space_and_reported() {
        let (j, state) = journal("lost");
        // the journal's file is a directory: every append fails
        fs::create_dir_all(j.path()).unwrap();
        assert!(j.append(|lost| serde_json::json!({ "lost_before": lost })).is_err());
        assert!(j.append(|lost| serde_json::json!({ "lost_before": lost })).is_err());
        assert_eq!(j.lost(), 2);
        assert!(j.dir().join(".lost.2").exists(), "the count is a file's name");
        fs::remove_dir(j.path()).unwrap();
        j.append(|lost| serde_json::json!({ "lost_before": lost })).unwrap();
        assert_eq!(fs::read_to_string(j.path()).unwrap(), "{\"lost_before\":2}\n");
        assert_eq!(j.lost(), 0, "reported once");
        fs::remove_dir_all(&state).unwrap();
    }
}
