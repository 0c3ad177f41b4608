//! Network namespaces. Work inside one runs on a dedicated thread that
//! enters it and ends with the work ([`NetNs::run`]), so no thread ever
//! changes namespace under code that does not expect it: safe in a
//! multi-threaded daemon. A netlink socket opened there stays bound to that
//! namespace and can be used from any thread afterwards:
//! `ns.run(RouteSocket::open)` opens one once. A process that has only one
//! thread may instead switch that thread there and back ([`NetNs::enter`]),
//! which saves the thread (about 80 µs here).

use crate::{DatapathError, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, RawFd};

pub struct NetNs {
    file: File,
    pub path: String,
}

impl NetNs {
    pub fn open(path: &str) -> Result<Self> {
        // non-blocking: a FIFO there must not hang the open
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| {
            DatapathError::Netns {
                path: path.to_string(),
                why: if e.kind() == std::io::ErrorKind::NotFound { "does not exist".into() } else { e.to_string() },
            }
        })?;
        Ok(NetNs { file, path: path.to_string() })
    }

    /// Whether both are the same namespace (the same nsfs inode).
    pub fn same_as(&self, other: &NetNs) -> Result<bool> {
        let id = |ns: &NetNs| {
            ns.file.metadata().map(|m| (m.dev(), m.ino())).map_err(DatapathError::io(format!("stat {}", ns.path)))
        };
        Ok(id(self)? == id(other)?)
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a new thread inside this namespace and returns its result.
    /// Costs a thread (tens of microseconds), once per namespace visit.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            let worker = std::thread::Builder::new()
                .name("netns".into())
                .spawn_scoped(s, || {
                    self.enter()?;
                    Ok(f())
                })
                .map_err(DatapathError::io(format!("start a thread for {}", self.path)))?;
            worker.join().unwrap_or_else(|_| Err(DatapathError::Kernel(format!("work inside {} panicked", self.path))))
        })
    }

    /// The namespace the calling thread is in now.
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// Switches the calling thread into this namespace. Only for a process
    /// with a single thread, which switches back before doing anything else
    /// (the plugin); everything else uses [`NetNs::run`].
    pub fn enter(&self) -> Result<()> {
        // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            let why = if e.raw_os_error() == Some(libc::EINVAL) {
                "is not a network namespace".to_string()
            } else {
                e.to_string()
            };
            return Err(DatapathError::Netns { path: self.path.clone(), why });
        }
        Ok(())
    }
}
