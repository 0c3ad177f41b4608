//! Where the `log` records of this process go: lines appended to the
//! configured file; warnings and errors also to stderr, which runtimes
//! capture. Never stdout: stdout carries only the result or error JSON.

use conf::netconf::log_level::Level;
use log::{LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

struct Sink {
    file: Option<Mutex<File>>,
    tag: String,
}

struct Logger {
    sink: OnceLock<Sink>,
}

static LOGGER: Logger = Logger { sink: OnceLock::new() };

/// At start: until [`configure`], only errors reach stderr.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(LevelFilter::Error);
    }
}

/// Once the configuration is known.
pub fn configure(level: Level, file: Option<&str>, tag: String) {
    let file = file.and_then(|p| {
        ipam::private_file::open(std::path::Path::new(p), OpenOptions::new().create(true).append(true))
            .ok()
            .map(Mutex::new)
    });
    let _ = LOGGER.sink.set(Sink { file, tag });
    log::set_max_level(match level {
        Level::Error => LevelFilter::Error,
        Level::Warn => LevelFilter::Warn,
        Level::Info => LevelFilter::Info,
        Level::Debug => LevelFilter::Debug,
    });
}

/// weavice's own crates; the netlink crates' warnings about kernel
/// attributes they do not know are not the runtime's concern.
const OURS: [&str; 4] = ["weavice", "datapath", "ipam", "conf"];

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        let ours = OURS.iter().any(|c| metadata.target().split("::").next() == Some(c));
        metadata.level() <= log::max_level() && (ours || metadata.level() == log::Level::Error)
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = self.sink.get();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let level = match record.level() {
            log::Level::Error => "Error",
            log::Level::Warn => "Warn",
            log::Level::Info => "Info",
            log::Level::Debug => "Debug",
            log::Level::Trace => "Trace",
        };
        let line = format!(
            "{}.{:06} {level} weavice[{}] {} {}\n",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            sink.map_or("", |s| s.tag.as_str()),
            record.args()
        );
        if record.level() <= log::Level::Warn {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if let Some(f) = sink.and_then(|s| s.file.as_ref()) {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}
