//! Reading a journal: every line that parses as a record, and how many did
//! not (a torn last line after a crash, garbage): skipped and counted, never
//! fatal.

use serde::de::DeserializeOwned;
use std::io::BufRead;

/// What a read found.
#[derive(Debug)]
pub struct Read<R> {
    pub records: Vec<R>,
    /// Lines that are not a record of this kind or not JSON at all.
    pub skipped: usize,
}

/// The records of kind `kind` in `input`; lines of other kinds are not
/// counted as skipped.
pub fn records<R: DeserializeOwned>(input: impl BufRead, kind: &str) -> Read<R> {
    let mut out = Read { records: Vec::new(), skipped: 0 };
    for line in input.split(b'\n') {
        let Ok(line) = line else {
            out.skipped += 1;
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&line) else {
            out.skipped += 1;
            continue;
        };
        if value["kind"] != kind {
            continue;
        }
        match serde_json::from_value(value) {
            Ok(r) => out.records.push(r),
            Err(_) => out.skipped += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PodRecord;

    #[test]
    fn torn_and_garbage_lines_are_skipped_and_counted() {
        let good = r#"{"v":1,"time":"2026-11-28T07:31:07.000000001Z","kind":"pod","event":"add","node":"n","network":"p","container_id":"c","ifname":"eth0","netns":"/x","ips":["10.0.0.2"]}"#;
        let input = format!("{good}\nnot json at all\n{{\"kind\":\"flow\"}}\n{good}\n{}", &good[..40]);
        let r: Read<PodRecord> = records(input.as_bytes(), "pod");
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.skipped, 2, "the garbage line and the torn last one");
    }
}
