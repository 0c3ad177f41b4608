//! weavice next to the reference plugins: weavice-ipam under the reference
//! `bridge`, and the reference `host-local` under weavice, both via cnitool.

use serde_json::{json, Value};
use weavice_tests::*;

fn cnitool_add(node: &Node, net: &str, pod: &Netns) -> Value {
    let out = node.cnitool("add", net, pod, &[]);
    assert!(out.status.success(), "cnitool add {net}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("result JSON")
}

fn v4(result: &Value) -> String {
    let a = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["address"].as_str())
        .find(|a| a.contains('.'))
        .unwrap();
    a.split('/').next().unwrap().to_string()
}

fn files_in(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().parse::<std::net::IpAddr>().is_ok()).count())
        .unwrap_or(0)
}

#[test]
fn weavice_ipam_serves_the_reference_bridge_plugin() {
    if !require_root() {
        return;
    }
    let node = Node::new("refbr");
    let data = node.dir.path("ipam");
    let bridge = json!({
        "type": "bridge", "bridge": "cni-wvt", "isGateway": true, "ipMasq": true,
        "ipam": {"type": "weavice-ipam", "dataDir": data, "ranges": [[{"subnet": "10.91.0.0/24"}]]}
    });
    node.write_conflist("refbr", "1.0.0", vec![bridge]);
    let (a, b) = (Netns::new("ra"), Netns::new("rb"));
    let (ra, rb) = (cnitool_add(&node, "refbr", &a), cnitool_add(&node, "refbr", &b));
    assert_eq!(v4(&ra), "10.91.0.2");
    assert_eq!(v4(&rb), "10.91.0.3");
    assert!(ping(&a, &v4(&rb)).is_some(), "pods on the reference bridge reach each other");
    assert_eq!(files_in(&format!("{data}/refbr")), 2);
    let check = node.cnitool("check", "refbr", &a, &[]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for p in [&a, &b] {
        assert!(node.cnitool("del", "refbr", p, &[]).status.success());
    }
    assert_eq!(files_in(&format!("{data}/refbr")), 0, "reservations released");
}

#[test]
fn reference_host_local_serves_weavice() {
    if !require_root() {
        return;
    }
    let node = Node::new("hl");
    let data = node.dir.path("host-local");
    let mut plugin = node.conf("1.0.0", "hlnet", json!({}));
    merge(
        &mut plugin,
        json!({"ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.92.0.0/24"}], [{"subnet": "fd92::/64"}]]}}),
    );
    node.write_conflist("hlnet", "1.0.0", vec![plugin]);
    let (a, b) = (Netns::new("ha"), Netns::new("hb"));
    let (ra, rb) = (cnitool_add(&node, "hlnet", &a), cnitool_add(&node, "hlnet", &b));
    assert_eq!(v4(&ra), "10.92.0.2");
    assert_eq!(ping(&a, &v4(&rb)), Some(63));
    assert_eq!(files_in(&format!("{data}/hlnet")), 4);
    let check = node.cnitool("check", "hlnet", &a, &[]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for p in [&a, &b] {
        let out = node.cnitool("del", "hlnet", p, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(files_in(&format!("{data}/hlnet")), 0, "host-local released its files");
}
