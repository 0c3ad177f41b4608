//! Appending records: one `write(2)` of whole lines to a file opened with
//! O_APPEND, which the kernel keeps whole against other appenders (the
//! plugin's processes run many at once, and the daemon), root-only. A record
//! that cannot be written is counted in `.lost` and reported by the next one
//! that can. A file that reaches its size limit is rotated (rotate.rs).

use crate::rotate::{self, Limits};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file records go to, in the journal directory.
pub const ACTIVE: &str = "journal.jsonl";

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

    fn lost_path(&self) -> PathBuf {
        self.dir.join(".lost")
    }

    /// Records lost since the last one written.
    pub fn lost(&self) -> u64 {
        fs::read_to_string(self.lost_path()).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// Appends `lines`, each a record ending in a newline, in one write.
    pub fn append_lines(&self, lines: &[u8]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        let len = {
            // shared against a rotation: the file is renamed only once no
            // append into it is under way, so a follower that saw the
            // rename has every line of it
            let _lock = rotate::lock(&self.dir, libc::LOCK_SH)?;
            let mut f = OpenOptions::new().create(true).append(true).mode(0o600).open(self.path())?;
            // one write: appends of whole lines do not interleave
            let n = f.write(lines)?;
            if n != lines.len() {
                // end the torn line, so that the next record is not glued to it
                let _ = f.write(b"\n");
                return Err(io::Error::new(io::ErrorKind::WriteZero, format!("wrote {n} of {} bytes", lines.len())));
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

    /// Ends the active file's last line if a crash left it torn, so that the
    /// next record starts a line of its own (the torn one stays, skipped by
    /// readers).
    pub fn end_torn_line(&self) -> io::Result<()> {
        let mut f = match OpenOptions::new().read(true).append(true).open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let mut last = [0u8; 1];
        if len > 0 && f.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n' {
            f.write_all(b"\n")?;
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
        let lost = self.lost();
        let line = serde_json::to_string(&record(lost)).map_err(io::Error::other)?;
        match self.append_line(&line) {
            Ok(()) => {
                if lost > 0 {
                    let _ = fs::remove_file(self.lost_path());
                }
                Ok(())
            }
            Err(e) => {
                // best effort: a full disk may refuse this too
                let _ =
                    fs::create_dir_all(&self.dir).and_then(|()| fs::write(self.lost_path(), (lost + 1).to_string()));
                Err(e)
            }
        }
    }
}
