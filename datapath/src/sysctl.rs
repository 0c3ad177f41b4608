//! Writes sysctls of the namespace the calling thread is in, only when they differ.
//! (`/proc/sys/net` shows the namespace of the thread that opens it.)

use crate::{DatapathError, Result};
use std::fs;

pub fn set(key: &str, value: &str) -> Result<()> {
    write(&format!("/proc/sys/{}", key.replace('.', "/")), key, value)
}

/// Per-interface keys; interface names may hold dots, so these are not parsed from a key.
pub fn set_if(family: &str, ifname: &str, knob: &str, value: &str) -> Result<()> {
    write(&format!("/proc/sys/net/{family}/conf/{ifname}/{knob}"), &format!("net.{family}.conf.{ifname}.{knob}"), value)
}

/// A per-interface key's value, if it reads.
pub fn get_if(family: &str, ifname: &str, knob: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/sys/net/{family}/conf/{ifname}/{knob}")).ok().map(|v| v.trim().to_string())
}

/// For an interface just created: no read first, its defaults are known to differ.
pub fn write_if(family: &str, ifname: &str, knob: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/net/{family}/conf/{ifname}/{knob}");
    fs::write(&path, value)
        .map_err(|source| DatapathError::Sysctl { key: format!("net.{family}.conf.{ifname}.{knob}"), source })
}

/// Whether this namespace has IPv6 (`ipv6.disable=1` removes its sysctls).
pub fn ipv6_available() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

fn write(path: &str, key: &str, value: &str) -> Result<()> {
    let err = |source| DatapathError::Sysctl { key: key.to_string(), source };
    if fs::read_to_string(path).map_err(err)?.trim() == value {
        return Ok(());
    }
    fs::write(path, value).map_err(err)
}
