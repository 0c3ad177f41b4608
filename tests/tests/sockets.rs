//! `weavice-agent sockets` (issue 12): pods made through cnitool, real
//! listeners in their namespaces (TCP, UDP, IPv6) and an established
//! connection, read with sock_diag inside each namespace; a pod whose
//! namespace is gone is reported, not fatal; with policies, the listeners
//! no rule reaches, the ports opened where nothing listens, and the pods no
//! policy isolates.

use serde_json::{json, Value};
use std::process::Command;
use weavice_tests::*;

fn sockets(node: &Node, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("weavice-agent"))
        .args(["sockets", "--state-dir", &node.dir.path("state")])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sockets_lists_each_pods_listeners_and_checks_them_against_policies() {
    if !require_root() {
        return;
    }
    let node = Node::new("sk");
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
    let (api, web, gone) = (Netns::new("ska"), Netns::new("skw"), Netns::new("skg"));
    let api_ip = node.add_k8s_pod("podnet", &api, "shop", "api-0");
    node.add_k8s_pod("podnet", &web, "shop", "web-0");
    node.add_k8s_pod("podnet", &gone, "shop", "gone-0");
    // the runtime lost gone-0's namespace without a DEL
    sh("ip", &["netns", "del", &gone.name]);

    let tcp = api.run(|| std::net::TcpListener::bind("0.0.0.0:8080").unwrap());
    let udp6 = api.run(|| std::net::UdpSocket::bind("[::]:5353").unwrap());
    let local = api.run(|| std::net::TcpListener::bind("127.0.0.1:7000").unwrap());
    let web_listener = web.run(|| std::net::TcpListener::bind("0.0.0.0:80").unwrap());
    // a UDP client's unconnected socket: an ephemeral port, no listener
    let udp_client = api.run(|| std::net::UdpSocket::bind("0.0.0.0:0").unwrap());
    let client = web.run({
        let to = format!("{api_ip}:8080");
        move || std::net::TcpStream::connect(to).unwrap()
    });
    let accepted = tcp.accept().unwrap();

    let (code, out, err) = sockets(&node, &["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let pods: Value = serde_json::from_str(&out).unwrap();
    let pod = |name: &str| pods.as_array().unwrap().iter().find(|p| p["pod"] == json!(name)).unwrap().clone();
    let api_sockets = pod("api-0")["sockets"].clone();
    let has = |s: &Value, proto: &str, state: &str, local: &str| {
        s.as_array()
            .unwrap()
            .iter()
            .any(|k| k["protocol"] == json!(proto) && k["state"] == json!(state) && k["local"] == json!(local))
    };
    assert!(has(&api_sockets, "TCP", "LISTEN", "0.0.0.0:8080"), "{api_sockets:#}");
    assert!(has(&api_sockets, "UDP", "LISTEN", "[::]:5353"), "IPv6 UDP: {api_sockets:#}");
    assert!(has(&api_sockets, "TCP", "LISTEN", "127.0.0.1:7000"));
    assert!(has(&api_sockets, "TCP", "ESTABLISHED", &format!("{api_ip}:8080")), "{api_sockets:#}");
    assert!(has(&pod("web-0")["sockets"], "TCP", "LISTEN", "0.0.0.0:80"));
    assert!(pod("gone-0")["error"].as_str().unwrap().contains("does not exist"), "{pods:#}");

    // policies: api-0 admits TCP 8080 and 9090; web-0 has none
    let dir = TempDir::new("skp");
    std::fs::write(
        dir.path("api.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  ingress: [{ports: [{port: 8080}, {port: 9090}]}]\n",
    )
    .unwrap();
    let pod_item = |name: &str, app: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}}, "spec": {}, "status": {}});
    let cluster =
        json!({"apiVersion": "v1", "kind": "List", "items": [pod_item("api-0", "api"), pod_item("web-0", "web")]});
    std::fs::write(dir.path("cluster.json"), cluster.to_string()).unwrap();
    let (code, out, err) = sockets(
        &node,
        &["--policies", &dir.path("api.yaml"), "--cluster", &dir.path("cluster.json"), "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let pods: Value = serde_json::from_str(&out).unwrap();
    let findings =
        |name: &str| pods.as_array().unwrap().iter().find(|p| p["pod"] == json!(name)).unwrap()["findings"].clone();
    assert_eq!(
        findings("api-0"),
        json!([
            "UDP 5353 listens, but no ingress rule admits it",
            "shop/api/ingress[0] admits TCP 9090, where nothing listens"
        ]),
        "the loopback listener is the pod's own"
    );
    assert_eq!(findings("web-0"), json!(["TCP 80 is open to every peer: no policy isolates the pod for ingress"]));
    let (_, text, _) = sockets(&node, &["--policies", &dir.path("api.yaml"), "--cluster", &dir.path("cluster.json")]);
    assert!(text.contains("shop/api-0") && text.contains("! UDP 5353 listens"), "{text}");

    // bad input: policies without the cluster file
    let (code, _, err) = sockets(&node, &["--policies", &dir.path("api.yaml")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--policies and --cluster go together"), "{err}");
    drop((udp6, local, web_listener, client, accepted, udp_client));
}
