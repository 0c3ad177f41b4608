//! The iptables backend, for nodes without nftables or whose operators want
//! iptables. Works with iptables-nft and iptables-legacy alike: it only
//! drives `iptables-restore`/`ip6tables-restore` (one process per family and
//! change, never one per rule) and reads `iptables-save`.
//!
//! Chains: nat `WEAVICE-MASQ` (from POSTROUTING) and `WEAVICE-HOSTPORTS`
//! (from PREROUTING and OUTPUT for local destinations), filter
//! `WEAVICE-OUTPUT` (from OUTPUT). The per-network skeleton is added rule by
//! rule where missing, so it never flushes anything; a pod's port mappings
//! are DNAT rules (iptables has no DNAT maps), added and removed in one batch.

use super::portmap::{Element, Field};
use super::NetworkRules;
use crate::error::PluginError;
use ipnet::IpNet;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

const MASQ: &str = "WEAVICE-MASQ";
const HOSTPORTS: &str = "WEAVICE-HOSTPORTS";
const OUTPUT: &str = "WEAVICE-OUTPUT";

pub fn available() -> bool {
    super::find_tool("iptables-restore").is_some() && super::find_tool("ip6tables-restore").is_some()
}

fn prefix(v4: bool) -> &'static str {
    if v4 {
        "iptables"
    } else {
        "ip6tables"
    }
}

/// The rules of one family, of every table or of `table` only.
fn save(v4: bool, table: Option<&str>) -> Result<String, PluginError> {
    let name = format!("{}-save", prefix(v4));
    let bin = super::find_tool(&name).ok_or_else(|| PluginError::Firewall(format!("{name} is not installed")))?;
    let mut cmd = Command::new(bin);
    if let Some(t) = table {
        cmd.args(["-t", t]);
    }
    let out = cmd.stdin(Stdio::null()).output().map_err(PluginError::io(format!("run {name}")))?;
    if !out.status.success() {
        return Err(PluginError::Firewall(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn restore(v4: bool, input: &str) -> Result<(), PluginError> {
    let name = format!("{}-restore", prefix(v4));
    let bin = super::find_tool(&name).ok_or_else(|| PluginError::Firewall(format!("{name} is not installed")))?;
    let mut child = Command::new(bin)
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(PluginError::io(format!("run {name}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(PluginError::io(format!("write to {name}")))?;
    }
    let out = child.wait_with_output().map_err(PluginError::io(format!("wait for {name}")))?;
    if !out.status.success() {
        return Err(PluginError::Firewall(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// (table, chains, rules) the network needs in one family, as iptables-save prints them.
fn skeleton(rules: &NetworkRules, v4: bool) -> Vec<(&'static str, Vec<&'static str>, Vec<String>)> {
    let mut nat = vec![
        format!("-A POSTROUTING -j {MASQ}"),
        format!("-A PREROUTING -m addrtype --dst-type LOCAL -j {HOSTPORTS}"),
        format!("-A OUTPUT -m addrtype --dst-type LOCAL -j {HOSTPORTS}"),
    ];
    if v4 {
        nat.push(format!("-A {MASQ} -s 127.0.0.0/8 -m conntrack --ctstate DNAT -j MASQUERADE"));
    }
    if rules.masquerade {
        for r in rules.ranges.iter().filter(|r| r.addr().is_ipv4() == v4) {
            nat.push(format!("-A {MASQ} -s {r} ! -d {r} -j MASQUERADE"));
        }
    }
    let mut filter = vec![format!("-A OUTPUT -j {OUTPUT}")];
    if rules.routed {
        let icmp = if v4 { "-p icmp -m icmp --icmp-type 5" } else { "-p ipv6-icmp -m icmp6 --icmpv6-type 137" };
        filter.push(format!("-A {OUTPUT} -o {} {icmp} -j DROP", rules.bridge));
    }
    vec![("nat", vec![MASQ, HOSTPORTS], nat), ("filter", vec![OUTPUT], filter)]
}

/// Adds whatever of the skeleton is missing, in both families.
pub fn apply(rules: &NetworkRules) -> Result<(), PluginError> {
    for v4 in [true, false] {
        let existing = save(v4, None)?;
        let mut input = String::new();
        for (table, chains, lines) in skeleton(rules, v4) {
            let mut body = String::new();
            for c in chains {
                if !existing.lines().any(|l| l.starts_with(&format!(":{c} "))) {
                    body += &format!(":{c} - [0:0]\n");
                }
            }
            for l in absent(&existing, lines) {
                body += &format!("{l}\n");
            }
            if !body.is_empty() {
                input += &format!("*{table}\n{body}COMMIT\n");
            }
        }
        if !input.is_empty() {
            restore(v4, &input)?;
        }
    }
    Ok(())
}

pub fn missing(rules: &NetworkRules) -> Result<Vec<String>, PluginError> {
    let mut missing = Vec::new();
    for v4 in [true, false] {
        let existing = save(v4, None)?;
        for (_, _, lines) in skeleton(rules, v4) {
            missing.extend(absent(&existing, lines).into_iter().map(|l| format!("{} rule '{l}'", prefix(v4))));
        }
    }
    Ok(missing)
}

/// The lines of `lines` that `save` (an iptables-save listing) lacks.
fn absent(save: &str, lines: Vec<String>) -> Vec<String> {
    lines.into_iter().filter(|l| !save.lines().any(|e| e == l)).collect()
}

fn host(ip: &IpAddr) -> IpNet {
    IpNet::from(*ip)
}

fn target(fields: &[Field]) -> Option<String> {
    match fields {
        [Field::Addr(IpAddr::V4(a)), Field::Port(p)] => Some(format!("{a}:{p}")),
        [Field::Addr(IpAddr::V6(a)), Field::Port(p)] => Some(format!("[{a}]:{p}")),
        _ => None,
    }
}

/// The nat rule of one port-mapping element, and its family.
fn rule(e: &Element) -> Option<(bool, String)> {
    match (e.key.as_slice(), e.data.as_deref()) {
        ([Field::Proto(p), Field::Port(port)], Some(d)) => {
            let v4 = matches!(d.first(), Some(Field::Addr(IpAddr::V4(_))));
            Some((v4, format!("-A {HOSTPORTS} -p {p} -m {p} --dport {port} -j DNAT --to-destination {}", target(d)?)))
        }
        ([Field::Addr(h), Field::Proto(p), Field::Port(port)], Some(d)) => Some((
            h.is_ipv4(),
            format!(
                "-A {HOSTPORTS} -d {} -p {p} -m {p} --dport {port} -j DNAT --to-destination {}",
                host(h),
                target(d)?
            ),
        )),
        ([Field::Addr(a), Field::Addr(_)], None) => Some((
            a.is_ipv4(),
            format!("-A {MASQ} -s {} -d {} -m conntrack --ctstate DNAT -j MASQUERADE", host(a), host(a)),
        )),
        _ => None,
    }
}

fn rules_by_family(elements: &[Element]) -> [(bool, Vec<String>); 2] {
    let all: Vec<(bool, String)> = elements.iter().filter_map(rule).collect();
    [true, false].map(|v4| (v4, all.iter().filter(|(f, _)| *f == v4).map(|(_, l)| l.clone()).collect()))
}

/// Adds the rules not there yet (so a repair or a repeated ADD adds no twins).
/// For a new attachment (`fresh`) none can be, and the `iptables-save` that
/// would find out is skipped.
pub fn add_mappings(elements: &[Element], fresh: bool) -> Result<(), PluginError> {
    for (v4, lines) in rules_by_family(elements) {
        if lines.is_empty() {
            continue;
        }
        let existing = if fresh { String::new() } else { save(v4, Some("nat"))? };
        let new = absent(&existing, lines);
        if !new.is_empty() {
            restore(v4, &format!("*nat\n{}\nCOMMIT\n", new.join("\n")))?;
        }
    }
    Ok(())
}

/// Deletes the rules; ones already gone are not an error.
pub fn remove_mappings(elements: &[Element]) -> Result<(), PluginError> {
    for (v4, lines) in rules_by_family(elements) {
        let deletes: Vec<String> = lines.iter().map(|l| l.replacen("-A ", "-D ", 1)).collect();
        if deletes.is_empty() || restore(v4, &format!("*nat\n{}\nCOMMIT\n", deletes.join("\n"))).is_ok() {
            continue;
        }
        // a batch fails whole when one rule is missing: go one by one
        for d in &deletes {
            let _ = restore(v4, &format!("*nat\n{d}\nCOMMIT\n"));
        }
    }
    Ok(())
}

pub fn missing_mappings(elements: &[Element]) -> Result<Vec<String>, PluginError> {
    let mut missing = Vec::new();
    for (v4, lines) in rules_by_family(elements) {
        if lines.is_empty() {
            continue;
        }
        let existing = save(v4, Some("nat"))?;
        missing.extend(absent(&existing, lines).into_iter().map(|l| format!("rule '{l}'")));
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::{PortMapping, Protocol};

    #[test]
    fn mapping_rules_look_as_iptables_save_prints_them() {
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let m = [
            PortMapping { host_port: 8080, container_port: 80, protocol: Protocol::Tcp, host_ip: None },
            PortMapping {
                host_port: 53,
                container_port: 5353,
                protocol: Protocol::Udp,
                host_ip: Some("192.0.2.1".parse().unwrap()),
            },
        ];
        let [(_, v4), (_, v6)] = rules_by_family(&super::super::portmap::elements(&m, &ips).unwrap());
        assert_eq!(v4[0], "-A WEAVICE-HOSTPORTS -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80");
        assert_eq!(
            v4[1],
            "-A WEAVICE-HOSTPORTS -d 192.0.2.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.5:5353"
        );
        assert_eq!(v4[2], "-A WEAVICE-MASQ -s 10.0.0.5/32 -d 10.0.0.5/32 -m conntrack --ctstate DNAT -j MASQUERADE");
        assert_eq!(v6[0], "-A WEAVICE-HOSTPORTS -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80");
    }
}
