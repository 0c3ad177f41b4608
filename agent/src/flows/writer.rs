//! The daemon's side of the journal: records gathered into whole lines and
//! appended in one write every [`FLUSH_EVERY`] (or sooner when many wait),
//! which keeps up with tens of thousands of records a second. Records that
//! could not be written (a full disk) are counted and reported in a `lost`
//! record once writing works again.

use journal::{Journal, LostRecord, SCHEMA};
use serde::Serialize;
use std::time::{Duration, Instant};

pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Flushed sooner past this many bytes, or a quarter of the journal's file
/// size limit: a file ends at most that far past its limit.
const FLUSH_BYTES: usize = 256 << 10;

pub struct Writer {
    journal: Journal,
    node: String,
    buf: Vec<u8>,
    flush_bytes: usize,
    lines: u64,
    /// Records not written, not yet reported.
    unwritten: u64,
    flushed: Instant,
    pub written: u64,
}

impl Writer {
    pub fn new(journal: Journal, max_bytes: u64, node: String) -> Writer {
        let flush_bytes = FLUSH_BYTES.min(usize::try_from(max_bytes / 4).unwrap_or(FLUSH_BYTES));
        Writer {
            journal,
            node,
            buf: Vec::with_capacity(flush_bytes * 2),
            flush_bytes,
            lines: 0,
            unwritten: 0,
            flushed: Instant::now(),
            written: 0,
        }
    }

    /// The node the records are of.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn push(&mut self, record: &impl Serialize) {
        if serde_json::to_writer(&mut self.buf, record).is_ok() {
            self.buf.push(b'\n');
            self.lines += 1;
        }
        if self.buf.len() >= self.flush_bytes {
            self.flush();
        }
    }

    /// A `lost` record: `n` events from `source` never became records.
    pub fn lost(&mut self, source: &str, n: u64) {
        log::warn!("{n} event(s) lost ({source}); recorded in the journal");
        let line = self.lost_line(source, n);
        self.buf.extend_from_slice(&line);
        self.lines += 1;
    }

    pub fn due(&self) -> bool {
        self.flushed.elapsed() >= FLUSH_EVERY
    }

    pub fn flush(&mut self) {
        self.flushed = Instant::now();
        if self.lines == 0 {
            return;
        }
        let (mut buf, records) = (std::mem::take(&mut self.buf), self.lines);
        let earlier = std::mem::take(&mut self.unwritten);
        if earlier > 0 {
            let mut report = self.lost_line("JOURNAL_WRITE", earlier);
            report.append(&mut buf);
            buf = report;
        }
        match self.journal.append_lines(&buf) {
            Ok(()) => self.written += records,
            Err(e) => {
                if earlier == 0 {
                    log::error!("journal {}: records not written: {e}", self.journal.path().display());
                }
                self.unwritten = earlier + records;
            }
        }
        buf.clear();
        self.buf = buf;
        self.lines = 0;
    }

    fn lost_line(&self, source: &str, n: u64) -> Vec<u8> {
        let r = LostRecord {
            v: SCHEMA,
            time: journal::time::now(),
            kind: "lost".into(),
            node: self.node.clone(),
            source: source.into(),
            num_events_lost: n,
        };
        let mut line = serde_json::to_vec(&r).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
