//! Log lines appended to the configured file; warnings and errors also go to
//! stderr, which runtimes capture. Never stdout:
//! stdout carries only the result or error JSON.

use conf::netconf::log_level::Level;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::OnceLock;

struct Sink {
    level: Level,
    file: Option<std::sync::Mutex<std::fs::File>>,
    tag: String,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Called once the configuration is known; before that only errors reach stderr.
pub fn init(level: Level, file: Option<&str>, tag: String) {
    let file = file.and_then(|p| {
        ipam::private_file::open(std::path::Path::new(p), OpenOptions::new().create(true).append(true))
            .ok()
            .map(std::sync::Mutex::new)
    });
    let _ = SINK.set(Sink { level, file, tag });
}

pub fn log(level: Level, msg: std::fmt::Arguments) {
    let sink = SINK.get();
    if level > sink.map_or(Level::Error, |s| s.level) {
        return;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let tag = sink.map_or("", |s| s.tag.as_str());
    let line = format!(
        "{}.{:06} {:?} weavice[{}] {tag} {msg}\n",
        now.as_secs(),
        now.subsec_micros(),
        level,
        std::process::id()
    );
    if level <= Level::Warn {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if let Some(f) = sink.and_then(|s| s.file.as_ref()) {
        if let Ok(mut f) = f.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::logger::log(conf::netconf::log_level::Level::Info, format_args!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::logger::log(conf::netconf::log_level::Level::Warn, format_args!($($t)*)) } }
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::logger::log(conf::netconf::log_level::Level::Debug, format_args!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::logger::log(conf::netconf::log_level::Level::Error, format_args!($($t)*)) } }
