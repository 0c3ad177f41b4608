//! Every input error: CNI error JSON on stdout with the spec's code, a
//! non-zero exit, and nothing left behind.

use serde_json::{json, Value};
use weavice_tests::*;

/// Everything a failed call could have left: links and addresses of node and
/// pod, the node's loopback sysctls, files. Lock files are not state, and
/// IPAM's allocation cursor (`last_reserved_ip.N`) may move on when an ADD is
/// rolled back, as host-local's does: the next pod then gets an address not
/// just released.
fn footprint(node: &Node, pod: &Netns) -> (Vec<String>, String, String, String, Vec<String>) {
    let mut files: Vec<String> = walk(&node.dir.0)
        .into_iter()
        .filter(|f| !f.ends_with("weavice.log") && !f.ends_with("/lock") && !f.contains("/locks/"))
        .filter(|f| !f.contains("/last_reserved_ip."))
        .collect();
    files.sort();
    let lo = node.ns.exec("sysctl", &["net.ipv4.conf.lo.route_localnet", "net.ipv4.ip_forward"]);
    let lo = String::from_utf8_lossy(&lo.stdout).into_owned();
    (node.ns.links(), node.ns.ip(&["-o", "addr"]), lo, pod.ip(&["-o", "addr"]), files)
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.to_string_lossy().into_owned());
        }
    }
    out
}

/// What is wrong, the environment, stdin, the expected code, a word the message must hold.
type Case = (&'static str, Vec<(&'static str, String)>, String, u64, &'static str);

#[test]
fn bad_input_gets_a_cni_error_and_leaves_no_state() {
    if !require_root() {
        return;
    }
    let node = Node::new("bad");
    let pod = Netns::new("bp");
    let good = node.conf("1.0.0", "badnet", json!({}));
    let with = |extra: Value| {
        let mut c = good.clone();
        merge(&mut c, extra);
        c.to_string()
    };
    let tiny_ipam = json!({"ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"), "ranges": [[{"subnet": "10.89.0.0/30"}]]}});
    // fill the /30 (one usable address) so the next ADD finds it exhausted
    let holder = Netns::new("hold");
    let first =
        node.cni("ADD", &serde_json::from_str(&with(tiny_ipam.clone())).unwrap(), "holder", &holder.path(), "eth0");
    assert!(first.ok, "{}", first.stdout);
    pod.ip(&["link", "add", "taken0", "type", "veth", "peer", "name", "taken1"]);
    let fifo = node.dir.path("fifo");
    sh("mkfifo", &[&fifo]);

    let netns = pod.path();
    let env = |cmd: &'static str, id: &'static str, ns: String, ifname: &'static str| -> Vec<(&'static str, String)> {
        let mut e = vec![];
        if !cmd.is_empty() {
            e.push(("CNI_COMMAND", cmd.to_string()));
        }
        if !id.is_empty() {
            e.push(("CNI_CONTAINERID", id.to_string()));
        }
        e.push(("CNI_NETNS", ns));
        if !ifname.is_empty() {
            e.push(("CNI_IFNAME", ifname.to_string()));
        }
        e
    };
    let cases: Vec<Case> = vec![
        ("malformed JSON", env("ADD", "c1", netns.clone(), "eth0"), "{\"cniVersion\": ".into(), 6, "decode"),
        (
            "unknown cniVersion",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"cniVersion": "0.9.9"})),
            1,
            "0.9.9",
        ),
        ("missing CNI_COMMAND", env("", "c1", netns.clone(), "eth0"), with(json!({})), 4, "CNI_COMMAND"),
        ("unknown CNI_COMMAND", env("FROB", "c1", netns.clone(), "eth0"), with(json!({})), 4, "FROB"),
        ("missing CNI_CONTAINERID", env("ADD", "", netns.clone(), "eth0"), with(json!({})), 4, "CNI_CONTAINERID"),
        ("missing CNI_IFNAME", env("ADD", "c1", netns.clone(), ""), with(json!({})), 4, "CNI_IFNAME"),
        ("missing CNI_NETNS", env("ADD", "c1", String::new(), "eth0"), with(json!({})), 4, "CNI_NETNS"),
        (
            "container ID outside the spec's set",
            env("ADD", "../../etc", netns.clone(), "eth0"),
            with(json!({})),
            4,
            "CNI_CONTAINERID",
        ),
        ("interface name too long", env("ADD", "c1", netns.clone(), "eth0123456789abc"), with(json!({})), 4, "15"),
        ("interface name with a slash", env("ADD", "c1", netns.clone(), "eth/0"), with(json!({})), 4, "'/'"),
        (
            "netns that does not exist",
            env("ADD", "c1", "/run/netns/wvt-no-such-ns".into(), "eth0"),
            with(json!({})),
            4,
            "does not exist",
        ),
        (
            "netns that is not a namespace",
            env("ADD", "c1", "/etc/hostname".into(), "eth0"),
            with(json!({})),
            4,
            "not a network namespace",
        ),
        ("interface name template", env("ADD", "c1", netns.clone(), "eth%d"), with(json!({})), 4, "'%'"),
        ("interface named all", env("ADD", "c1", netns.clone(), "all"), with(json!({})), 4, "\"all\""),
        ("interface named default", env("ADD", "c1", netns.clone(), "default"), with(json!({})), 4, "default"),
        ("bridge name template", env("ADD", "c1", netns.clone(), "eth0"), with(json!({"bridge": "br%d"})), 7, "'%'"),
        (
            "bridge naming a link that is no bridge",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"bridge": "lo"})),
            7,
            "not a bridge",
        ),
        (
            "the node's own namespace as the pod's",
            env("ADD", "c1", "/proc/self/ns/net".into(), "eth0"),
            with(json!({})),
            4,
            "node's own",
        ),
        (
            "a FIFO as the pod's namespace",
            env("ADD", "c1", fifo.clone(), "eth0"),
            with(json!({})),
            4,
            "not a network namespace",
        ),
        (
            "mtu below IPv6's minimum with an IPv6 range",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"mtu": 1200})),
            7,
            "1280",
        ),
        (
            "MAC of all zeros",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"runtimeConfig": {"mac": "00:00:00:00:00:00"}})),
            7,
            "MAC",
        ),
        (
            "subnet that does not parse",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"ipam": {"type": "weavice-ipam", "ranges": [[{"subnet": "10.1.2.0/99"}]]}})),
            7,
            "10.1.2.0/99",
        ),
        ("wrong type for a key", env("ADD", "c1", netns.clone(), "eth0"), with(json!({"mtu": "1500"})), 7, "mtu"),
        ("unknown podToPod", env("ADD", "c1", netns.clone(), "eth0"), with(json!({"podToPod": "tunnel"})), 7, "tunnel"),
        (
            "bad MAC",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"runtimeConfig": {"mac": "zz:00"}})),
            7,
            "MAC",
        ),
        ("exhausted range", env("ADD", "c1", netns.clone(), "eth0"), with(tiny_ipam.clone()), 102, "no free address"),
        (
            "interface already in the container",
            env("ADD", "c1", netns.clone(), "taken0"),
            with(json!({})),
            101,
            "taken0",
        ),
        (
            "IPAM plugin not in CNI_PATH",
            env("ADD", "c1", netns.clone(), "eth0"),
            with(json!({"ipam": {"type": "no-such-ipam"}})),
            104,
            "CNI_PATH",
        ),
        (
            "CHECK on a version without CHECK",
            env("CHECK", "c1", netns.clone(), "eth0"),
            with(json!({"cniVersion": "0.3.1"})),
            1,
            "CHECK",
        ),
    ];

    let before = footprint(&node, &pod);
    for (what, env, stdin, code, needle) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = node.invoke("weavice", &env, stdin.as_bytes());
        assert!(!r.ok, "{what}: exited 0");
        assert_eq!(r.json["code"], code, "{what}: {}", r.stdout);
        assert!(r.json["cniVersion"].is_string(), "{what}: {}", r.stdout);
        let msg = r.json["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{what}: message {msg:?} should mention {needle:?}");
        assert_eq!(footprint(&node, &pod), before, "{what}: left something behind");
    }
}

#[test]
fn version_reports_every_supported_version() {
    if !require_root() {
        return;
    }
    let node = Node::new("ver");
    let r = node.invoke("weavice", &[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"0.4.0"}"#);
    assert!(r.ok);
    assert_eq!(r.json["cniVersion"], "0.4.0");
    assert_eq!(r.json["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    let ipam = node.invoke("weavice-ipam", &[("CNI_COMMAND", "VERSION")], b"{}");
    assert!(ipam.ok && ipam.json["supportedVersions"].as_array().unwrap().len() == 5);
}

#[test]
fn results_take_the_shape_of_the_requested_version() {
    if !require_root() {
        return;
    }
    let node = Node::new("shape");
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let pod = Netns::new("sp");
        let conf = node.conf(version, "shapenet", json!({}));
        let id = format!("shape{i}");
        let r = node.cni("ADD", &conf, &id, &pod.path(), "eth0");
        assert!(r.ok, "{version}: {}", r.stdout);
        assert_eq!(r.json["cniVersion"], *version);
        let ip = &r.json["ips"][0];
        assert_eq!(ip.get("version").is_some(), version.starts_with("0."), "{version}: {ip}");
        assert_eq!(r.json["interfaces"][2].get("mtu").is_some(), *version == "1.1.0", "{version}");
        assert_eq!(r.json["interfaces"][2]["sandbox"], pod.path());
        assert_eq!(ip["interface"], 2);
        for verb in ["GC", "STATUS"] {
            let r = node.invoke("weavice", &[("CNI_COMMAND", verb)], conf.to_string().as_bytes());
            assert_eq!(r.ok, *version == "1.1.0", "{verb} at {version}: {}", r.stdout);
            if *version != "1.1.0" {
                assert_eq!(r.json["code"], 1, "{verb} at {version}");
            }
        }
        assert!(node.cni("DEL", &conf, &id, &pod.path(), "eth0").ok);
    }
}

#[test]
fn status_says_not_available_when_the_range_is_full() {
    if !require_root() {
        return;
    }
    let node = Node::new("status");
    let conf = node.conf("1.1.0", "statusnet", json!({"ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"), "ranges": [[{"subnet": "10.90.0.0/30"}]]}}));
    let status = || node.invoke("weavice", &[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
    assert!(status().ok);
    let pod = Netns::new("stp");
    assert!(node.cni("ADD", &conf, "st1", &pod.path(), "eth0").ok);
    let full = status();
    assert!(!full.ok);
    // the spec's 50: cannot service ADD (51 would also say existing pods suffer)
    assert_eq!(full.json["code"], 50, "{}", full.stdout);
    assert!(node.cni("DEL", &conf, "st1", &pod.path(), "eth0").ok);
    assert!(status().ok);
}

/// Runs weavice in the node namespace with /usr/sbin hidden (a tmpfs over it),
/// as on a node without netfilter tools.
fn invoke_without_sbin(node: &Node, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
    node.invoke_after_mount("mount -t tmpfs none /usr/sbin", env, stdin)
}

#[test]
fn a_firewall_backend_whose_tools_are_absent_is_invalid_config() {
    if !require_root() {
        return;
    }
    let node = Node::new("nofw");
    let pod = Netns::new("nfp");
    let netns = pod.path();
    let env =
        [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "nofw1"), ("CNI_NETNS", netns.as_str()), ("CNI_IFNAME", "eth0")];
    for (backend, code, needle) in [
        ("nftables", 7, "apt-get install nftables"),
        ("iptables", 7, "apt-get install iptables"),
        ("auto", 100, "neither"),
    ] {
        let conf = node.conf("1.1.0", "nofwnet", json!({"firewallBackend": backend}));
        let r = invoke_without_sbin(&node, &env, conf.to_string().as_bytes());
        assert!(!r.ok, "{backend}: {} {}", r.stdout, r.stderr);
        assert_eq!(r.json["code"], code, "{backend}: {} {}", r.stdout, r.stderr);
        assert!(r.json["msg"].as_str().unwrap_or_default().contains(needle), "{backend}: {}", r.stdout);
        assert_eq!(node.ns.links(), ["lo"], "{backend}: nothing created");
    }
}

/// A CNI_CONTAINERID that is not UTF-8 is named so (code 4), not "missing".
#[test]
fn a_container_id_that_is_not_utf8_is_named_so() {
    use std::os::unix::ffi::OsStrExt;
    if !require_root() {
        return;
    }
    let node = Node::new("utf");
    let pod = Netns::new("utfp");
    let conf = node.conf("1.0.0", "utfnet", json!({}));
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &node.ns.name, &bin("weavice")])
        .env_clear()
        .env("CNI_CONTAINERID", std::ffi::OsStr::from_bytes(b"c\xff1"));
    let r = run_plugin(
        cmd,
        &[("CNI_COMMAND", "ADD"), ("CNI_NETNS", &pod.path()), ("CNI_IFNAME", "eth0")],
        conf.to_string().as_bytes(),
    );
    assert!(!r.ok);
    assert_eq!(r.json["code"], 4, "{}", r.stdout);
    assert!(r.json["msg"].as_str().unwrap().contains("not UTF-8"), "{}", r.stdout);
}

/// A delegated IPAM plugin that does not list spec 1.1.0 (the reference
/// host-local 1.1.1) is not asked for STATUS, which it does not know.
#[test]
fn status_skips_a_delegated_ipam_without_status() {
    if !require_root() {
        return;
    }
    let node = Node::new("hlst");
    let conf = node.conf(
        "1.1.0",
        "hlnet",
        json!({"ipam": {"type": "host-local", "dataDir": node.dir.path("ipam"), "ranges": [[{"subnet": "10.91.0.0/24"}]]}}),
    );
    let r = node.invoke("weavice", &[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
    assert!(r.ok, "{} {}", r.stdout, r.stderr);
}
