//! Talks to nftables through the `nft` tool, one atomic transaction a call.
//! Used per network, never per pod, so no process is started on the ADD fast path.

use crate::error::PluginError;
use std::io::Write;
use std::process::{Command, Stdio};

fn nft() -> Result<String, PluginError> {
    super::find_tool("nft")
        .ok_or_else(|| PluginError::Firewall("the nft tool is not installed (Debian: apt-get install nftables)".into()))
}

pub fn available() -> bool {
    nft().is_ok()
}

pub fn apply(script: &str) -> Result<(), PluginError> {
    let mut child = Command::new(nft()?)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(PluginError::io("run nft"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(PluginError::io("write to nft"))?;
    }
    let out = child.wait_with_output().map_err(PluginError::io("wait for nft"))?;
    if !out.status.success() {
        return Err(PluginError::Firewall(format!("nft -f failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// A table's listing (`table` is "<family> <name>"), empty when it does not exist.
pub fn list_table(table: &str) -> Result<String, PluginError> {
    let out = Command::new(nft()?)
        .args(["list", "table"])
        .args(table.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .map_err(PluginError::io("run nft"))?;
    Ok(if out.status.success() { String::from_utf8_lossy(&out.stdout).into_owned() } else { String::new() })
}
