//! Queue functions of security-function chains: the xt NFQUEUE target
//! (nftables' own `queue` is absent on this kernel), in mangle chain
//! `WEAVICE-QUEUE`, jumped to from FORWARD, in both families: one rule per
//! queue function and direction, matching the pass through the node where
//! the function sees the chain's packets by its mark (chains::passes). Used
//! with either firewall backend. `--queue-bypass` (failurePolicy Open) lets
//! packets pass when no reader is bound; without it they are dropped.

use super::restore_input;
use super::rules::XtRule;
use super::tools::{self, Tool};
use crate::{DatapathError, Result};

const CHAIN: &str = "WEAVICE-QUEUE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRule {
    pub mark: u32,
    /// The node's chain mark mask.
    pub mask: u32,
    pub queue: u16,
    /// Let packets pass when no reader is bound (failurePolicy Open).
    pub bypass: bool,
}

impl QueueRule {
    fn append(&self) -> String {
        let bypass = if self.bypass { " --queue-bypass" } else { "" };
        format!(
            "-A {CHAIN} -m mark --mark {:#x}/{:#x} -j NFQUEUE --queue-num {}{bypass}",
            self.mark, self.mask, self.queue
        )
    }
}

/// Whether the tools queue functions need are installed.
pub fn available() -> bool {
    [Tool::V4, Tool::V6].iter().all(|t| tools::has(*t))
}

/// Makes `WEAVICE-QUEUE` hold exactly `rules` (one commit per family).
pub fn sync(rules: &[QueueRule]) -> Result<()> {
    if !available() {
        if rules.is_empty() {
            return Ok(());
        }
        return Err(DatapathError::Invalid(
            "queue functions need iptables (the xt NFQUEUE target; Debian: apt-get install iptables)".into(),
        ));
    }
    for tool in [Tool::V4, Tool::V6] {
        let saved = tools::save(tool, Some("mangle"))?;
        let exists = saved.has_chain("mangle", CHAIN);
        if rules.is_empty() && !exists {
            continue;
        }
        let mut lines = Vec::new();
        if !exists {
            lines.push(format!(":{CHAIN} - [0:0]"));
        }
        let jump = XtRule::new("mangle", "FORWARD", &format!("-j {CHAIN}"));
        if !saved.has(&jump) {
            lines.push(jump.append());
        }
        lines.push(format!("-F {CHAIN}"));
        lines.extend(rules.iter().map(QueueRule::append));
        tools::restore(tool, &restore_input("mangle", &lines))?;
    }
    Ok(())
}

/// Whether a process on this node (this network namespace) reads queue `n`.
pub fn has_reader(n: u16) -> bool {
    let listed = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").unwrap_or_default();
    listed.lines().any(|l| l.split_whitespace().next().and_then(|q| q.parse::<u16>().ok()) == Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_rule_matches_its_pass_by_mark() {
        let r = QueueRule { mark: 0x21, mask: 0x3fff, queue: 3, bypass: true };
        assert_eq!(r.append(), "-A WEAVICE-QUEUE -m mark --mark 0x21/0x3fff -j NFQUEUE --queue-num 3 --queue-bypass");
    }
}
