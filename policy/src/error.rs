//! The tool's errors and the exit code each maps to: 2 when the input is
//! wrong (the user fixes a path, a file or a flag), 1 for anything else.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadInput(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A check of the tool's own output failed: a bug to report.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) => 2,
            Error::Io { .. } | Error::Internal(_) => 1,
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub fn bad(message: impl Into<String>) -> Error {
    Error::BadInput(message.into())
}

pub type Result<T> = std::result::Result<T, Error>;
