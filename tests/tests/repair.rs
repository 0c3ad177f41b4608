//! `weavice-agent repair` restores netfilter state after a flush, from
//! weavice's saved state: masquerade, redirects and port mappings.

use serde_json::json;
use std::net::SocketAddr;
use weavice_tests::*;

#[test]
fn repair_restores_what_a_ruleset_flush_removed() {
    repair_case("nftables", &[&["nft", "flush", "ruleset"]]);
}

#[test]
fn repair_restores_what_iptables_f_removed() {
    repair_case("iptables", &[&["iptables", "-t", "nat", "-F"], &["ebtables", "-t", "nat", "-F"]]);
}

fn repair_case(backend: &str, flushes: &[&[&str]]) {
    if !require_root() {
        return;
    }
    let node = Node::new("rep");
    let outside = Netns::new("repo");
    attach_outside(&node.ns, &outside);
    let pod = Netns::new("repp");
    let conf = node.conf(
        "1.1.0",
        "repnet",
        json!({"firewallBackend": backend, "runtimeConfig": {"portMappings": [{"hostPort": 8090, "containerPort": 80}]}}),
    );
    let r = node.cni("ADD", &conf, "rep1", &pod.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    serve_tcp(&pod, "[::]:80", "pod");
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8090"), "pod");
    let source =
        |port| udp_source_seen(&pod, &outside, SocketAddr::from(([203, 0, 113, 2], port))).map(|s| s.ip().to_string());
    assert_eq!(source(7101).as_deref(), Some("203.0.113.1"));

    for flush in flushes {
        assert!(node.ns.exec(flush[0], &flush[1..]).status.success(), "{flush:?}");
    }
    assert!(
        tcp_fetch(&outside, "203.0.113.1:8090") != "pod",
        "the mapping is gone with the ruleset: {}",
        firewall_dump(&node.ns)
    );
    let check = node.cni("CHECK", &conf, "rep1", &pod.path(), "eth0");
    assert_eq!(check.json["code"], 106, "{}", check.stdout);

    let out = node.ns.exec(&bin("weavice-agent"), &["repair", "--state-dir", &node.dir.path("state")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 network(s), 1 attachment(s)"));

    let check = node.cni("CHECK", &conf, "rep1", &pod.path(), "eth0");
    assert!(check.ok, "{}", check.stdout);
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8090"), "pod", "mapping restored");
    assert_eq!(source(7102).as_deref(), Some("203.0.113.1"), "masquerade restored");

    // on an intact node repair changes nothing
    let before = firewall_dump(&node.ns);
    assert!(node.ns.exec(&bin("weavice-agent"), &["repair", "--state-dir", &node.dir.path("state")]).status.success());
    assert_eq!(firewall_dump(&node.ns), before);

    // DEL after someone removed part of the pod's mappings: the rest still goes
    let (tool, args): (&str, &[&str]) = match backend {
        "nftables" => ("nft", &["flush", "map", "inet", "weavice", "hostport_v4"]),
        _ => ("iptables", &["-t", "nat", "-F", "WEAVICE-HOSTPORTS"]),
    };
    assert!(node.ns.exec(tool, args).status.success());
    assert!(node.cni("DEL", &conf, "rep1", &pod.path(), "eth0").ok);
    let pod_ip = r.json["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let dump = firewall_dump(&node.ns);
    assert!(!dump.contains(&format!("{pod_ip} ")) && !dump.contains(&format!("{pod_ip}/")), "{dump}");
    let next = Netns::new("repn");
    assert!(node.cni("ADD", &conf, "rep2", &next.path(), "eth0").ok, "the port is free again");
    assert!(node.cni("DEL", &conf, "rep2", &next.path(), "eth0").ok);
}

#[test]
fn repair_rejects_bad_arguments() {
    if !require_root() {
        return;
    }
    for args in [vec!["frobnicate"], vec!["repair", "--state-dir"], vec!["repair", "--state-dir", "relative"]] {
        let out = std::process::Command::new(bin("weavice-agent")).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"), "{args:?}");
    }
}
