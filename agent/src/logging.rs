//! The agent's log: warnings and errors to stderr (everything with
//! --verbose), so stdout carries only a command's report; the daemon also
//! appends every line, with its time, to its own log file (root-only).

use log::{LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

struct Logger {
    file: Option<Mutex<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn install(verbose: bool, file: Option<&Path>) {
    let file = file.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(p)
            .map_err(|e| eprintln!("weavice-agent: warn: log file {}: {e}; logging to stderr only", p.display()))
            .ok()
    });
    let logger = LOGGER.get_or_init(|| Logger { file: file.map(Mutex::new) });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if verbose { LevelFilter::Info } else { LevelFilter::Warn });
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!("weavice-agent: {}: {}", record.level().as_str().to_lowercase(), record.args());
        eprintln!("{line}");
        if let Some(f) = &self.file {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            if let Ok(mut f) = f.lock() {
                // one write per line, unbuffered: nothing is lost at exit
                let _ = f.write_all(format!("{}.{:06} {line}\n", now.as_secs(), now.subsec_micros()).as_bytes());
            }
        }
    }

    fn flush(&self) {}
}
