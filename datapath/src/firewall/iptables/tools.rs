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

/// An IP family's save and restore in one flavour (nft or legacy).
pub struct Flavour {
    tool: Tool,
    save: String,
    restore: String,
    legacy: bool,
}

/// Every flavour of `tool` installed: the one the alternatives pick, and
/// `-nft` and `-legacy` by name, each once. The node daemon in an image of
/// its own cannot know which one the host's plugin used.
pub fn flavours(tool: Tool) -> Vec<Flavour> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for variant in ["", "nft-", "legacy-"] {
        let (Ok(save), Ok(restore)) =
            (tool.binary(&format!("{variant}save")), tool.binary(&format!("{variant}restore")))
        else {
            continue;
        };
        // the nft tools are one multi-call binary, the legacy ones another
        let target = std::fs::canonicalize(&save).unwrap_or_else(|_| save.clone().into());
        if !seen.contains(&target) {
            let legacy = target.to_string_lossy().contains("legacy");
            seen.push(target);
            out.push(Flavour { tool, save, restore, legacy });
        }
    }
    out
}

impl Flavour {
    /// Its save tool's name, for the log.
    pub fn name(&self) -> &str {
        self.save.rsplit('/').next().unwrap_or(&self.save)
    }

    /// Whether this namespace has `table` in this flavour. Asked before a
    /// save: the legacy tools create the table they are asked to save.
    pub fn has_table(&self, table: &str) -> bool {
        if !self.legacy {
            return true;
        }
        let names = if self.tool == Tool::V6 { "/proc/net/ip6_tables_names" } else { "/proc/net/ip_tables_names" };
        std::fs::read_to_string(names).is_ok_and(|n| n.lines().any(|l| l == table))
    }

    pub fn save(&self, table: Option<&str>) -> Result<Saved> {
        save_bin(&self.save, table)
    }

    pub fn restore(&self, input: &str) -> Result<()> {
        run_restore(self.tool, &self.restore, input, None)
    }
}

/// The rules of one tool, of every table or of `table` only.
pub fn save(tool: Tool, table: Option<&str>) -> Result<Saved> {
    save_bin(&tool.binary("save")?, table)
}

fn save_bin(bin: &str, table: Option<&str>) -> Result<Saved> {
    let mut cmd = Command::new(bin);
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
    run_restore(tool, &tool.binary("restore")?, input, None)
}

/// Deletes rules (one table, one commit) and returns once nf_tables
/// announces the commit, leaving the tool to sit out the deferred
/// destruction of the rules alone (commit_watch.rs). The tool and the
/// watching socket, whose release would wait the same way, go to
/// `lingering`, whatever the outcome.
pub fn restore_until_commit(tool: Tool, input: &str, lingering: &mut Lingering) -> Result<()> {
    run_restore(tool, &tool.binary("restore")?, input, Some(lingering))
}

fn run_restore(tool: Tool, bin: &str, input: &str, lingering: Option<&mut Lingering>) -> Result<()> {
    // listening starts before the tool does; without it, wait for the exit
    let mut watch = if lingering.is_some() { CommitWatch::new().ok() } else { None };
    // ebtables-restore has no --wait: its nft variant commits atomically
    let args: &[&str] = if tool == Tool::Bridge { &["--noflush"] } else { &["--noflush", "--wait"] };
    let mut child = Command::new(bin)
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
