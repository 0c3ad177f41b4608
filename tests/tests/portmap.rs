//! hostPort mappings: reachable from outside, from the node (its address and
//! 127.0.0.1), from another pod, from the pod itself, over IPv6; conflicts
//! refused naming the holder; DEL without runtimeConfig; chained mode.

use serde_json::{json, Value};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use weavice_tests::*;

/// A UDP echo in `ns` on `addr`.
fn udp_echo(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = ns.run(move || UdpSocket::bind(addr).expect("bind udp"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
}

fn udp_ask(ns: &Netns, to: &str) -> bool {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        let s = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        s.send_to(b"hi", to).unwrap();
        let mut buf = [0u8; 8];
        s.recv_from(&mut buf).is_ok()
    })
}

fn mapped(node: &Node, mappings: Value) -> Value {
    node.conf("1.1.0", "pmnet", json!({"runtimeConfig": {"portMappings": mappings}}))
}

fn with_backend(mut conf: Value, backend: &str) -> Value {
    merge(&mut conf, json!({"firewallBackend": backend}));
    conf
}

fn nft_table(node: &Node) -> String {
    String::from_utf8_lossy(&node.ns.exec("nft", &["list", "table", "inet", "weavice"]).stdout).into_owned()
}

#[test]
fn mapped_ports_are_reachable_from_everywhere_and_only_there() {
    mapped_ports_case("nftables");
}

#[test]
fn mapped_ports_with_the_iptables_backend() {
    mapped_ports_case("iptables");
}

#[test]
fn mapped_ports_with_iptables_legacy() {
    mapped_ports_case("iptables-legacy");
}

/// weavice on a node whose alternatives choose iptables-legacy: a private
/// copy of /etc/alternatives, with the iptables names pointing at legacy,
/// mounted over the real one (ebtables stays as Debian installs it).
fn cni_legacy(node: &Node, verb: &str, conf: &Value, id: &str, pod: &str) -> Reply {
    let env = [("CNI_COMMAND", verb), ("CNI_CONTAINERID", id), ("CNI_NETNS", pod), ("CNI_IFNAME", "eth0")];
    let alt = node.dir.path("alternatives");
    let mut mount = format!("rm -rf {alt} && cp -a /etc/alternatives {alt}");
    for fam in ["iptables", "ip6tables"] {
        for suffix in ["", "-save", "-restore"] {
            mount += &format!(" && ln -sfn /usr/sbin/{fam}-legacy{suffix} {alt}/{fam}{suffix}");
        }
    }
    mount += &format!(" && mount --bind {alt} /etc/alternatives");
    node.invoke_after_mount(&mount, &env, conf.to_string().as_bytes())
}

fn legacy_dump(node: &Node) -> String {
    let save = |cmd| String::from_utf8_lossy(&node.ns.exec(cmd, &[]).stdout).into_owned();
    save("iptables-legacy-save") + &save("ip6tables-legacy-save")
}

fn mapped_ports_case(backend: &str) {
    if !require_root() {
        return;
    }
    let legacy = backend == "iptables-legacy";
    let backend = if legacy { "iptables" } else { backend };
    // br_netfilter on: the bridge filter of either backend must let a DNAT
    // from another pod and the hairpin through
    let node = Node::with_br_netfilter("pm");
    let cni = |verb: &str, conf: &Value, id: &str, pod: &Netns| {
        if legacy {
            cni_legacy(&node, verb, conf, id, &pod.path())
        } else {
            node.cni(verb, conf, id, &pod.path(), "eth0")
        }
    };
    let dump = || if legacy { legacy_dump(&node) } else { firewall_dump(&node.ns) };
    let outside = Netns::new("pmo");
    attach_outside(&node.ns, &outside);
    let (a, b) = (Netns::new("pma"), Netns::new("pmb"));
    let mappings = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}, {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = with_backend(mapped(&node, mappings), backend);
    let r = cni("ADD", &conf, "pma", &a);
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    let plain = with_backend(node.conf("1.1.0", "pmnet", json!({})), backend);
    assert!(cni("ADD", &plain, "pmb", &b).ok);
    serve_tcp(&a, "[::]:80", "pod-a"); // dual-stack socket
    udp_echo(&a, "0.0.0.0:53");
    serve_tcp(&outside, "0.0.0.0:8080", "outside");

    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8080"), "pod-a", "from another machine");
    assert_eq!(tcp_fetch(&outside, "[2001:db8:113::1]:8080"), "pod-a", "over IPv6");
    assert_eq!(tcp_fetch(&node.ns, "203.0.113.1:8080"), "pod-a", "from the node to its address");
    assert_eq!(tcp_fetch(&node.ns, "127.0.0.1:8080"), "pod-a", "from the node to 127.0.0.1");
    assert_eq!(tcp_fetch(&b, "203.0.113.1:8080"), "pod-a", "from another pod");
    assert_eq!(tcp_fetch(&a, "203.0.113.1:8080"), "pod-a", "hairpin: the pod to its own hostPort");
    assert!(udp_ask(&outside, "203.0.113.1:5353"), "udp from outside");
    assert_eq!(tcp_fetch(&b, "203.0.113.2:8080"), "outside", "traffic to other destinations is not rewritten");

    let check = cni("CHECK", &conf, "pma", &a);
    assert!(check.ok, "{}", check.stdout);
    if backend == "iptables" {
        let rules = dump();
        assert!(
            rules.contains("-A WEAVICE-HOSTPORTS -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.2:80"),
            "{rules}"
        );
        let nft = firewall_dump(&node.ns);
        assert!(!nft.contains("table inet weavice"), "{nft}");
        if legacy {
            for fam in ["ip", "ip6"] {
                let nat =
                    String::from_utf8_lossy(&node.ns.exec("nft", &["list", "table", fam, "nat"]).stdout).into_owned();
                assert!(!nat.contains("WEAVICE"), "iptables-nft must hold nothing: {nat}");
            }
            assert!(legacy_dump(&node).contains("-A WEAVICE-FORWARD"), "the DNAT mark rule goes to legacy too");
        }
    }

    // DEL with no runtimeConfig removes exactly this pod's mappings
    assert!(cni("DEL", &plain, "pma", &a).ok);
    let table = dump();
    assert!(!table.contains("8080") && !table.contains("5353"), "{table}");
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8080"), "");
    assert!(cni("DEL", &plain, "pmb", &b).ok);
}

/// A UDP flow that began before its port was mapped would keep bypassing the
/// new DNAT (conntrack keeps its first decision): ADD deletes it over
/// netlink. The conntrack tool is replaced by one that leaves a trace, so a
/// run of it would show.
#[test]
fn a_udp_host_port_flushes_stale_flows_without_running_conntrack() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmct");
    let outside = Netns::new("pmcto");
    attach_outside(&node.ns, &outside);
    // a first pod sets the network up; its NAT rules make conntrack track the node
    let first = Netns::new("pmct1");
    let plain = node.conf("1.1.0", "ctnet", json!({}));
    assert!(node.cni("ADD", &plain, "ct1", &first.path(), "eth0").ok);
    let send_from_40000 = || {
        outside.run(|| {
            let s = UdpSocket::bind("0.0.0.0:40000").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            s.send_to(b"hi", "203.0.113.1:5353").unwrap();
            let mut buf = [0u8; 8];
            s.recv_from(&mut buf).is_ok()
        })
    };
    assert!(!send_from_40000(), "nothing answers on the node yet");
    let flows = || {
        let out = node.ns.exec("conntrack", &["-L", "-p", "udp", "--orig-port-dst", "5353"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(flows(), 1, "the stale flow");

    let trace = node.dir.path("conntrack-ran");
    let fake = node.dir.path("conntrack");
    std::fs::write(&fake, format!("#!/bin/sh\ntouch {trace}\n")).unwrap();
    sh("chmod", &["755", &fake]);
    let pod = Netns::new("pmct2");
    udp_echo(&pod, "0.0.0.0:53");
    let udp = json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]);
    let conf = node.conf("1.1.0", "ctnet", json!({"runtimeConfig": {"portMappings": udp}}));
    let netns = pod.path();
    let env =
        [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "ct2"), ("CNI_NETNS", netns.as_str()), ("CNI_IFNAME", "eth0")];
    let r =
        node.invoke_after_mount(&format!("mount --bind {fake} /usr/sbin/conntrack"), &env, conf.to_string().as_bytes());
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert_eq!(flows(), 0, "ADD deleted the stale flow");
    assert!(!std::path::Path::new(&trace).exists(), "ADD ran no conntrack process");
    assert!(send_from_40000(), "the same source now reaches the pod");
    assert!(node.cni("DEL", &conf, "ct2", &pod.path(), "eth0").ok);
    assert!(node.cni("DEL", &plain, "ct1", &first.path(), "eth0").ok);
}

#[test]
fn a_port_in_use_is_refused_naming_its_holder() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmc");
    let (a, b) = (Netns::new("pca"), Netns::new("pcb"));
    let conf = mapped(&node, json!([{"hostPort": 9090, "containerPort": 80}]));
    let env = |id: &'static str, pod: &Netns| {
        vec![
            ("CNI_COMMAND", "ADD".to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", pod.path()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_ARGS", format!("K8S_POD_NAMESPACE=shop;K8S_POD_NAME={id}")),
        ]
    };
    let run = |id: &'static str, pod: &Netns| {
        let e = env(id, pod);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        node.invoke("weavice", &e, conf.to_string().as_bytes())
    };
    assert!(run("web1", &a).ok);
    let before = (nft_table(&node), node.ns.links());
    let r = run("web2", &b);
    assert!(!r.ok);
    assert_eq!(r.json["code"], 107, "{}", r.stdout);
    assert!(r.json["msg"].as_str().unwrap().contains("shop/web1"), "{}", r.stdout);
    assert_eq!((nft_table(&node), node.ns.links()), before, "nothing installed for the refused pod");
    // GC of web1 (not listed) frees its port too
    let mut gc = conf.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": []}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert!(!nft_table(&node).contains("9090"), "GC removed the mapping");
    assert!(run("web2", &b).ok, "the port is free again");
}

#[test]
fn bad_port_mappings_are_invalid_config_and_install_nothing() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmbad");
    let pod = Netns::new("pbp");
    let cases = [
        (json!([{"hostPort": 0, "containerPort": 80}]), "hostPort 0"),
        (json!([{"hostPort": 65536, "containerPort": 80}]), "65536"),
        (json!([{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]), "icmp"),
        (json!([{"hostPort": 80, "containerPort": 80, "hostIP": "10.1.1.300"}]), "10.1.1.300"),
        (json!([{"hostPort": 80, "containerPort": 80, "hostIP": "198.51.100.7"}]), "not an address of this node"),
        (json!([{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81}]), "duplicates"),
    ];
    for (m, needle) in cases {
        let r = node.cni("ADD", &mapped(&node, m.clone()), "bad", &pod.path(), "eth0");
        assert!(!r.ok, "{m}");
        assert_eq!(r.json["code"], 7, "{m}: {}", r.stdout);
        assert!(r.json["msg"].as_str().unwrap().contains(needle), "{m}: {}", r.stdout);
        assert_eq!(node.ns.links(), ["lo"], "{m}: nothing created");
        assert!(
            !std::path::Path::new(&node.dir.path("state/hostports/tcp/80")).exists()
                || std::fs::read_dir(node.dir.path("state/hostports/tcp/80")).unwrap().count() == 0
        );
    }
}

/// Chained after the reference bridge plugin, weavice maps ports to the
/// address in prevResult (from outside, from the node, from the node to
/// 127.0.0.1 through route_localnet on the bridge plugin's bridge, from the
/// pod itself through hairpin on its port) and holds
/// the pod to its identity on the bridge plugin's veth (found as the peer of
/// the pod's interface).
#[test]
fn weavice_chained_after_the_reference_bridge_maps_ports() {
    if !require_root() {
        return;
    }
    let node = Node::new("chain");
    let outside = Netns::new("cho");
    attach_outside(&node.ns, &outside);
    let bridge = json!({
        "type": "bridge", "bridge": "cni-wvc", "isDefaultGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "dataDir": node.dir.path("host-local"), "ranges": [[{"subnet": "10.93.0.0/24"}]]}
    });
    let weavice = json!({"type": "weavice", "stateDir": node.dir.path("state"), "logFile": node.dir.path("weavice.log"), "capabilities": {"portMappings": true}});
    node.write_conflist("chained", "1.0.0", vec![bridge, weavice]);
    let pod = Netns::new("chp");
    let caps = r#"{"portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]}"#;
    let out = node.cnitool("add", "chained", &pod, &[("CAP_ARGS", caps)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["interfaces"][0]["name"], "cni-wvc", "the bridge plugin's result is passed on");
    serve_tcp(&pod, "0.0.0.0:80", "chained-pod");
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8081"), "chained-pod");
    assert_eq!(tcp_fetch(&node.ns, "203.0.113.1:8081"), "chained-pod", "from the node");
    assert_eq!(tcp_fetch(&node.ns, "127.0.0.1:8081"), "chained-pod", "from the node to 127.0.0.1");
    assert_eq!(tcp_fetch(&pod, "203.0.113.1:8081"), "chained-pod", "hairpin: the pod to its own hostPort");
    // the bridge plugin's veth is held to the pod's identity from prevResult
    // (to the node, which can answer an address of the range it was not given)
    let own = pod.exec("ping", &["-c", "1", "-W", "1", "10.93.0.1"]);
    assert!(own.status.success(), "from its own address");
    pod.ip(&["addr", "add", "10.93.0.200/32", "dev", "eth0"]);
    let spoofed = pod.exec("ping", &["-c", "1", "-W", "1", "-I", "10.93.0.200", "10.93.0.1"]);
    assert!(!spoofed.status.success(), "from an address the pod was not given");
    pod.ip(&["addr", "del", "10.93.0.200/32", "dev", "eth0"]);
    let veth = result["interfaces"][1]["name"].as_str().unwrap().to_string();
    let ports = || {
        let set = node.ns.exec("nft", &["list", "set", "bridge", "weavice", "spoof_ports"]);
        String::from_utf8_lossy(&set.stdout).into_owned()
    };
    assert!(ports().contains(&veth), "{}", ports());
    let check = node.cnitool("check", "chained", &pod, &[("CAP_ARGS", caps)]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let del = node.cnitool("del", "chained", &pod, &[("CAP_ARGS", caps)]);
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    assert!(!nft_table(&node).contains("8081"));
    assert!(!ports().contains(&veth), "the identity went with DEL");
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8081"), "");
}

#[test]
fn reference_portmap_chained_after_weavice_works() {
    if !require_root() {
        return;
    }
    let node = Node::new("refpm");
    let outside = Netns::new("rpo");
    attach_outside(&node.ns, &outside);
    let mut weavice = node.conf("1.0.0", "refpm", json!({}));
    merge(
        &mut weavice,
        json!({"ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"), "ranges": [[{"subnet": "10.94.0.0/24"}]]}}),
    );
    let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    node.write_conflist("refpm", "1.0.0", vec![weavice, portmap]);
    let pod = Netns::new("rpp");
    let caps = r#"{"portMappings": [{"hostPort": 8082, "containerPort": 80, "protocol": "tcp"}]}"#;
    let out = node.cnitool("add", "refpm", &pod, &[("CAP_ARGS", caps)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serve_tcp(&pod, "0.0.0.0:80", "behind-portmap");
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8082"), "behind-portmap");
    let del = node.cnitool("del", "refpm", &pod, &[("CAP_ARGS", caps)]);
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    assert_eq!(tcp_fetch(&outside, "203.0.113.1:8082"), "");
}

/// containerd 1.6 spells the keys as Go fields (`HostPort`, `Protocol`,
/// ...); a UDP mapping must stay UDP. A DEL whose runtimeConfig weavice
/// cannot read still succeeds and removes what the state holds.
#[test]
fn containerds_go_field_names_map_ports_and_del_never_fails_on_runtime_config() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmgo");
    let outside = Netns::new("pmgoo");
    attach_outside(&node.ns, &outside);
    let pod = Netns::new("pmgop");
    udp_echo(&pod, "0.0.0.0:53");
    let conf = mapped(&node, json!([{"HostPort": 18053, "ContainerPort": 53, "Protocol": "udp", "HostIP": ""}]));
    let r = node.cni("ADD", &conf, "go1", &pod.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert!(udp_ask(&outside, "203.0.113.1:18053"), "the UDP mapping works");
    let unreadable = mapped(&node, json!([{"HostPort": "x"}]));
    let r = node.cni("DEL", &unreadable, "go1", &pod.path(), "eth0");
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert!(!nft_table(&node).contains("18053"), "the mapping went with DEL");
    assert!(node.log().contains("runtimeConfig set aside"), "{}", node.log());
    assert!(!udp_ask(&outside, "203.0.113.1:18053"));
}

/// A claim whose write was cut short (an empty file) blocks its port only
/// while some pod's state holds that port; otherwise ADD and GC reclaim it.
#[test]
fn an_unreadable_claim_is_reclaimed_unless_a_pod_holds_the_port() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmcl");
    let (a, b) = (Netns::new("pmcla"), Netns::new("pmclb"));
    let conf = mapped(&node, json!([{"hostPort": 9191, "containerPort": 80}]));
    let claim = node.dir.path("state/hostports/tcp/9191/any");
    let cut_short = |path: &str| {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    };
    cut_short(&claim);
    assert!(node.cni("ADD", &conf, "cla", &a.path(), "eth0").ok, "no pod held it: reclaimed");
    assert!(node.log().contains("reclaiming host port *:9191/tcp"), "{}", node.log());
    cut_short(&claim);
    let r = node.cni("ADD", &conf, "clb", &b.path(), "eth0");
    assert_eq!(r.json["code"], 107, "cla's state still maps the port: {}", r.stdout);
    assert!(r.json["msg"].as_str().unwrap().contains("cla"), "{}", r.stdout);
    assert!(node.cni("DEL", &conf, "cla", &a.path(), "eth0").ok);
    assert!(node.cni("ADD", &conf, "clb", &b.path(), "eth0").ok);

    // GC sweeps one nobody holds
    let stray = node.dir.path("state/hostports/udp/9292/any");
    cut_short(&stray);
    let mut gc = conf.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": [{"containerID": "clb", "ifname": "eth0"}]}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
    assert!(!std::path::Path::new(&stray).exists(), "GC reclaimed the stray claim");
    assert!(std::path::Path::new(&claim).exists(), "clb's claim stays");
    assert!(node.cni("DEL", &conf, "clb", &b.path(), "eth0").ok);
}

/// A pod with a thousand mappings (dual-stack: over 2,000 map elements, more
/// than one transaction) gets them all; DEL leaves none, and neither does an
/// ADD that fails in its second transaction.
#[test]
fn a_thousand_mappings_go_in_and_out_whole() {
    if !require_root() {
        return;
    }
    let node = Node::new("pmk");
    let (a, b) = (Netns::new("pmka"), Netns::new("pmkb"));
    let many: Vec<Value> = (0..1000).map(|i| json!({"hostPort": 20000 + i, "containerPort": 80})).collect();
    let conf = mapped(&node, json!(many));
    let count = |name: &str| inet_elements(&node.ns, name);
    let r = node.cni("ADD", &conf, "ka", &a.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    assert_eq!((count("hostport_v4"), count("hostport_v6"), count("hairpin_v4")), (1000, 1000, 1));
    assert!(node.cni("DEL", &conf, "ka", &a.path(), "eth0").ok);
    assert_eq!((count("hostport_v4"), count("hostport_v6"), count("hairpin_v4")), (0, 0, 0));

    // the last port's element is there already, with another target (set by hand)
    let taken = ["add", "element", "inet", "weavice", "hostport_v4", "{ tcp . 20999 : 10.88.0.250 . 80 }"];
    assert!(node.ns.exec("nft", &taken).status.success());
    let r = node.cni("ADD", &conf, "kb", &b.path(), "eth0");
    assert!(!r.ok, "{}", r.stdout);
    assert_eq!(
        (count("hostport_v4"), count("hostport_v6"), count("hairpin_v4")),
        (1, 0, 0),
        "only the hand-set element"
    );
}

/// DEL and GC find what the node holds for a mapped pod whose state file is
/// lost (a kill, a full disk, corruption): its DNAT entries by the addresses
/// IPAM's index gives it, its claims by their holder, its veth by its name;
/// the port can be mapped again.
#[test]
fn del_and_gc_clean_a_mapped_pod_whose_state_is_lost() {
    for backend in ["nftables", "iptables"] {
        lost_state_case(backend);
    }
}

fn lost_state_case(backend: &str) {
    if !require_root() {
        return;
    }
    let node = Node::new("pmls");
    let pods: Vec<Netns> = (0..3).map(|i| Netns::new(&format!("pmls{i}"))).collect();
    let conf = with_backend(mapped(&node, json!([{"hostPort": 9393, "containerPort": 80}])), backend);
    let plain = with_backend(node.conf("1.1.0", "pmnet", json!({})), backend);
    let state = |id: &str| node.dir.path(&format!("state/attachments/pmnet/eth0/{id}.json"));
    let claim = node.dir.path("state/hostports/tcp/9393/any");
    let pod_ip = |r: &Reply| r.json["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let holds = |ip: &str| {
        let dump = firewall_dump(&node.ns);
        dump.contains(&format!("{ip} ")) || dump.contains(&format!("{ip}/")) || dump.contains(&format!("{ip}:"))
    };

    // DEL, without runtimeConfig, of a pod whose state is gone
    let r = node.cni("ADD", &conf, "ls1", &pods[0].path(), "eth0");
    assert!(r.ok, "{backend}: {}", r.stdout);
    let ip = pod_ip(&r);
    assert!(holds(&ip), "{backend}: mapped");
    std::fs::remove_file(state("ls1")).unwrap();
    assert!(node.cni("DEL", &plain, "ls1", &pods[0].path(), "eth0").ok);
    assert!(!holds(&ip), "{backend}: DEL found the mapping: {}", firewall_dump(&node.ns));
    assert!(!std::path::Path::new(&claim).exists(), "{backend}: and the claim");

    // GC of one that never got a DEL
    let r = node.cni("ADD", &conf, "ls2", &pods[1].path(), "eth0");
    assert!(r.ok, "{backend}: the port is free again: {}", r.stdout);
    let ip = pod_ip(&r);
    std::fs::remove_file(state("ls2")).unwrap();
    let mut gc = plain.clone();
    merge(&mut gc, json!({"cni.dev/valid-attachments": []}));
    let r = node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    assert!(r.ok, "{backend}: {} {}", r.stdout, r.stderr);
    assert!(!holds(&ip), "{backend}: GC found the mapping");
    assert!(!std::path::Path::new(&claim).exists(), "{backend}: and the claim");
    assert!(!node.ns.links().iter().any(|l| l.starts_with("wv") && l != "wv0"), "{backend}: and the veth");
    let r = node.cni("ADD", &conf, "ls3", &pods[2].path(), "eth0");
    assert!(r.ok, "{backend}: {}", r.stdout);
    assert!(node.cni("DEL", &conf, "ls3", &pods[2].path(), "eth0").ok);
}
