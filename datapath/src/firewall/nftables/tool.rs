//! The `nft` tool, one atomic transaction a call. Used per network, never
//! per pod, so no process is started on the ADD fast path.

use super::listing::Listing;
use super::Table;
use crate::{DatapathError, Result};
use std::io::Write;
use std::process::{Command, Stdio};

fn nft() -> Result<String> {
    crate::firewall::find_tool("nft").ok_or_else(|| {
        DatapathError::Firewall("the nft tool is not installed (Debian: apt-get install nftables)".into())
    })
}

pub fn available() -> bool {
    nft().is_ok()
}

fn run(args: &[&str], input: &[u8]) -> Result<()> {
    let mut child = Command::new(nft()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DatapathError::io("run nft"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(DatapathError::io("write to nft"))?;
    }
    let out = child.wait_with_output().map_err(DatapathError::io("wait for nft"))?;
    if !out.status.success() {
        let flags = args.join(" ");
        return Err(DatapathError::Firewall(format!(
            "nft {flags} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// An nft script, as one transaction.
pub fn apply_script(script: &str) -> Result<()> {
    run(&["-f", "-"], script.as_bytes())
}

/// nft JSON commands, as one transaction.
pub fn apply_json(commands: &serde_json::Value) -> Result<()> {
    run(&["-j", "-f", "-"], commands.to_string().as_bytes())
}

/// The table as data, counters left out (`-s`); empty when it does not exist.
pub fn list(table: Table) -> Result<Listing> {
    let out = Command::new(nft()?)
        .args(["-s", "-j", "list", "table", table.family, table.name])
        .stdin(Stdio::null())
        .output()
        .map_err(DatapathError::io("run nft"))?;
    if !out.status.success() {
        return Ok(Listing::default());
    }
    Listing::parse(&String::from_utf8_lossy(&out.stdout), table)
}

/// The counters of `chain`'s rules, by the rules' comments (rules without
/// one are left out; nothing when the chain does not exist).
pub fn counters(table: Table, chain: &str) -> Result<Vec<(String, u64)>> {
    let out = Command::new(nft()?)
        .args(["-j", "list", "chain", table.family, table.name, chain])
        .stdin(Stdio::null())
        .output()
        .map_err(DatapathError::io("run nft"))?;
    if !out.status.success() {
        return Ok(Vec::new());
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let rules = doc["nftables"].as_array().cloned().unwrap_or_default();
    Ok(rules
        .iter()
        .filter_map(|o| {
            let rule = o.get("rule")?;
            let comment = rule["comment"].as_str()?.to_string();
            let packets = rule["expr"].as_array()?.iter().find_map(|e| e["counter"]["packets"].as_u64())?;
            Some((comment, packets))
        })
        .collect())
}
