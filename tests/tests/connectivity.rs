//! Pods wired by weavice reach each other, their gateway and the outside,
//! through real clients (cnitool over libcni, and direct invocation).

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use weavice_tests::*;

fn ip_of(result: &Value, v4: bool) -> String {
    result["ips"]
        .as_array()
        .expect("ips in result")
        .iter()
        .filter_map(|i| i["address"].as_str())
        .find(|a| a.contains('.') == v4)
        .and_then(|a| a.split('/').next())
        .expect("address of the family")
        .to_string()
}

/// Retired veths are deleted just after DEL returns; give that a moment.
fn wait_links(ns: &Netns, expected: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut links = ns.links();
        links.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        if links == want || Instant::now() > deadline {
            return links;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn reservations(node: &Node, network: &str) -> Vec<String> {
    let dir = node.dir.path(&format!("ipam/{network}"));
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn cnitool_pods_ping_each_other_and_the_gateway_over_v4_and_v6() {
    if !require_root() {
        return;
    }
    let node = Node::new("ping");
    let plugin = node.conf("1.0.0", "podnet", json!({}));
    node.write_conflist("podnet", "1.0.0", vec![plugin]);
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let add = |pod: &Netns| {
        let out = node.cnitool("add", "podnet", pod, &[]);
        assert!(out.status.success(), "cnitool add: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("result JSON")
    };
    let (ra, rb) = (add(&a), add(&b));
    assert_eq!(ra["cniVersion"], "1.0.0");
    // routed: host addresses, nothing on-link but the gateway
    let addrs: Vec<&str> = ra["ips"].as_array().unwrap().iter().filter_map(|i| i["address"].as_str()).collect();
    assert!(addrs.iter().any(|a| a.ends_with("/32")) && addrs.iter().any(|a| a.ends_with("/128")), "{addrs:?}");
    assert!(a.ip(&["-o", "addr", "show", "eth0", "scope", "global"]).contains("/32"));

    // routed: one hop through the node, TTL 63 for both families
    assert_eq!(ping(&a, &ip_of(&rb, true)), Some(63), "v4 pod to pod");
    assert_eq!(ping(&b, &ip_of(&ra, false)), Some(63), "v6 pod to pod");
    assert_eq!(ping(&a, "10.88.0.1"), Some(64), "v4 gateway");
    assert_eq!(ping(&a, "fd88::1"), Some(64), "v6 gateway");
    // the node sends no redirect, so the pod never tries its peer on-link
    assert_eq!(ping(&a, &ip_of(&rb, true)), Some(63), "v4 pod to pod, again");
    assert_eq!(ping(&b, &ip_of(&ra, false)), Some(63), "v6 pod to pod, again");
    for (pod, peer) in [(&a, ip_of(&rb, true)), (&b, ip_of(&ra, false))] {
        assert_eq!(pod.ip(&["neigh", "show", &peer]).trim(), "", "no neighbour entry for the peer {peer}");
    }

    let check = node.cnitool("check", "podnet", &a, &[]);
    assert!(check.status.success(), "cnitool check: {}", String::from_utf8_lossy(&check.stderr));

    for pod in [&a, &b] {
        let out = node.cnitool("del", "podnet", pod, &[]);
        assert!(out.status.success(), "cnitool del: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"]);
    assert!(reservations(&node, "podnet").is_empty());
    assert_eq!(ping(&a, &ip_of(&rb, true)), None, "pods are gone");
}

#[test]
fn masquerade_makes_the_outside_see_the_node_address() {
    masquerade_case("nftables");
}

#[test]
fn masquerade_with_the_iptables_backend() {
    masquerade_case("iptables");
}

fn masquerade_case(backend: &str) {
    if !require_root() {
        return;
    }
    let node = Node::new("masq");
    let outside = Netns::new("out");
    attach_outside(&node.ns, &outside);
    let pod = Netns::new("mp");
    let conf = node.conf("1.1.0", "masqnet", json!({"firewallBackend": backend}));
    let r = node.cni("ADD", &conf, "masq1", &pod.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);

    let seen =
        udp_source_seen(&pod, &outside, "203.0.113.2:7001".parse().unwrap()).expect("datagram reached the outside");
    assert_eq!(seen.ip().to_string(), "203.0.113.1");
    let seen6 = udp_source_seen(&pod, &outside, "[2001:db8:113::2]:7001".parse().unwrap())
        .expect("v6 datagram reached the outside");
    assert_eq!(seen6.ip().to_string(), "2001:db8:113::1");
    // and the reply finds its way back (conntrack undoes the masquerade)
    assert!(ping(&pod, "203.0.113.2").is_some());

    // the rule is per network: a second pod adds no rule (only set elements)
    let rules = rules_dump(&node.ns);
    let pod2 = Netns::new("mp2");
    assert!(node.cni("ADD", &conf, "masq2", &pod2.path(), "eth0").ok);
    assert_eq!(rules_dump(&node.ns), rules);
    if backend == "iptables" {
        assert!(rules.contains("-A WEAVICE-MASQ -s 10.88.0.0/24 ! -d 10.88.0.0/24 -j MASQUERADE"), "{rules}");
        assert!(!node.ns.exec("nft", &["list", "table", "inet", "weavice"]).status.success(), "no nft table");
    }
    for (id, p) in [("masq1", &pod), ("masq2", &pod2)] {
        assert!(node.cni("DEL", &conf, id, &p.path(), "eth0").ok);
    }
}

/// Widening a network's range (what the code-102 message advises) updates
/// the network in place: the pod already there keeps working, a new pod gets
/// an address of the wider range, and the old range leaves the sets, rules
/// and gateway (else a pod-to-pod packet would be masqueraded). A range that
/// overlaps another network's is refused (7) naming both, creating nothing.
#[test]
fn a_widened_range_updates_the_network_and_an_overlapping_one_is_refused() {
    for backend in ["nftables", "iptables"] {
        widen_case(backend);
    }
}

fn widen_case(backend: &str) {
    if !require_root() {
        return;
    }
    let node = Node::new("widen");
    let outside = Netns::new("wdo");
    attach_outside(&node.ns, &outside);
    let (a, b, c) = (Netns::new("wda"), Netns::new("wdb"), Netns::new("wdc"));
    let conf = |name: &str, bridge: &str, v4: &str, v6: &str| {
        let mut c = node.conf("1.1.0", name, json!({"firewallBackend": backend, "bridge": bridge}));
        c["ipam"]["ranges"] = json!([[{"subnet": v4}], [{"subnet": v6}]]);
        c
    };
    let narrow = conf("wnet", "wv0", "10.88.0.0/24", "fd88::/64");
    let wide = conf("wnet", "wv0", "10.88.0.0/16", "fd88::/56");
    let r = node.cni("ADD", &narrow, "wd1", &a.path(), "eth0");
    assert!(r.ok, "{backend}: {}", r.stdout);
    let ip_a = ip_of(&r.json, true);

    let r = node.cni_with_args("ADD", &wide, "wd2", &b.path(), "eth0", "IgnoreUnknown=1;IP=10.88.5.5");
    assert!(r.ok, "{backend}: the widened range: {}", r.stdout);
    assert_eq!(ip_of(&r.json, true), "10.88.5.5");
    assert_eq!(ping(&a, "10.88.5.5"), Some(63), "{backend}: old pod to new");
    assert!(ping(&b, &ip_a).is_some(), "{backend}: new pod to old");
    let seen = udp_source_seen(&a, &b, "10.88.5.5:7002".parse().unwrap()).expect("a reaches b");
    assert_eq!(seen.ip().to_string(), ip_a, "{backend}: pod to pod is not masqueraded");
    let seen = udp_source_seen(&b, &outside, "203.0.113.2:7002".parse().unwrap()).expect("b reaches out");
    assert_eq!(seen.ip().to_string(), "203.0.113.1", "{backend}: leaving the range is");
    let addrs = node.ns.ip(&["-o", "addr", "show", "dev", "wv0"]);
    assert!(addrs.contains("10.88.0.1/16") && addrs.contains("fd88::1/56"), "{backend}: {addrs}");
    assert!(!addrs.contains("10.88.0.1/24") && !addrs.contains("fd88::1/64"), "{backend}: {addrs}");
    assert!(!firewall_dump(&node.ns).contains("10.88.0.0/24"), "{backend}: the old range is gone");

    let other = conf("onet", "wv1", "10.88.7.0/24", "fd89::/64");
    let r = node.cni("ADD", &other, "wd3", &c.path(), "eth0");
    assert_eq!(r.json["code"], 7, "{backend}: {}", r.stdout);
    let msg = r.json["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("10.88.7.0/24") && msg.contains("10.88.0.0/16") && msg.contains("\"wnet\""), "{msg}");
    assert!(!node.ns.links().contains(&"wv1".to_string()), "{backend}: no bridge for the refused network");
    assert!(!std::path::Path::new(&node.dir.path("state/networks/onet.json")).exists());
    assert!(reservations(&node, "onet").is_empty());
    for (id, p) in [("wd1", &a), ("wd2", &b)] {
        assert!(node.cni("DEL", &wide, id, &p.path(), "eth0").ok);
    }
}

/// A range set of two ranges: pods in either keep their gateway and
/// masquerade whichever range the last ADD drew from.
#[test]
fn pods_in_different_ranges_of_one_network_all_keep_their_gateway() {
    if !require_root() {
        return;
    }
    let node = Node::new("tworange");
    let outside = Netns::new("tro");
    attach_outside(&node.ns, &outside);
    let mut conf = node.conf("1.1.0", "trnet", json!({}));
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.88.0.0/24"}, {"subnet": "10.90.0.0/24"}]]);
    let (a, b) = (Netns::new("tra"), Netns::new("trb"));
    assert!(node.cni("ADD", &conf, "tr1", &a.path(), "eth0").ok);
    let r = node.cni_with_args("ADD", &conf, "tr2", &b.path(), "eth0", "IgnoreUnknown=1;IP=10.90.0.5");
    assert!(r.ok, "{}", r.stdout);
    let addrs = node.ns.ip(&["-o", "addr", "show", "dev", "wv0"]);
    assert!(addrs.contains("10.88.0.1/24") && addrs.contains("10.90.0.1/24"), "{addrs}");
    for pod in [&a, &b] {
        let seen = udp_source_seen(pod, &outside, "203.0.113.2:7003".parse().unwrap()).expect("reaches out");
        assert_eq!(seen.ip().to_string(), "203.0.113.1", "masqueraded");
    }
    for (id, p) in [("tr1", &a), ("tr2", &b)] {
        assert!(node.cni("DEL", &conf, id, &p.path(), "eth0").ok);
    }
}

#[test]
fn without_ip_masq_the_outside_sees_the_pod_address() {
    if !require_root() {
        return;
    }
    let node = Node::new("nomasq");
    let outside = Netns::new("out");
    attach_outside(&node.ns, &outside);
    let pod = Netns::new("np");
    let conf = node.conf("1.1.0", "plain", json!({"ipMasq": false}));
    let r = node.cni("ADD", &conf, "plain1", &pod.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    let seen = udp_source_seen(&pod, &outside, "203.0.113.2:7002".parse().unwrap()).expect("datagram arrives");
    assert_eq!(seen.ip().to_string(), ip_of(&r.json, true));
    assert!(node.cni("DEL", &conf, "plain1", &pod.path(), "eth0").ok);
}

#[test]
fn routed_pods_meet_only_through_the_node() {
    routed_isolation_case("nftables");
}

#[test]
fn routed_pods_meet_only_through_the_node_with_iptables() {
    routed_isolation_case("iptables");
}

/// With br_netfilter on (kube-proxy nodes), as the kernel defaults once it is
/// loaded: the bridge filter must drop pod-to-pod frames yet pass the node's DNAT.
fn routed_isolation_case(backend: &str) {
    if !require_root() {
        return;
    }
    let node = Node::with_br_netfilter("iso");
    let conf = node.conf("1.1.0", "isonet", json!({"firewallBackend": backend}));
    let (a, b) = (Netns::new("ia"), Netns::new("ib"));
    let ra = node.cni("ADD", &conf, "isoa", &a.path(), "eth0");
    assert!(ra.ok && node.cni("ADD", &conf, "isob", &b.path(), "eth0").ok, "{}", ra.stdout);
    let ip_a = ip_of(&ra.json, true);
    serve_tcp(&a, "0.0.0.0:80", "pod-a");
    assert_eq!(tcp_fetch(&b, &format!("{ip_a}:80")), "pod-a", "through the node");

    // b claims a is on-link: frames go to a's MAC, port to port, and are dropped
    let mac_a = ra.json["interfaces"][2]["mac"].as_str().unwrap().to_string();
    b.ip(&["neigh", "replace", &ip_a, "lladdr", &mac_a, "dev", "eth0", "nud", "permanent"]);
    b.ip(&["route", "replace", &format!("{ip_a}/32"), "dev", "eth0"]);
    assert_eq!(tcp_fetch(&b, &format!("{ip_a}:80")), "", "L2 from pod to pod must not pass");
    b.ip(&["route", "del", &format!("{ip_a}/32"), "dev", "eth0"]);

    // a Service as kube-proxy makes one: DNAT to a pod on the same bridge,
    // which br_netfilter forwards port to port
    let dnat = ["-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.10", "-p", "tcp", "--dport", "80", "-j", "DNAT"];
    let out = node.ns.exec("iptables", &[&dnat[..], &["--to-destination", &format!("{ip_a}:80")]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tcp_fetch(&b, "10.96.0.10:80"), "pod-a", "a Service from a pod on the same node");

    // CHECK names the filter's loss
    let (tool, args, lost): (&str, &[&str], &str) = if backend == "nftables" {
        ("nft", &["delete", "table", "bridge", "weavice"], "drop rule for routed ports")
    } else {
        ("ebtables", &["-t", "nat", "-F", "WEAVICE-POSTROUTING"], "ebtables rule '-A WEAVICE-POSTROUTING")
    };
    assert!(node.ns.exec(tool, args).status.success());
    let bad = node.cni("CHECK", &conf, "isoa", &a.path(), "eth0");
    assert!(!bad.ok && bad.json["msg"].as_str().unwrap().contains(lost), "{}", bad.stdout);
    for (id, p) in [("isoa", &a), ("isob", &b)] {
        assert!(node.cni("DEL", &conf, id, &p.path(), "eth0").ok);
    }
}

/// weavice before the bridge filter isolated routed ports and wrote markers
/// without a layout: such a marker must not let an ADD skip the filter.
#[test]
fn a_marker_from_an_older_version_sets_the_network_up_again() {
    if !require_root() {
        return;
    }
    let node = Node::new("lay");
    let conf = node.conf("1.1.0", "laynet", json!({}));
    let (a, b) = (Netns::new("lya"), Netns::new("lyb"));
    assert!(node.cni("ADD", &conf, "laya", &a.path(), "eth0").ok);
    let path = node.dir.path("state/networks/laynet.json");
    let mut marker: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    marker.as_object_mut().unwrap().remove("layout");
    std::fs::write(&path, marker.to_string()).unwrap();
    node.ns.exec("nft", &["delete", "table", "bridge", "weavice"]);

    assert!(node.cni("ADD", &conf, "layb", &b.path(), "eth0").ok);
    let table =
        String::from_utf8_lossy(&node.ns.exec("nft", &["list", "table", "bridge", "weavice"]).stdout).into_owned();
    assert!(table.contains("iifname \"wv*\" drop"), "{table}");
    for (id, p) in [("laya", &a), ("layb", &b)] {
        assert!(node.cni("DEL", &conf, id, &p.path(), "eth0").ok);
    }
}

#[test]
fn bridged_mode_switches_pods_at_l2() {
    if !require_root() {
        return;
    }
    let node = Node::new("l2");
    let conf = node.conf("1.1.0", "l2net", json!({"podToPod": "bridged", "bridge": "wvl2", "hairpinMode": true}));
    let (a, b) = (Netns::new("la"), Netns::new("lb"));
    let ra = node.cni("ADD", &conf, "l2a", &a.path(), "eth0");
    let rb = node.cni("ADD", &conf, "l2b", &b.path(), "eth0");
    assert!(ra.ok && rb.ok, "{} {}", ra.stdout, rb.stdout);
    assert!(ra.json["ips"][0]["address"].as_str().unwrap().ends_with("/24"), "{}", ra.stdout);
    assert_eq!(ping(&a, &ip_of(&rb.json, true)), Some(64), "same L2 segment: no hop");
    assert_eq!(ping(&a, &ip_of(&rb.json, false)), Some(64));
    let port = node.ns.ip(&["-d", "link", "show", ra.json["interfaces"][1]["name"].as_str().unwrap()]);
    assert!(port.contains("hairpin on") && port.contains("isolated off"), "{port}");
    for (id, p) in [("l2a", &a), ("l2b", &b)] {
        assert!(node.cni("DEL", &conf, id, &p.path(), "eth0").ok);
    }
}

#[test]
fn del_is_idempotent_and_check_reports_what_is_missing() {
    if !require_root() {
        return;
    }
    let node = Node::new("del");
    let conf = node.conf("1.1.0", "delnet", json!({}));
    let pod = Netns::new("dp");
    let add = node.cni("ADD", &conf, "del1", &pod.path(), "eth0");
    assert!(add.ok, "{}", add.stdout);
    let host_veth = add.json["interfaces"][1]["name"].as_str().unwrap().to_string();
    // state is root's alone: files 0600, directories 0700
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(node.dir.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("state/attachments/delnet/eth0/del1.json"), 0o600);
    assert_eq!(mode("state/attachments/delnet/eth0"), 0o700);
    assert_eq!(mode("state/networks/delnet.json"), 0o600);
    assert_eq!(mode("ipam/delnet/10.88.0.2"), 0o600);
    assert_eq!(mode("ipam/delnet"), 0o700);
    let mut with_prev = conf.clone();
    merge(&mut with_prev, json!({"prevResult": add.json}));
    let ok = node.cni("CHECK", &with_prev, "del1", &pod.path(), "eth0");
    assert!(ok.ok, "{}", ok.stdout);

    node.ns.exec("nft", &["delete", "table", "bridge", "weavice"]);
    let bad = node.cni("CHECK", &with_prev, "del1", &pod.path(), "eth0");
    assert!(bad.json["msg"].as_str().unwrap().contains("drop rule for routed ports"), "{}", bad.stdout);

    pod.ip(&["route", "del", "default"]);
    let bad = node.cni("CHECK", &with_prev, "del1", &pod.path(), "eth0");
    assert!(!bad.ok);
    assert_eq!(bad.json["code"], 106);
    assert!(bad.json["msg"].as_str().unwrap().contains("route 0.0.0.0/0 via 10.88.0.1"), "{}", bad.stdout);

    node.ns.exec("nft", &["flush", "ruleset"]);
    let bad = node.cni("CHECK", &with_prev, "del1", &pod.path(), "eth0");
    assert!(bad.json["msg"].as_str().unwrap().contains("masquerade rule"), "{}", bad.stdout);

    // DEL without prevResult, twice, then with an empty netns (containerd's second DEL)
    for netns in [pod.path(), pod.path(), String::new()] {
        let r = node.cni("DEL", &conf, "del1", &netns, "eth0");
        assert!(r.ok && r.stdout.is_empty(), "DEL netns={netns:?}: {} {}", r.stdout, r.stderr);
    }
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"], "{host_veth} removed");
    assert!(reservations(&node, "delnet").is_empty());
    assert!(!std::path::Path::new(&node.dir.path("state/attachments/delnet/eth0/del1.json")).exists());
    let unknown = node.cni("CHECK", &conf, "del1", &pod.path(), "eth0");
    assert_eq!(unknown.json["code"], 3, "{}", unknown.stdout);
}

#[test]
fn del_after_a_pod_namespace_is_gone_cleans_the_node() {
    if !require_root() {
        return;
    }
    let node = Node::new("gone");
    let conf = node.conf("1.1.0", "gonenet", json!({}));
    let pod = Netns::new("gp");
    assert!(node.cni("ADD", &conf, "gone1", &pod.path(), "eth0").ok);
    let path = pod.path();
    drop(pod);
    let r = node.cni("DEL", &conf, "gone1", &path, "eth0");
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"]);
    assert!(reservations(&node, "gonenet").is_empty());
}

#[test]
fn fifty_parallel_adds_and_dels_leave_nothing_behind() {
    if !require_root() {
        return;
    }
    let node = std::sync::Arc::new(Node::new("par"));
    let conf = std::sync::Arc::new(node.conf("1.1.0", "parnet", json!({})));
    let pods: Vec<std::sync::Arc<Netns>> = (0..50).map(|i| std::sync::Arc::new(Netns::new(&format!("p{i}")))).collect();
    let run_all = |verb: &'static str| -> Vec<Reply> {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (node, conf, pod) = (node.clone(), conf.clone(), pod.clone());
                std::thread::spawn(move || node.cni(verb, &conf, &format!("par{i}"), &pod.path(), "eth0"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let adds = run_all("ADD");
    for r in &adds {
        assert!(r.ok, "{} {}", r.stdout, r.stderr);
    }
    let mut v4: Vec<String> = adds.iter().map(|r| ip_of(&r.json, true)).collect();
    let mut v6: Vec<String> = adds.iter().map(|r| ip_of(&r.json, false)).collect();
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    assert_eq!((v4.len(), v6.len()), (50, 50), "no address handed out twice");
    assert_eq!(reservations(&node, "parnet").len(), 100);
    assert_eq!(node.ns.links().len(), 52, "lo, wv0 and 50 host veths");
    let rules = rules_dump(&node.ns);
    assert!(ping(&pods[0], &v4[49]).is_some() || ping(&pods[1], &v4[49]).is_some());

    for r in run_all("DEL") {
        assert!(r.ok, "{} {}", r.stdout, r.stderr);
    }
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"], "no leaked link");
    assert!(reservations(&node, "parnet").is_empty(), "no leaked reservation");
    let states = std::fs::read_dir(node.dir.path("state/attachments/parnet/eth0")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(states, 0, "no leaked state");
    assert_eq!(rules_dump(&node.ns), rules, "per-network rules only, nothing per pod");
    let elements = node.ns.exec("nft", &["list", "table", "bridge", "weavice"]).stdout;
    assert!(!String::from_utf8_lossy(&elements).contains("elements"), "no pod's identity left");
}

#[test]
fn gc_releases_attachments_that_are_not_listed() {
    if !require_root() {
        return;
    }
    let node = Node::new("gc");
    let conf = node.conf("1.1.0", "gcnet", json!({}));
    let pods: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("g{i}"))).collect();
    for (i, p) in pods.iter().enumerate() {
        assert!(node.cni("ADD", &conf, &format!("gc{i}"), &p.path(), "eth0").ok);
    }
    // no list (or null) is no GC request: nothing goes
    for absent in [conf.clone(), {
        let mut c = conf.clone();
        merge(&mut c, json!({"cni.dev/valid-attachments": null}));
        c
    }] {
        let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], absent.to_string().as_bytes());
        assert!(r.ok, "{} {}", r.stdout, r.stderr);
        assert_eq!(reservations(&node, "gcnet").len(), 6, "every pod keeps its addresses");
        assert_eq!(node.ns.links().len(), 5, "lo, wv0 and three veths");
    }
    let mut gc = conf.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": [{"containerID": "gc1", "ifname": "eth0"}]}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert_eq!(node.ns.links().len(), 3, "lo, wv0 and gc1's veth");
    assert_eq!(reservations(&node, "gcnet").len(), 2, "gc1's two addresses");
    assert_eq!(ping(&pods[1], "10.88.0.1"), Some(64), "the listed pod still works");
    // the older key spelling works too
    let mut gc_old = conf.clone();
    merge(&mut gc_old, json!({"cni.dev/attachments": []}));
    assert!(node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc_old.to_string().as_bytes()).ok);
    assert!(reservations(&node, "gcnet").is_empty());
    assert_eq!(node.ns.links(), ["lo", "wv0"]);
}

#[test]
fn a_bridge_deleted_by_hand_is_rebuilt_by_the_next_add() {
    if !require_root() {
        return;
    }
    let node = Node::new("rebuild");
    let conf = node.conf("1.1.0", "rebuildnet", json!({"bridge": "wvrb"}));
    let (a, b) = (Netns::new("rba"), Netns::new("rbb"));
    assert!(node.cni("ADD", &conf, "rb1", &a.path(), "eth0").ok);
    node.ns.ip(&["addr", "flush", "dev", "wvrb"]);
    let check = node.cni("CHECK", &conf, "rb1", &a.path(), "eth0");
    assert!(
        check.json["msg"].as_str().unwrap_or_default().contains("gateway 10.88.0.1/24 on bridge wvrb"),
        "{}",
        check.stdout
    );
    node.ns.ip(&["link", "del", "wvrb"]);
    // the network marker still names the old bridge; ADD must notice and rebuild
    let r = node.cni("ADD", &conf, "rb2", &b.path(), "eth0");
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert_eq!(ping(&b, "10.88.0.1"), Some(64));
    assert_eq!(ping(&b, "fd88::1"), Some(64));
    assert!(node.log().contains("setting network rebuildnet up again"));
}

#[test]
fn static_addresses_and_mac_come_from_capabilities_and_args() {
    if !require_root() {
        return;
    }
    let node = Node::new("static");
    let (a, b) = (Netns::new("sa"), Netns::new("sb"));
    let conf = node.conf(
        "1.1.0",
        "staticnet",
        json!({"runtimeConfig": {"ips": ["10.88.0.77/24", "fd88::77"], "mac": "02:aa:bb:cc:dd:ee"}}),
    );
    let r = node.cni("ADD", &conf, "st-a", &a.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(ip_of(&r.json, true), "10.88.0.77");
    assert_eq!(ip_of(&r.json, false), "fd88::77");
    assert!(a.ip(&["link", "show", "eth0"]).contains("02:aa:bb:cc:dd:ee"));
    // CNI_ARGS IP=, and a taken address is refused (code 103)
    let plain = node.conf("1.1.0", "staticnet", json!({}));
    let env = [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "st-b"), ("CNI_NETNS", &b.path()), ("CNI_IFNAME", "eth0")];
    let mut with_args = env.to_vec();
    with_args.push(("CNI_ARGS", "IgnoreUnknown=1;IP=10.88.0.77"));
    let taken = node.invoke("weavice", &with_args, plain.to_string().as_bytes());
    assert_eq!(taken.json["code"], 103, "{}", taken.stdout);
    with_args.pop();
    with_args.push(("CNI_ARGS", "IgnoreUnknown=1;IP=10.88.0.78"));
    let r = node.invoke("weavice", &with_args, plain.to_string().as_bytes());
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(ip_of(&r.json, true), "10.88.0.78");
    assert_eq!(ping(&a, "10.88.0.78"), Some(63));
}

#[test]
fn del_succeeds_over_an_unreadable_state_file() {
    if !require_root() {
        return;
    }
    let node = Node::new("corrupt");
    let conf = node.conf("1.1.0", "cnet", json!({}));
    let pod = Netns::new("cp");
    assert!(node.cni("ADD", &conf, "c1", &pod.path(), "eth0").ok);
    let state = node.dir.path("state/attachments/cnet/eth0/c1.json");
    std::fs::write(&state, b"{ torn").unwrap();
    let check = node.cni("CHECK", &conf, "c1", &pod.path(), "eth0");
    assert_eq!(check.json["code"], 105, "{}", check.stdout);
    let del = node.cni("DEL", &conf, "c1", &pod.path(), "eth0");
    assert!(del.ok, "{} {}", del.stdout, del.stderr);
    assert!(!std::path::Path::new(&state).exists());
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"]);
    assert!(node.log().contains("unreadable"), "{}", node.log());
}

/// DEL finds the host veth however it was left: renamed by hand (as the
/// peer of the pod's interface), or retired by a DEL that then failed (here
/// on an immutable IPAM directory), which the retry completes.
#[test]
fn del_finds_a_renamed_or_half_retired_host_veth() {
    if !require_root() {
        return;
    }
    let node = Node::new("rename");
    let conf = node.conf("1.1.0", "rnet", json!({}));
    let (a, b) = (Netns::new("rna"), Netns::new("rnb"));
    let host_veth = |id: &str| -> String {
        let path = node.dir.path(&format!("state/attachments/rnet/eth0/{id}.json"));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["hostVeth"].as_str().unwrap().to_string()
    };

    assert!(node.cni("ADD", &conf, "rn1", &a.path(), "eth0").ok);
    let veth = host_veth("rn1");
    node.ns.ip(&["link", "set", &veth, "down"]);
    node.ns.ip(&["link", "set", &veth, "name", "wvt-by-hand"]);
    let r = node.cni("DEL", &conf, "rn1", &a.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"], "the renamed veth went with its pod");
    assert!(reservations(&node, "rnet").is_empty());

    assert!(node.cni("ADD", &conf, "rn2", &b.path(), "eth0").ok);
    let ipam_dir = node.dir.path("ipam/rnet");
    sh("chattr", &["+i", &ipam_dir]);
    let r = node.cni("DEL", &conf, "rn2", &b.path(), "eth0");
    sh("chattr", &["-i", &ipam_dir]);
    assert!(!r.ok, "the reservation could not be removed: {}", r.stdout);
    let r = node.cni("DEL", &conf, "rn2", &b.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"], "no retired veth left");
    assert!(reservations(&node, "rnet").is_empty());
}

/// Container IDs longer than a file name (runtimes allow them) get through
/// ADD, CHECK, GC and DEL with a host port: their files take a hashed name
/// and keep the ID inside.
#[test]
fn container_ids_longer_than_a_file_name_work_throughout() {
    if !require_root() {
        return;
    }
    let node = Node::new("longid");
    let mut conf = node.conf("1.1.0", "longnet", json!({}));
    merge(&mut conf, json!({"runtimeConfig": {"portMappings": [{"hostPort": 9494, "containerPort": 80}]}}));
    let plain = node.conf("1.1.0", "longnet", json!({}));
    let (a, b) = (Netns::new("lia"), Netns::new("lib"));
    let (kept, collected) = (format!("k{}", "1".repeat(250)), format!("c{}", "2".repeat(400)));
    let r = node.cni("ADD", &conf, &kept, &a.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert!(node.cni("CHECK", &conf, &kept, &a.path(), "eth0").ok);
    let r = node.cni("ADD", &plain, &collected, &b.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(reservations(&node, "longnet").len(), 4);

    let mut gc = plain.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": [{"containerID": kept, "ifname": "eth0"}]}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    assert!(r.ok, "{}", r.stdout);
    assert_eq!(reservations(&node, "longnet").len(), 2, "GC keeps the listed long ID, collects the other");
    assert!(node.cni("CHECK", &conf, &kept, &a.path(), "eth0").ok, "and the kept one is whole");

    let r = node.cni("DEL", &plain, &kept, &a.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert!(reservations(&node, "longnet").is_empty());
    assert_eq!(wait_links(&node.ns, &["lo", "wv0"]), ["lo", "wv0"]);
    assert!(!node.dir.0.join("state/hostports/tcp/9494").read_dir().is_ok_and(|mut d| d.next().is_some()));
    assert!(!firewall_dump(&node.ns).contains("9494"), "the mapping went with it");
}

/// The attachment's state names the Kubernetes pod from CNI_ARGS (the
/// journal and chains read it), and holds nothing of it when none was named.
#[test]
fn the_attachment_state_names_the_pod() {
    if !require_root() {
        return;
    }
    let node = Node::new("podref");
    let (a, b) = (Netns::new("pra"), Netns::new("prb"));
    let conf = node.conf("1.1.0", "podnet", json!({}));
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_UID=0c9e";
    assert!(node.cni_with_args("ADD", &conf, "pr1", &a.path(), "eth0", args).ok);
    assert!(node.cni("ADD", &conf, "pr2", &b.path(), "eth0").ok);
    let state = |id: &str| -> Value {
        let path = node.dir.path(&format!("state/attachments/podnet/eth0/{id}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    assert_eq!(state("pr1")["pod"], json!({"namespace": "shop", "name": "web-0", "uid": "0c9e"}));
    assert_eq!(state("pr2").get("pod"), None);
    assert!(node.cni("DEL", &conf, "pr1", &a.path(), "eth0").ok);
    assert!(node.cni("DEL", &conf, "pr2", &b.path(), "eth0").ok);
}

/// Two ADDs of one attachment at once (runtimes must not, kubelet restarts
/// have): one wins and the other fails, and the winner keeps its addresses,
/// state and interface; a DEL then leaves nothing.
#[test]
fn two_adds_of_one_attachment_at_once_leave_the_winner_whole() {
    if !require_root() {
        return;
    }
    let node = Node::new("twin");
    let conf = node.conf("1.1.0", "twinnet", json!({}));
    for round in 0..10 {
        let pod = Netns::new("twp");
        let id = format!("twin{round}");
        let (r1, r2) = std::thread::scope(|s| {
            let add = || node.cni("ADD", &conf, &id, &pod.path(), "eth0");
            let a = s.spawn(add);
            let b = s.spawn(add);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(r1.ok != r2.ok, "round {round}: exactly one wins: {} / {}", r1.stdout, r2.stdout);
        assert_eq!(reservations(&node, "twinnet").len(), 2, "round {round}: the winner's two addresses");
        let check = node.cni("CHECK", &conf, &id, &pod.path(), "eth0");
        assert!(check.ok, "round {round}: {}", check.stdout);
        assert!(node.cni("DEL", &conf, &id, &pod.path(), "eth0").ok);
        assert!(reservations(&node, "twinnet").is_empty());
    }
}

/// GC never frees a listed pod's address, even when its reservation file was
/// cut short (a later pod would get it too), and unreadable state files do
/// not stop it: a listed pod's is reported, an unlisted one's removed (a
/// kill while it was written leaves one), the other pods are collected.
#[test]
fn gc_keeps_listed_pods_whole_and_collects_past_an_unreadable_state() {
    if !require_root() {
        return;
    }
    let node = Node::new("gccut");
    let conf = node.conf("1.1.0", "cutnet", json!({}));
    let pods: Vec<Netns> = (0..4).map(|i| Netns::new(&format!("gcc{i}"))).collect();
    let added: Vec<Value> = ["ca", "cb", "cc"]
        .iter()
        .zip(&pods)
        .map(|(id, p)| {
            let r = node.cni("ADD", &conf, id, &p.path(), "eth0");
            assert!(r.ok, "{}", r.stdout);
            r.json
        })
        .collect();
    let ip_a = ip_of(&added[0], true);
    let state = |id: &str| node.dir.path(&format!("state/attachments/cutnet/eth0/{id}.json"));
    std::fs::write(node.dir.path(&format!("ipam/cutnet/{ip_a}")), b"").unwrap();
    std::fs::write(state("ca"), b"{").unwrap();
    std::fs::write(state("cc"), b"{").unwrap();

    let mut gc = conf.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": [{"containerID": "ca", "ifname": "eth0"}]}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    let msg = r.json["msg"].as_str().unwrap_or_default();
    assert!(!r.ok && msg.contains("ca.json"), "a listed pod's torn state is reported: {}", r.stdout);
    assert!(!msg.contains("cc.json") && !std::path::Path::new(&state("cc")).exists(), "an unlisted one goes");
    assert!(node.log().contains("cc.json"), "and is logged");
    assert!(reservations(&node, "cutnet").contains(&ip_a), "ca keeps its address");
    for (i, id) in [(1, "cb"), (2, "cc")] {
        assert!(!reservations(&node, "cutnet").contains(&ip_of(&added[i], true)), "{id} was collected");
    }
    let d = node.cni("ADD", &conf, "cd", &pods[3].path(), "eth0");
    assert!(d.ok, "{}", d.stdout);
    assert_ne!(ip_of(&d.json, true), ip_a, "ca's address is not handed out twice");
    assert!(node.cni("DEL", &conf, "ca", &pods[0].path(), "eth0").ok);
    assert!(!reservations(&node, "cutnet").contains(&ip_a), "DEL frees it after all");
}
