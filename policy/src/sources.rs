//! `--journal PATH`: which files to read. A file is read as it is; a
//! directory (a node's journal, a state dir, or journals copied from many
//! nodes) gives every `*.jsonl` file under it. Files are read in the order
//! of their first record's time, so a node's rotated files come in the
//! order written whatever order they are named in; a file with the same
//! content as another (a second copy) is read once.

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
    let mut out: Vec<(String, File)> = Vec::new();
    let mut seen = HashSet::new();
    let mut contents = HashSet::new();
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
            let meta = fs::metadata(&f).map_err(|e| bad(format!("--journal {}: {e}", f.display())))?;
            if !seen.insert((meta.dev(), meta.ino())) {
                continue;
            }
            let (first_time, fingerprint) = identify(&f)?;
            if meta.len() > 0 && !contents.insert((meta.len(), fingerprint)) {
                eprintln!("weavice-policy: {}: the same content as another journal file: read once", f.display());
                continue;
            }
            out.push((first_time, File { path: f, size: meta.len() }));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1.path).cmp(&(&b.0, &b.1.path)));
    Ok(out.into_iter().map(|(_, f)| f).collect())
}

/// A file's first record time ("" if none) and a hash of its first and
/// last 64 KiB.
fn identify(path: &Path) -> Result<(String, u64)> {
    use std::hash::{Hash, Hasher};
    use std::io::{Seek, SeekFrom};
    const EDGE: usize = 64 << 10;
    let open_err = |e: std::io::Error| bad(format!("--journal {}: {e}", path.display()));
    let mut file = fs::File::open(path).map_err(open_err)?;
    let mut head = vec![0u8; EDGE];
    let n = read_full(&mut file, &mut head).map_err(Error::io(path))?;
    head.truncate(n);
    let mut tail = vec![0u8; EDGE];
    let len = file.metadata().map_err(Error::io(path))?.len();
    let m = if len > EDGE as u64 {
        file.seek(SeekFrom::Start(len - EDGE as u64)).map_err(Error::io(path))?;
        read_full(&mut file, &mut tail).map_err(Error::io(path))?
    } else {
        0
    };
    tail.truncate(m);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&head, &tail).hash(&mut h);
    let first_time = head
        .split(|b| *b == b'\n')
        .find_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok()?["time"].as_str().map(str::to_string))
        .unwrap_or_default();
    Ok((first_time, h.finish()))
}

fn read_full(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
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
        // a symlink to a file is followed; to a directory not (loops)
        let file = kind.is_file() || (kind.is_symlink() && path.is_file());
        if file && path.extension().is_some_and(|x| x == "jsonl") {
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
    let file = fs::File::open(path).map_err(|e| bad(format!("--journal {}: {e}", path.display())))?;
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
