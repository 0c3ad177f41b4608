//! `--journal PATH`: which files to read. A file is read as it is; a
//! directory (a node's journal, a state dir, or journals copied from many
//! nodes) gives every `*.jsonl` file under it. Within a directory names sort
//! oldest first: `journal-<time>.jsonl` before the active `journal.jsonl`.

use crate::error::{bad, Error, Result};
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How deep a directory is searched: `journals/<node>/state/journal/`.
const MAX_DEPTH: usize = 4;
/// The longest line taken for a record (records are about 1 KB).
const MAX_LINE: usize = 1 << 20;

pub struct File {
    pub path: PathBuf,
    pub size: u64,
}

/// The files `paths` name, each once (by inode), in a fixed order.
pub fn files(paths: &[PathBuf]) -> Result<Vec<File>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| bad(format!("--journal {}: {e}", path.display())))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(path, 0, &mut found)?;
            if found.is_empty() {
                return Err(bad(format!("--journal {}: no journal files (*.jsonl) under it", path.display())));
            }
        } else if meta.is_file() {
            found.push(path.clone());
        } else {
            return Err(bad(format!("--journal {}: not a file or a directory", path.display())));
        }
        for f in found {
            let meta = fs::metadata(&f).map_err(Error::io(&f))?;
            if seen.insert((meta.dev(), meta.ino())) {
                out.push(File { path: f, size: meta.len() });
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| bad(format!("--journal {}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(kind) = e.file_type() else { continue };
        let path = e.path();
        if kind.is_file() && path.extension().is_some_and(|x| x == "jsonl") {
            found.push(path);
        } else if kind.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, found)?;
        }
    }
    Ok(())
}

/// Calls `each` with every line of `file` (without its newline) and the
/// bytes read so far. A line longer than [`MAX_LINE`] is handed over cut
/// short, to be skipped as no record, so memory stays bounded.
pub fn each_line(path: &Path, each: &mut dyn FnMut(&[u8]), progress: &mut dyn FnMut(u64)) -> Result<()> {
    let file = fs::File::open(path).map_err(Error::io(path))?;
    let mut input = BufReader::with_capacity(256 << 10, file);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        let n = (&mut input).take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(Error::io(path))?;
        if n == 0 {
            return Ok(());
        }
        progress(n as u64);
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() >= MAX_LINE {
            // the rest of an overlong line
            loop {
                let buf = input.fill_buf().map_err(Error::io(path))?;
                if buf.is_empty() {
                    break;
                }
                let (used, end) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                input.consume(used);
                progress(used as u64);
                if end {
                    break;
                }
            }
        }
        each(&line);
    }
}
