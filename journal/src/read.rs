//! Reading a journal: every line that parses as a record, and how many did
//! not (a torn last line after a crash, garbage): skipped and counted, never
//! fatal.

use crate::append::ACTIVE;
use crate::rotate;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{BufRead, Read as _};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a read found.
#[derive(Debug)]
pub struct Read<R> {
    pub records: Vec<R>,
    /// Lines that are not a record of this kind or not JSON at all.
    pub skipped: usize,
}

/// What one line of a journal is, read as a record of kind `kind`.
pub enum Line<R> {
    Record(R),
    /// A record of another kind.
    Other,
    /// Not a record of this kind or not JSON at all.
    Skipped,
}

/// The kind of a line weavice wrote, without parsing it: its records start
/// `{"v":1,"time":"<30 characters>","kind":"`, so the kind is at a fixed
/// place. None for a line of another layout (another writer's order).
pub fn fixed_kind(line: &[u8]) -> Option<&[u8]> {
    const KIND_AT: usize = r#"{"v":1,"time":""#.len() + 30 + r#"","kind":""#.len();
    if !line.starts_with(br#"{"v":1,"time":""#) || line.get(KIND_AT - 10..KIND_AT) != Some(br#"","kind":""#) {
        return None;
    }
    let rest = &line[KIND_AT..];
    rest.iter().position(|b| *b == b'"').map(|end| &rest[..end])
}

pub fn line<R: DeserializeOwned>(line: &[u8], kind: &str) -> Line<R> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Other;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else { return Line::Skipped };
    if value["kind"] != kind {
        return Line::Other;
    }
    match serde_json::from_value(value) {
        Ok(r) => Line::Record(r),
        Err(_) => Line::Skipped,
    }
}

/// The records of kind `kind` in `input`; lines of other kinds are not
/// counted as skipped.
pub fn records<R: DeserializeOwned>(input: impl BufRead, kind: &str) -> Read<R> {
    let mut out = Read { records: Vec::new(), skipped: 0 };
    for l in input.split(b'\n') {
        let Ok(l) = l else {
            out.skipped += 1;
            break;
        };
        match line(&l, kind) {
            Line::Record(r) => out.records.push(r),
            Line::Other => {}
            Line::Skipped => out.skipped += 1,
        }
    }
    out
}

/// How much a follower reads at a time.
const CHUNK: usize = 256 << 10;
/// The longest line taken for a record (records are about 1 KB).
const MAX_LINE: usize = 1 << 20;

/// Reads a journal's lines in order across files and rotations: what is
/// there, then, at each [`poll`](Self::poll), what was written since.
pub struct Follower {
    dir: PathBuf,
    /// The file being read and its inode.
    file: Option<(File, u64)>,
    /// Files to read after it, oldest first.
    queued: VecDeque<PathBuf>,
    /// The newest rotated file read to its end: the ones after it are new.
    done: Option<PathBuf>,
    /// The start of a line not yet whole.
    partial: Vec<u8>,
    /// In a line longer than [`MAX_LINE`]: its rest is dropped.
    overlong: bool,
}

impl Follower {
    /// From the first line of the oldest file.
    pub fn from_start(dir: &Path) -> Follower {
        Follower {
            dir: dir.to_path_buf(),
            file: None,
            queued: VecDeque::new(),
            done: None,
            partial: Vec::new(),
            overlong: false,
        }
    }

    /// Calls `each` with every whole line (without its newline) written
    /// since the last call.
    pub fn poll(&mut self, each: &mut dyn FnMut(&[u8])) {
        let mut buf = Vec::new();
        loop {
            if self.file.is_none() {
                if self.queued.is_empty() {
                    self.queued = self.unread();
                }
                let Some(next) = self.queued.pop_front() else { return };
                match File::open(&next).and_then(|f| Ok((f.metadata()?.ino(), f))) {
                    Ok((ino, f)) => {
                        if next.file_name() != Some(ACTIVE.as_ref()) {
                            self.done = Some(next);
                        }
                        self.file = Some((f, ino));
                    }
                    // removed by retention meanwhile
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        log::warn!("journal file {}: {e}; skipped", next.display());
                        if next.file_name() == Some(ACTIVE.as_ref()) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some((mut file, ino)) = self.file.take() else { return };
            // in bounded pieces: memory stays the same however much came
            loop {
                buf.resize(CHUNK, 0);
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.take(&buf[..n], each),
                    Err(e) => {
                        log::warn!("journal {}: {e}", self.dir.display());
                        return;
                    }
                }
            }
            self.file = Some((file, ino));
            if !self.queued.is_empty() {
                self.finish_file(each);
                continue;
            }
            // the active file renamed away: it is whole; its successors follow
            let ours = ino;
            if fs::metadata(self.dir.join(ACTIVE)).is_ok_and(|m| m.ino() == ours) {
                return;
            }
            let files = rotate::files(&self.dir);
            let at = files.iter().position(|p| fs::metadata(p).is_ok_and(|m| m.ino() == ours));
            if let Some(at) = at {
                self.done = Some(files[at].clone());
            }
            // gone already (retention): every file there is comes after it
            self.queued = files.into_iter().skip(at.map_or(0, |i| i + 1)).collect();
            if self.queued.is_empty() {
                return;
            }
            // read once more: lines written between the read and the rename
        }
    }

    /// The files not read yet: the rotated ones after the last read to its
    /// end (all of them at first), then the active one.
    fn unread(&self) -> VecDeque<PathBuf> {
        rotate::files(&self.dir)
            .into_iter()
            .filter(|p| p.file_name() == Some(ACTIVE.as_ref()) || self.done.as_ref().is_none_or(|d| p > d))
            .collect()
    }

    /// Hands over the whole lines `bytes` completes. A line past
    /// [`MAX_LINE`] is no record: its first part is handed over (to be
    /// skipped as such) and the rest dropped, so memory stays bounded.
    fn take(&mut self, mut bytes: &[u8], each: &mut dyn FnMut(&[u8])) {
        if self.overlong {
            let Some(end) = bytes.iter().position(|b| *b == b'\n') else { return };
            self.overlong = false;
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') {
            for l in self.partial[..end].split(|b| *b == b'\n') {
                each(l);
            }
            self.partial.drain(..=end);
        }
        if self.partial.len() > MAX_LINE {
            each(&self.partial[..MAX_LINE]);
            self.partial.clear();
            self.overlong = true;
        }
    }

    /// Ends the current file: a last line without its newline is handed
    /// over (a torn record is the reader's to skip).
    fn finish_file(&mut self, each: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() {
            each(&self.partial);
            self.partial.clear();
        }
        self.overlong = false;
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PodRecord;

    #[test]
    fn a_follower_reads_every_line_once_across_rotations() {
        use crate::append::Journal;
        use crate::rotate::Limits;
        let state = std::env::temp_dir().join(format!("wv-follow-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let j = Journal::new(&state.to_string_lossy()).with_limits(Limits { max_bytes: 64, max_files: 100 });
        let mut f = Follower::from_start(j.dir());
        let mut seen = Vec::new();
        for i in 0..50 {
            j.append_line(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(20))).unwrap();
            // polled after every few appends: rotations happen in between
            if i % 7 == 0 {
                f.poll(&mut |l| seen.push(String::from_utf8_lossy(l).into_owned()));
            }
        }
        f.poll(&mut |l| seen.push(String::from_utf8_lossy(l).into_owned()));
        let numbers: Vec<u32> = seen
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["n"].as_u64().unwrap() as u32)
            .collect();
        assert_eq!(numbers, (0..50).collect::<Vec<_>>());
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn a_follower_made_before_the_journal_reads_the_files_rotated_before_its_first_poll() {
        use crate::append::Journal;
        use crate::rotate::Limits;
        let state = std::env::temp_dir().join(format!("wv-follow-late-{}", std::process::id()));
        let _ = fs::remove_dir_all(&state);
        let j = Journal::new(&state.to_string_lossy()).with_limits(Limits { max_bytes: 64, max_files: 100 });
        let mut f = Follower::from_start(j.dir());
        let mut seen = 0;
        f.poll(&mut |_| seen += 1);
        for i in 0..50 {
            j.append_line(&format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(20))).unwrap();
        }
        f.poll(&mut |_| seen += 1);
        assert_eq!(seen, 50);
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn an_endless_line_is_skipped_in_bounded_memory() {
        let state = std::env::temp_dir().join(format!("wv-long-{}", std::process::id()));
        let dir = state.join("journal");
        fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![b'x'; 5 * MAX_LINE];
        bytes.extend_from_slice(b"\n{\"kind\":\"pod\"}\n");
        fs::write(dir.join(ACTIVE), &bytes).unwrap();
        let mut lines = Vec::new();
        Follower::from_start(&dir).poll(&mut |l| lines.push(l.len()));
        assert_eq!(lines, vec![MAX_LINE, 14], "the long line's first part, then the record");
        fs::remove_dir_all(&state).unwrap();
    }

    #[test]
    fn torn_and_garbage_lines_are_skipped_and_counted() {
        let good = r#"{"v":1,"time":"2026-11-28T07:31:07.000000001Z","kind":"pod","event":"add","node":"n","network":"p","container_id":"c","ifname":"eth0","netns":"/x","ips":["10.0.0.2"]}"#;
        let input = format!("{good}\nnot json at all\n{{\"kind\":\"flow\"}}\n{good}\n{}", &good[..40]);
        let r: Read<PodRecord> = records(input.as_bytes(), "pod");
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.skipped, 2, "the garbage line and the torn last one");
    }
}
