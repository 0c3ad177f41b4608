//! Root-only files in root-only directories (0600 in 0700), the directories
//! made on first use: opening first and creating only on ENOENT keeps the
//! common case to one syscall on the ADD path.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

pub fn make_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Opens `path` with `opts` (mode 0600 when created), creating missing parents.
pub fn open(path: &Path, opts: &mut OpenOptions) -> io::Result<File> {
    opts.mode(0o600);
    match opts.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_dirs(path.parent().unwrap_or(Path::new("/")))?;
            opts.open(path)
        }
        r => r,
    }
}
