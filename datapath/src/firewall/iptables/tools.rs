//! The xtables tools weavice drives: `iptables`, `ip6tables` and `ebtables`,
//! each only through its `-restore` (one process per family and change,
//! never one per rule) and `-save`. Works with iptables-nft and
//! iptables-legacy alike.

use super::commit_watch::{CommitWatch, Outcome};
use super::rules::Saved;
use crate::firewall::find_tool;
use crate::lingering::Lingering;
use crate::{DatapathError, Result};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    V4,
    V6,
    Bridge,
}

pub const ALL: [Tool; 3] = [Tool::V4, Tool::V6, Tool::Bridge];

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::V4 => "iptables",
            Tool::V6 => "ip6tables",
            Tool::Bridge => "ebtables",
        }
    }

    pub fn ip(v4: bool) -> Tool {
        if v4 {
            Tool::V4
        } else {
            Tool::V6
        }
    }

    fn binary(self, suffix: &str) -> Result<String> {
        let name = format!("{}-{suffix}", self.name());
        find_tool(&name).ok_or_else(|| DatapathError::Firewall(format!("{name} is not installed")))
    }
}

pub fn available() -> bool {
    ALL.iter().all(|t| has(*t))
}

/// Whether the tool's restore and save are installed.
pub fn has(tool: Tool) -> bool {
    tool.binary("restore").is_ok() && tool.binary("save").is_ok()
}

/// The rules of one tool, of every table or of `table` only.
pub fn save(tool: Tool, table: Option<&str>) -> Result<Saved> {
    let bin = tool.binary("save")?;
    let mut cmd = Command::new(&bin);
    if let Some(t) = table {
        cmd.args(["-t", t]);
    }
    let out = cmd.stdin(Stdio::null()).output().map_err(DatapathError::io(format!("run {bin}")))?;
    if !out.status.success() {
        return Err(DatapathError::Firewall(format!("{bin} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(Saved::parse(&String::from_utf8_lossy(&out.stdout)))
}

pub fn restore(tool: Tool, input: &str) -> Result<()> {
    run_restore(tool, input, None)
}

/// Deletes rules (one table, one commit) and returns once nf_tables
/// announces the commit, leaving the tool to sit out the deferred
/// destruction of the rules alone (commit_watch.rs). The tool and the
/// watching socket, whose release would wait the same way, go to
/// `lingering`, whatever the outcome.
pub fn restore_until_commit(tool: Tool, input: &str, lingering: &mut Lingering) -> Result<()> {
    run_restore(tool, input, Some(lingering))
}

fn run_restore(tool: Tool, input: &str, lingering: Option<&mut Lingering>) -> Result<()> {
    let bin = tool.binary("restore")?;
    // listening starts before the tool does; without it, wait for the exit
    let mut watch = if lingering.is_some() { CommitWatch::new().ok() } else { None };
    // ebtables-restore has no --wait: its nft variant commits atomically
    let args: &[&str] = if tool == Tool::Bridge { &["--noflush"] } else { &["--noflush", "--wait"] };
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DatapathError::io(format!("run {bin}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(DatapathError::io(format!("write to {bin}")))?;
    }
    let committed = match (&mut watch, &child.stderr) {
        (Some(w), Some(stderr)) => matches!(w.wait(child.id(), stderr.as_raw_fd()), Outcome::Committed),
        _ => false,
    };
    if let Some(lingering) = lingering {
        lingering.extend(watch.map(CommitWatch::into_lingering).unwrap_or_default());
        if committed {
            lingering.extend(Lingering::tool(child));
            return Ok(());
        }
    }
    let out = child.wait_with_output().map_err(DatapathError::io(format!("wait for {bin}")))?;
    if !out.status.success() {
        return Err(DatapathError::Firewall(format!("{bin} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}
