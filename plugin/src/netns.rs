//! Entering network namespaces. All setns calls live here; each runs a
//! closure on the current thread and switches back before returning.

use crate::error::PluginError;
use std::fs::File;
use std::os::unix::io::{AsRawFd, RawFd};

pub struct NetNs {
    file: File,
    pub path: String,
}

impl NetNs {
    pub fn open(path: &str) -> Result<Self, PluginError> {
        let file = File::open(path).map_err(|e| PluginError::Netns {
            path: path.to_string(),
            why: if e.kind() == std::io::ErrorKind::NotFound { "does not exist".into() } else { e.to_string() },
        })?;
        Ok(NetNs { file, path: path.to_string() })
    }

    /// The namespace this thread is in now.
    pub fn current() -> Result<Self, PluginError> {
        Self::open("/proc/thread-self/ns/net")
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn setns(&self) -> Result<(), PluginError> {
        // SAFETY: setns on a descriptor we own; it only changes this thread's namespace.
        if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            let why = if e.raw_os_error() == Some(libc::EINVAL) {
                "is not a network namespace".to_string()
            } else {
                e.to_string()
            };
            return Err(PluginError::Netns { path: self.path.clone(), why });
        }
        Ok(())
    }

    /// Runs `f` inside this namespace; `home` is where the thread returns.
    /// `f` must not await: the thread is switched only for its duration.
    pub fn run<T>(&self, home: &NetNs, f: impl FnOnce() -> T) -> Result<T, PluginError> {
        self.setns()?;
        let out = f();
        home.setns()?;
        Ok(out)
    }
}
