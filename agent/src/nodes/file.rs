//! `--nodes FILE`: the node list as `kubectl get nodes -o json` prints it,
//! read again when the file changes.

use super::Node;
use std::path::PathBuf;
use std::time::SystemTime;

pub struct NodeFile {
    pub path: PathBuf,
    /// Whether its absence was logged already.
    warned: bool,
    seen: Option<(SystemTime, u64)>,
}

impl NodeFile {
    pub fn new(path: PathBuf) -> NodeFile {
        NodeFile { path, warned: false, seen: None }
    }

    /// The list, read again if the file changed. A file gone or unreadable
    /// is logged: the last good state stays.
    pub fn poll(&mut self) -> Option<Vec<Node>> {
        let stamp = std::fs::metadata(&self.path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_none() || stamp == self.seen {
            if stamp.is_none() && (self.seen.is_some() || !self.warned) {
                log::error!("nodes: {} is not there; the routes stay as they are until it is", self.path.display());
                (self.seen, self.warned) = (None, true);
            }
            return None;
        }
        self.seen = stamp;
        let source = self.path.display().to_string();
        match std::fs::read(&self.path).map_err(|e| e.to_string()).and_then(|t| super::parse(&t)) {
            Ok((nodes, skipped)) => {
                for s in skipped {
                    log::error!("nodes: {source}: {s}; skipped");
                }
                Some(nodes)
            }
            Err(e) => {
                log::error!("nodes: {source}: {e}; the routes stay as they are");
                None
            }
        }
    }
}
