//! The node journal: JSON Lines under `<stateDir>/journal/`, one record per
//! line, appended by the plugin (pod records at ADD and DEL) and, later, the
//! node daemon (flows). docs/journal.md describes the records.
//!
//! [`record`] is the schema, [`time`] the timestamps (RFC 3339 UTC with nine
//! fractional digits, so lines sort as text), [`append`] the writer (whole
//! lines, many processes at once), [`read`] the reader (a torn or corrupt
//! line is skipped and counted, never fatal).

pub mod append;
pub mod read;
pub mod record;
pub mod time;

pub use append::Journal;
pub use record::{Endpoint, PodEvent, PodRecord, SCHEMA};
