//! The iptables backend, for nodes without nftables or whose operators want
//! iptables. Works with iptables-nft and iptables-legacy alike: it only
//! drives `iptables-restore`/`ip6tables-restore`/`ebtables-restore` (one
//! process per family and change, never one per rule) and reads their saves.
//!
//! Chains: nat `WEAVICE-MASQ` (from POSTROUTING) and `WEAVICE-HOSTPORTS`
//! (from PREROUTING and OUTPUT for local destinations), filter
//! `WEAVICE-OUTPUT` (from OUTPUT); for routed networks the bridge filter of
//! isolation.rs: mangle `WEAVICE-FORWARD`, ebtables filter `WEAVICE-FORWARD`
//! and `WEAVICE-ROUTED`, ebtables nat `WEAVICE-POSTROUTING`. The per-network
//! skeleton is added rule by rule where missing, so it never flushes anything;
//! a pod's port mappings are DNAT rules (iptables has no DNAT maps), added and
//! removed in one batch.

use super::commit_watch::{CommitWatch, Outcome};
use super::isolation::{BRIDGED_MARK, DNAT_MARK};
use super::portmap::{Element, Field};
use super::NetworkRules;
use crate::error::PluginError;
use crate::link::veth::ROUTED_PREFIX;
use ipnet::IpNet;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

const MASQ: &str = "WEAVICE-MASQ";
const HOSTPORTS: &str = "WEAVICE-HOSTPORTS";
const OUTPUT: &str = "WEAVICE-OUTPUT";
const FORWARD: &str = "WEAVICE-FORWARD";
const ROUTED: &str = "WEAVICE-ROUTED";
const POSTROUTING: &str = "WEAVICE-POSTROUTING";

/// The xtables tools weavice drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    V4,
    V6,
    Bridge,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::V4 => "iptables",
            Tool::V6 => "ip6tables",
            Tool::Bridge => "ebtables",
        }
    }

    fn ip(v4: bool) -> Tool {
        if v4 {
            Tool::V4
        } else {
            Tool::V6
        }
    }
}

pub fn available() -> bool {
    ["iptables-restore", "ip6tables-restore", "ebtables-restore"].iter().all(|t| super::find_tool(t).is_some())
}

/// The rules of one tool, of every table or of `table` only.
fn save(tool: Tool, table: Option<&str>) -> Result<String, PluginError> {
    let name = format!("{}-save", tool.name());
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

fn restore(tool: Tool, input: &str) -> Result<(), PluginError> {
    run_restore(tool, input, false)
}

/// Deletes a pod's rules (one table, one commit): done once nf_tables
/// announces the commit, leaving the tool to sit out the deferred destruction
/// of the rules alone (commit_watch.rs).
fn delete_pod_rules(v4: bool, input: &str) -> Result<(), PluginError> {
    run_restore(Tool::ip(v4), input, true)
}

fn run_restore(tool: Tool, input: &str, until_commit: bool) -> Result<(), PluginError> {
    let name = format!("{}-restore", tool.name());
    // listening starts before the tool does; without it, wait for the exit
    let watch = if until_commit { CommitWatch::new().ok() } else { None };
    let bin = super::find_tool(&name).ok_or_else(|| PluginError::Firewall(format!("{name} is not installed")))?;
    // ebtables-restore has no --wait: its nft variant commits atomically
    let args: &[&str] = if tool == Tool::Bridge { &["--noflush"] } else { &["--noflush", "--wait"] };
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(PluginError::io(format!("run {name}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(PluginError::io(format!("write to {name}")))?;
    }
    if let (Some(watch), Some(stderr)) = (&watch, &child.stderr) {
        if let Outcome::Committed = watch.wait(child.id(), stderr.as_raw_fd()) {
            return Ok(());
        }
    }
    let out = child.wait_with_output().map_err(PluginError::io(format!("wait for {name}")))?;
    if !out.status.success() {
        return Err(PluginError::Firewall(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// One table's share of the skeleton: its chains (with the declaration line
/// a restore file gives a new one) and rules, as the save tool prints them.
struct Table {
    name: &'static str,
    chains: Vec<(&'static str, String)>,
    rules: Vec<String>,
}

fn ip_chain(name: &'static str) -> (&'static str, String) {
    (name, format!(":{name} - [0:0]"))
}

/// What the network needs from one tool.
fn skeleton(rules: &NetworkRules, tool: Tool) -> Vec<Table> {
    if tool == Tool::Bridge {
        return if rules.routed { bridge_filter() } else { Vec::new() };
    }
    let v4 = tool == Tool::V4;
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
    let mut mangle = Vec::new();
    if rules.routed {
        let icmp = if v4 { "-p icmp -m icmp --icmp-type 5" } else { "-p ipv6-icmp -m icmp6 --icmpv6-type 137" };
        filter.push(format!("-A {OUTPUT} -o {} {icmp} -j DROP", rules.bridge));
        // the node's DNATs that br_netfilter forwards port to port (isolation.rs)
        mangle.push(Table {
            name: "mangle",
            chains: vec![ip_chain(FORWARD)],
            rules: vec![
                format!("-A FORWARD -j {FORWARD}"),
                format!(
                    "-A {FORWARD} -i {} -m conntrack --ctstate DNAT -j MARK --set-xmark {DNAT_MARK:#x}/{DNAT_MARK:#x}",
                    rules.bridge
                ),
            ],
        });
    }
    let mut tables = vec![
        Table { name: "nat", chains: vec![ip_chain(MASQ), ip_chain(HOSTPORTS)], rules: nat },
        Table { name: "filter", chains: vec![ip_chain(OUTPUT)], rules: filter },
    ];
    tables.extend(mangle);
    tables
}

/// Routed pods meet only through the node (isolation.rs): a frame bridged
/// from or to a routed port is marked, non-IP ones dropped at once, and on
/// its way out dropped unless the node DNATed it.
fn bridge_filter() -> Vec<Table> {
    let mark = |proto| format!("-A {ROUTED} -p {proto} -j mark --mark-or {BRIDGED_MARK:#x} --mark-target RETURN");
    let both = BRIDGED_MARK | DNAT_MARK;
    vec![
        Table {
            name: "filter",
            // a restore with --noflush ignores a new chain's policy: the drop is a rule
            chains: vec![(FORWARD, format!(":{FORWARD} RETURN")), (ROUTED, format!(":{ROUTED} RETURN"))],
            rules: vec![
                format!("-A FORWARD -j {FORWARD}"),
                format!("-A {FORWARD} -i {ROUTED_PREFIX}+ -j {ROUTED}"),
                format!("-A {FORWARD} -o {ROUTED_PREFIX}+ -j {ROUTED}"),
                mark("IPv4"),
                mark("IPv6"),
                format!("-A {ROUTED} -j DROP"),
            ],
        },
        Table {
            name: "nat",
            chains: vec![(POSTROUTING, format!(":{POSTROUTING} RETURN"))],
            rules: vec![
                format!("-A POSTROUTING -j {POSTROUTING}"),
                format!("-A {POSTROUTING} --mark {BRIDGED_MARK:#x}/{both:#x} -j DROP"),
            ],
        },
    ]
}

const TOOLS: [Tool; 3] = [Tool::V4, Tool::V6, Tool::Bridge];

/// Adds whatever of the skeleton is missing, with every tool.
pub fn apply(rules: &NetworkRules) -> Result<(), PluginError> {
    for tool in TOOLS {
        let tables = skeleton(rules, tool);
        if tables.is_empty() {
            continue;
        }
        let existing = save(tool, None)?;
        let mut input = String::new();
        for t in tables {
            let mut body = String::new();
            for (chain, declaration) in t.chains {
                if !existing.lines().any(|l| l.starts_with(&format!(":{chain} "))) {
                    body += &format!("{declaration}\n");
                }
            }
            for l in absent(&existing, t.rules) {
                body += &format!("{l}\n");
            }
            if !body.is_empty() {
                input += &format!("*{}\n{body}COMMIT\n", t.name);
            }
        }
        if !input.is_empty() {
            restore(tool, &input)?;
        }
    }
    Ok(())
}

pub fn missing(rules: &NetworkRules) -> Result<Vec<String>, PluginError> {
    let mut missing = Vec::new();
    for tool in TOOLS {
        let tables = skeleton(rules, tool);
        if tables.is_empty() {
            continue;
        }
        let existing = save(tool, None)?;
        for t in tables {
            missing.extend(absent(&existing, t.rules).into_iter().map(|l| format!("{} rule '{l}'", tool.name())));
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
        let existing = if fresh { String::new() } else { save(Tool::ip(v4), Some("nat"))? };
        let new = absent(&existing, lines);
        if !new.is_empty() {
            restore(Tool::ip(v4), &format!("*nat\n{}\nCOMMIT\n", new.join("\n")))?;
        }
    }
    Ok(())
}

/// Deletes the rules; ones already gone are not an error.
pub fn remove_mappings(elements: &[Element]) -> Result<(), PluginError> {
    for (v4, lines) in rules_by_family(elements) {
        let deletes: Vec<String> = lines.iter().map(|l| l.replacen("-A ", "-D ", 1)).collect();
        if deletes.is_empty() || delete_pod_rules(v4, &format!("*nat\n{}\nCOMMIT\n", deletes.join("\n"))).is_ok() {
            continue;
        }
        // a batch fails whole when one rule is missing: go one by one
        for d in &deletes {
            let _ = delete_pod_rules(v4, &format!("*nat\n{d}\nCOMMIT\n"));
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
        let existing = save(Tool::ip(v4), Some("nat"))?;
        missing.extend(absent(&existing, lines).into_iter().map(|l| format!("rule '{l}'")));
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::{PortMapping, Protocol};

    #[test]
    fn routed_networks_get_the_bridge_filter_as_the_saves_print_it() {
        let lines = |routed, tool| -> Vec<String> {
            skeleton(&NetworkRules::bare(routed), tool).into_iter().flat_map(|t| t.rules).collect()
        };
        let eb = lines(true, Tool::Bridge);
        let ipv4 = "-A WEAVICE-ROUTED -p IPv4 -j mark --mark-or 0x400000 --mark-target RETURN".to_string();
        let drop = "-A WEAVICE-ROUTED -j DROP".to_string();
        // IP frames are marked and return before the drop of everything else
        assert!(eb.iter().position(|l| *l == ipv4) < eb.iter().position(|l| *l == drop), "{eb:?}");
        assert!(eb.contains(&"-A WEAVICE-POSTROUTING --mark 0x400000/0x600000 -j DROP".to_string()), "{eb:?}");
        let mark = "-A WEAVICE-FORWARD -i wv0 -m conntrack --ctstate DNAT -j MARK --set-xmark 0x200000/0x200000";
        assert!(lines(true, Tool::V6).contains(&mark.to_string()));
        assert!(lines(false, Tool::Bridge).is_empty());
        assert!(!lines(false, Tool::V4).iter().any(|l| l.contains("MARK")));
    }

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
