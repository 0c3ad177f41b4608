//! The node journal: JSON Lines under `<stateDir>/journal/`, one record per
//! line, appended by the plugin (pod records at ADD and DEL) and, later, the
//! node daemon (flows). docs/journal.md describes the records.
//!
//! [`record`] is the schema, [`time`] the timestamps (RFC 3339 UTC with nine
//! fractional digits, so lines sort as text), [`append`] the writer (whole
//! lines, many processes at once), [`read`] the reader (a torn or corrupt
//! line is skipped and counted, never fatal).

pub mod append;
pub mod holdings;
pub mod read;
pub mod record;
pub mod rotate;
pub mod time;

pub use append::Journal;
pub use record::{Endpoint, FlowEvent, FlowRecord, LostRecord, PodEvent, PodRecord, SCHEMA};

/// This node's name, as records give it.
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}
