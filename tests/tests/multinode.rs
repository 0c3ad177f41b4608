//! Several nodes without an overlay (issue 13, first slice): three node
//! namespaces on a shared link, each running the plugin (pods through
//! cnitool) and `weavice-agent run --nodes FILE`. Each node routes the
//! others' podCIDRs to their addresses, pods reach pods of other nodes with
//! their own source address (no masquerade inside the cluster's pod
//! ranges), a node gone from the file takes its route with it, a node
//! without a podCIDR is named in the log and skipped, and one whose address
//! is unreachable fails alone.

use serde_json::{json, Value};
use std::net::SocketAddr;
use weavice_tests::kube_api::{write_kubeconfig, NodeApi};
use weavice_tests::*;

fn node_json(name: &str, cidr: Option<&str>, ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": cidr.map(|c| vec![c]).unwrap_or_default()},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}})
}

fn write_nodes(path: &str, items: Vec<Value>) {
    // whole or not at all, as kubectl's output redirected and moved in place
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn pods_of_three_nodes_reach_each_other_by_routes_from_the_node_list() {
    three_nodes("nftables");
}

/// Under iptables the exceptions are RETURN rules in WEAVICE-MASQ, which
/// the daemon adds once the plugin made the chain: here the daemons start
/// before the first pod.
#[test]
fn under_iptables_too_pods_of_other_nodes_see_the_pods_own_address() {
    three_nodes("iptables");
}

fn three_nodes(backend: &str) {
    if !require_root() {
        return;
    }
    let daemons_first = backend == "iptables";
    // the shared link: a bridge in a namespace of its own
    let lan = Netns::new("mnl");
    lan.ip(&["link", "add", "br0", "type", "bridge"]);
    lan.ip(&["link", "set", "br0", "up"]);
    let nodes: Vec<Node> = (1..=3).map(|_| Node::new("mn")).collect();
    let dir = TempDir::new("mnf");
    let file = dir.path("nodes.json");
    let mut items = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let n = i + 1;
        let (here, there) = (format!("wvmn{n}"), format!("wvmnl{n}"));
        sh(
            "ip",
            &["-n", &node.ns.name, "link", "add", &here, "type", "veth", "peer", "name", &there, "netns", &lan.name],
        );
        lan.ip(&["link", "set", &there, "master", "br0", "up"]);
        node.ns.ip(&["addr", "add", &format!("192.168.50.{n}/24"), "dev", &here]);
        node.ns.ip(&["link", "set", &here, "up"]);
        let conf = node.conf(
            "1.0.0",
            "podnet",
            json!({"firewallBackend": backend, "ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"),
                "ranges": [[{"subnet": format!("10.31.{n}.0/24")}]]}}),
        );
        node.write_conflist("podnet", "1.0.0", vec![conf]);
        items.push(node_json(&format!("node-{n}"), Some(&format!("10.31.{n}.0/24")), &format!("192.168.50.{n}")));
    }
    // a node the API knows without a podCIDR yet: named and skipped
    items.push(node_json("node-4", None, "192.168.50.4"));
    // first in the list, a node whose address no node reaches: its route
    // fails, and keeps no other node's route out
    items.insert(0, node_json("node-0", Some("10.31.9.0/24"), "172.16.0.9"));
    write_nodes(&file, items.clone());
    let pods: Vec<Netns> = (1..=3).map(|_| Netns::new("mnp")).collect();
    let start_daemons = || -> Vec<Daemon> {
        let args = |i: usize| ["--nodes".to_string(), file.clone(), "--node-name".into(), format!("node-{}", i + 1)];
        let started = nodes.iter().enumerate().map(|(i, n)| Daemon::start(n, &args(i).each_ref().map(String::as_str)));
        started.collect()
    };
    let early = if daemons_first { start_daemons() } else { Vec::new() };
    let ips: Vec<String> = nodes
        .iter()
        .zip(&pods)
        .enumerate()
        .map(|(i, (n, p))| n.add_k8s_pod("podnet", p, "shop", &format!("p-{}", i + 1)))
        .collect();
    let daemons = if daemons_first { early } else { start_daemons() };
    let route = |node: &Node, cidr: &str| node.ns.ip(&["route", "show", cidr]);
    assert!(
        eventually(|| route(&nodes[0], "10.31.3.0/24").contains("via 192.168.50.3")),
        "{}",
        route(&nodes[0], "10.31.3.0/24")
    );
    assert!(eventually(|| (0..3).all(|i| nodes[i].ns.ip(&["route"]).matches("metric 4242").count() == 2)));

    // the masquerade's exceptions: every node's pod range (adjacent ones
    // merged); under iptables the other nodes' ranges, ahead of the masquerade
    let cluster = || match backend {
        "iptables" => {
            let out = nodes[0].ns.exec("iptables-save", &["-t", "nat"]);
            let chain = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("-A WEAVICE-MASQ "))
                .map(|l| l["-A WEAVICE-MASQ ".len()..].to_string())
                .collect::<Vec<_>>();
            chain.join("\n")
        }
        _ => {
            let out = nodes[0].ns.exec("nft", &["list", "set", "inet", "weavice", "cluster_v4"]);
            // nft wraps long element lists: one space for any run
            String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
        }
    };
    let (before, after) = match backend {
        "iptables" => (
            "-d 10.31.2.0/23 -j RETURN\n-d 10.31.9.0/24 -j RETURN\n-s 127.0.0.0/8",
            "-d 10.31.2.0/24 -j RETURN\n-d 10.31.9.0/24 -j RETURN\n-s 127.0.0.0/8",
        ),
        _ => (
            "elements = { 10.31.1.0/24, 10.31.2.0/23, 10.31.9.0/24 }",
            "elements = { 10.31.1.0/24, 10.31.2.0/24, 10.31.9.0/24 }",
        ),
    };
    // (under iptables: at the chain's head, once the daemon saw the plugin make it)
    let holds = |want: &str| if daemons_first { cluster().starts_with(want) } else { cluster().contains(want) };
    assert!(eventually(|| holds(before)), "{}", cluster());

    for (i, pod) in pods.iter().enumerate().skip(1) {
        serve_tcp(pod, "0.0.0.0:8080", "pod");
        assert_eq!(tcp_fetch(&pods[0], &format!("{}:8080", ips[i])), "pod", "p-1 reaches p-{}", i + 1);
    }
    // the pod's own address arrives, not node-1's
    let to: SocketAddr = format!("{}:5000", ips[1]).parse().unwrap();
    let seen = udp_source_seen(&pods[0], &pods[1], to).expect("p-2 hears p-1");
    assert_eq!(seen.ip().to_string(), ips[0], "no masquerade inside the cluster's pod ranges");

    let log = std::fs::read_to_string(nodes[0].dir.path("agent.log")).unwrap();
    assert!(log.contains("node node-4 has no podCIDR"), "{log}");
    assert!(log.contains("route 10.31.9.0/24 via 172.16.0.9") && log.contains("retrying"), "{log}");
    if daemons_first {
        assert!(log.contains("a network's rules were set up again"), "{log}");
    }

    // node-3 leaves: its route goes from the others
    write_nodes(&file, items[..3].to_vec());
    assert!(eventually(|| route(&nodes[0], "10.31.3.0/24").is_empty()), "{}", route(&nodes[0], "10.31.3.0/24"));
    assert!(eventually(|| route(&nodes[1], "10.31.3.0/24").is_empty()));
    assert!(eventually(|| holds(after)), "{}", cluster());
    assert!(tcp_fetch(&pods[0], &format!("{}:8080", ips[2])).is_empty(), "no route to node-3's pods");
    for d in daemons {
        assert!(d.stop().success());
    }
}

#[test]
fn the_node_list_also_comes_from_a_watch_on_the_kubernetes_api() {
    if !require_root() {
        return;
    }
    let node = Node::new("mk");
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
    // the node's link to the others (no module for dummy links on these machines)
    node.ns.ip(&["link", "add", "wvmk", "type", "veth", "peer", "name", "wvmkp"]);
    node.ns.ip(&["addr", "add", "192.168.60.1/24", "dev", "wvmk"]);
    node.ns.ip(&["link", "set", "wvmk", "up"]);
    node.ns.ip(&["link", "set", "wvmkp", "up"]);
    let pod = Netns::new("mkp");
    node.add_k8s_pod("podnet", &pod, "shop", "p-1");
    // the API server's address, nothing listening there yet
    let port = node.ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let kubeconfig = node.dir.path("kubeconfig");
    write_kubeconfig(&kubeconfig, port);
    let daemon = Daemon::start_with_env(&node, &["--kube", "--node-name", "node-1"], &[("KUBECONFIG", &kubeconfig)]);
    let log = || std::fs::read_to_string(node.dir.path("agent.log")).unwrap_or_default();
    assert!(eventually(|| log().contains("the watch on Nodes")), "an unreachable API server is logged: {}", log());

    let listener = node.ns.run(move || std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    let api = NodeApi::serve(listener);
    api.set(node_json("node-1", Some("10.88.0.0/24"), "192.168.60.1"));
    api.set(node_json("node-2", Some("10.32.2.0/24"), "192.168.60.2"));
    let route = |cidr: &str| node.ns.ip(&["route", "show", cidr]);
    assert!(eventually(|| route("10.32.2.0/24").contains("via 192.168.60.2")), "after a retry: {}", log());
    // then through the watch: a node joins, one without a podCIDR is named, one leaves
    api.set(node_json("node-3", Some("10.32.3.0/24"), "192.168.60.3"));
    api.set(node_json("node-4", None, "192.168.60.4"));
    assert!(eventually(|| route("10.32.3.0/24").contains("via 192.168.60.3")), "{}", log());
    assert!(log().contains("node node-4 has no podCIDR"), "{}", log());
    api.delete("node-2");
    assert!(eventually(|| route("10.32.2.0/24").is_empty()), "{}", log());
    assert!(!route("10.32.3.0/24").is_empty());
    assert!(daemon.stop().success(), "{}", log());
}
