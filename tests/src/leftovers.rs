//! What a node holds for its pods, read from the kernel and the state
//! directories a [`Node`]'s config names: after the last pod is gone, all of
//! it is a leak.

use crate::Node;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Something the node holds: (kind, which).
pub type Thing = (&'static str, String);

/// Relative paths of the files under `dir`.
fn files(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![(PathBuf::from(dir), String::new())];
    while let Some((path, rel)) = todo.pop() {
        for e in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push((e.path(), format!("{name}/")));
            } else {
                out.push(name);
            }
        }
    }
    out
}

/// Everything on `node` that belongs to some attachment of network `net`:
/// host veths (wv*, wb*, retired wx*), IPAM reservations and index files,
/// saved state, host-port claims, and the pods' nft elements (hostport and
/// hairpin maps, anti-spoofing identities).
pub fn held_for_pods(node: &Node, net: &str) -> BTreeSet<Thing> {
    let mut out = BTreeSet::new();
    // wv0 is the bridge, wvt-* the tests' own links
    for l in node.ns.links().into_iter().filter(|l| l != "wv0" && !l.starts_with("wvt-")) {
        match l.get(..2) {
            Some("wv") => out.insert(("wv veth", l)),
            Some("wb") => out.insert(("wb veth", l)),
            Some("wx") => out.insert(("retired wx veth", l)),
            _ => false,
        };
    }
    for f in files(&node.dir.path(&format!("ipam/{net}"))) {
        if f.parse::<std::net::IpAddr>().is_ok() {
            out.insert(("reservation", f));
        } else if f.starts_with("attachments/") {
            out.insert(("ipam index", f));
        }
    }
    for f in files(&node.dir.path(&format!("state/attachments/{net}"))) {
        out.insert(("state file", f));
    }
    for f in files(&node.dir.path("state/hostports")).into_iter().filter(|f| f.matches('/').count() == 2) {
        let name = f.rsplit('/').next().unwrap_or_default();
        let claim = name == "any" || name.parse::<std::net::IpAddr>().is_ok();
        out.insert((if claim { "host-port claim" } else { "claim temp file" }, f));
    }
    // forwards in inet weavice, identities (anti-spoofing) in bridge weavice
    for family in ["inet", "bridge"] {
        let listing = node.ns.exec("nft", &["-j", "list", "table", family, "weavice"]);
        let v: Value = serde_json::from_slice(&listing.stdout).unwrap_or_default();
        for o in v["nftables"].as_array().into_iter().flatten() {
            let Some(set) = o.get("map").or(o.get("set")) else { continue };
            let name = set["name"].as_str().unwrap_or_default();
            if family == "bridge" || name.starts_with("hostport") || name.starts_with("hairpin") {
                for e in set["elem"].as_array().into_iter().flatten() {
                    out.insert(("nft element", format!("{name} {e}")));
                }
            }
        }
    }
    out
}
