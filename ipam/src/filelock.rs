//! Exclusive advisory locks (flock) with a deadline, shared by IPAM and the plugin.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Held until dropped; the kernel releases it if the process dies.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("open lock file {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("lock {path} still held by another process after {waited:?}")]
    Timeout { path: String, waited: Duration },
}

impl FileLock {
    /// Polls with a growing pause so a crowd of parallel ADDs does not spin.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let file = crate::private_file::open(path, OpenOptions::new().create(true).truncate(false).write(true))
            .map_err(|source| LockError::Open { path: path.display().to_string(), source })?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.raw_os_error() != Some(libc::EINTR) {
                return Err(LockError::Open { path: path.display().to_string(), source: err });
            }
            if start.elapsed() >= timeout {
                return Err(LockError::Timeout { path: path.display().to_string(), waited: start.elapsed() });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_times_out_until_first_drops() {
        let dir = std::env::temp_dir().join(format!("wv-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let first = FileLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let again = FileLock::acquire(&path, Duration::from_millis(30));
        assert!(matches!(again, Err(LockError::Timeout { .. })));
        drop(first);
        assert!(FileLock::acquire(&path, Duration::from_millis(30)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
