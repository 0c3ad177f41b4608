//! weavice-policy end to end (issue 11): a small shop in namespaces, pods
//! made through cnitool with K8S_POD_* arguments, the node daemon recording
//! real TCP and UDP traffic, a cluster file as kubectl would print it; the
//! policies generated in both granularities are checked with the tests'
//! NetworkPolicy evaluator: every recorded flow allowed, pairs not observed
//! denied; `validate` replays the journal against them clean, and names
//! exactly the flows a removed rule served. The HTML report renders in
//! headless Chromium with no console output, in a namespace with no network.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use weavice_tests::netpol::{allowed, End};
use weavice_tests::*;

/// A pod of the shop: its Kubernetes names and its app label.
struct Pod {
    ns: &'static str,
    name: &'static str,
    app: &'static str,
    netns: Netns,
    ip: String,
}

/// `cnitool add podnet` as a kubelet names the pod; its IPv4 address.
fn add(node: &Node, ns: &'static str, name: &'static str, app: &'static str) -> Pod {
    let netns = Netns::new("pol");
    let ip = node.add_k8s_pod("podnet", &netns, ns, name);
    Pod { ns, name, app, netns, ip }
}

/// The cluster file: namespaces, a Deployment (with its ReplicaSet) or
/// StatefulSet per pod, the pods with their labels and addresses.
fn cluster(pods: &[&Pod]) -> Value {
    let mut items = Vec::new();
    let mut namespaces: Vec<&str> = pods.iter().map(|p| p.ns).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        items.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}));
    }
    for p in pods {
        let (owner, labels) = if p.name.ends_with("-0") {
            items.push(
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": p.app, "namespace": p.ns},
                "spec": {"selector": {"matchLabels": {"app": p.app}}}}),
            );
            (
                json!({"kind": "StatefulSet", "name": p.app, "controller": true}),
                json!({"app": p.app, "controller-revision-hash": "7c6"}),
            )
        } else {
            let rs = format!("{}-6d4b9f8c7", p.app);
            items.push(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": p.app, "namespace": p.ns},
                "spec": {"selector": {"matchLabels": {"app": p.app}}}}),
            );
            items.push(
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": rs, "namespace": p.ns,
                "ownerReferences": [{"kind": "Deployment", "name": p.app, "controller": true}]},
                "spec": {"selector": {"matchLabels": {"app": p.app, "pod-template-hash": "6d4b9f8c7"}}}}),
            );
            (
                json!({"kind": "ReplicaSet", "name": rs, "controller": true}),
                json!({"app": p.app, "pod-template-hash": "6d4b9f8c7"}),
            )
        };
        items.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.ns, "labels": labels, "ownerReferences": [owner]},
            "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": p.ip, "podIPs": [{"ip": p.ip}]}}));
    }
    items.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "api"}}}));
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// A pod as the evaluator sees it, by the labels the cluster file gives it.
fn end(p: &Pod) -> End {
    End::Pod {
        namespace: p.ns.into(),
        namespace_labels: [("kubernetes.io/metadata.name".to_string(), p.ns.to_string())].into(),
        labels: [("app".to_string(), p.app.to_string())].into(),
        ip: p.ip.parse().unwrap(),
    }
}

fn policy_tool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("weavice-policy")).args(args).output().expect("run weavice-policy");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn load_policies(dir: &str) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| serde_saphyr::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()).collect()
}

/// A UDP server in `ns` on `addr` answering every datagram.
fn serve_udp(ns: &Netns, addr: &str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = ns.run(move || std::net::UdpSocket::bind(addr).expect("bind UDP server"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
}

/// A DNS-sized UDP exchange from `ns` to `to`; whether an answer came.
fn udp_ask(ns: &Netns, to: &str) -> bool {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        s.send_to(b"query", to).unwrap();
        s.recv_from(&mut [0u8; 64]).is_ok()
    })
}

#[test]
fn policies_generated_from_a_recorded_shop_allow_what_flowed_and_deny_the_rest() {
    if !require_root() {
        return;
    }
    let node = Node::new("pol");
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
    let frontend = add(&node, "shop", "frontend-6d4b9f8c7-x2k9p", "frontend");
    let api = add(&node, "shop", "api-6d4b9f8c7-q8w3z", "api");
    let db = add(&node, "data", "db-0", "db");
    let dns = add(&node, "kube-system", "coredns-6d4b9f8c7-m4n5b", "coredns");
    let outside = Netns::new("polo");
    attach_outside(&node.ns, &outside);
    service_dnat(&node, &api.ip);
    let daemon = Daemon::start(&node, &[]);
    serve_tcp(&api.netns, "0.0.0.0:8080", "api");
    serve_tcp(&db.netns, "0.0.0.0:5432", "db");
    serve_tcp(&outside, "0.0.0.0:443", "out");
    serve_udp(&dns.netns, "0.0.0.0:53");

    // the shop's traffic: frontend -> api through the Service, api -> db,
    // both resolve names, api calls the outside
    assert_eq!(tcp_fetch(&frontend.netns, "10.96.0.10:80"), "api");
    assert_eq!(tcp_fetch(&api.netns, &format!("{}:5432", db.ip)), "db");
    assert!(udp_ask(&frontend.netns, &format!("{}:53", dns.ip)));
    assert!(udp_ask(&api.netns, &format!("{}:53", dns.ip)));
    assert_eq!(tcp_fetch(&api.netns, "203.0.113.2:443"), "out");
    assert!(daemon.stop().success());

    let journal = node.dir.path("state/journal");
    let cluster_file = node.dir.path("cluster.json");
    std::fs::write(&cluster_file, cluster(&[&frontend, &api, &db, &dns]).to_string()).unwrap();
    let (ok, out, err) = policy_tool(&["list", "--journal", &journal, "--cluster", &cluster_file, "--output", "json"]);
    assert!(ok, "{err}");
    let listed: Vec<Value> = serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone();
    let has = |from: &Pod, to: &str, proto: &str, port: u16| {
        listed.iter().any(|c| {
            c["from"]["pod"] == json!(from.name)
                && c["to"]["ip"] == json!(to)
                && c["protocol"] == json!(proto)
                && c["port"] == json!(port)
        })
    };
    assert!(has(&frontend, &api.ip, "TCP", 8080), "the Service flow, at the target port: {listed:#?}");
    assert!(has(&api, &db.ip, "TCP", 5432) && has(&api, "203.0.113.2", "TCP", 443));
    assert!(has(&frontend, &dns.ip, "UDP", 53) && has(&api, &dns.ip, "UDP", 53));
    let via = listed.iter().find(|c| c["via"].is_object()).unwrap();
    assert_eq!(via["via"], json!({"ip": "10.96.0.10", "port": 80, "service": "shop/api"}));

    let pods = [&frontend, &api, &db, &dns];
    let by_ip: BTreeMap<String, &Pod> = pods.iter().map(|p| (p.ip.clone(), *p)).collect();
    let to_end = |v: &Value| match by_ip.get(v["ip"].as_str().unwrap()) {
        Some(p) => end(p),
        None => End::Outside(v["ip"].as_str().unwrap().parse::<IpAddr>().unwrap()),
    };
    for granularity in ["workload", "namespace"] {
        let out_dir = node.dir.path(&format!("policies-{granularity}"));
        let (ok, _, err) = policy_tool(&[
            "generate",
            "--journal",
            &journal,
            "--cluster",
            &cluster_file,
            "--granularity",
            granularity,
            "--out",
            &out_dir,
        ]);
        assert!(ok, "{granularity}: {err}");
        let policies = load_policies(&out_dir);
        for p in &policies {
            assert_eq!(p["apiVersion"], json!("networking.k8s.io/v1"));
            assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]), "{p:#}");
        }
        // every recorded flow allowed
        for c in &listed {
            let (from, to) = (to_end(&c["from"]), to_end(&c["to"]));
            let (proto, port) = (c["protocol"].as_str().unwrap(), c["port"].as_u64().unwrap() as u16);
            assert!(allowed(&policies, &from, &to, proto, port), "{granularity}: recorded flow denied: {c:#}");
        }
        // DNS on TCP too, to the resolver used
        assert!(allowed(&policies, &end(&frontend), &end(&dns), "TCP", 53), "{granularity}");
        // not observed: denied
        let outside_end = End::Outside("203.0.113.2".parse().unwrap());
        let denied = [
            (end(&db), end(&api), "TCP", 8080),
            (end(&db), outside_end.clone(), "TCP", 443),
            (end(&dns), end(&frontend), "TCP", 8080),
            (end(&api), end(&db), "TCP", 5433),
            (End::Outside("203.0.113.2".parse().unwrap()), end(&api), "TCP", 8080),
            (end(&db), end(&dns), "UDP", 53),
        ];
        for (from, to, proto, port) in &denied {
            assert!(
                !allowed(&policies, from, to, proto, *port),
                "{granularity}: {from:?} -> {to:?} {proto} {port} allowed"
            );
        }
        // the policies replay the journal clean
        let (ok, out, err) = policy_tool(&[
            "validate",
            "--journal",
            &journal,
            "--cluster",
            &cluster_file,
            "--policies",
            &out_dir,
            "--format",
            "json",
        ]);
        assert!(ok, "{granularity}: {out}{err}");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["denied"], json!([]));
        if granularity == "workload" {
            assert_eq!(policies.len(), 4, "one per workload");
            let denied_within_namespace = [
                (end(&frontend), end(&db), "TCP", 5432),
                (end(&api), end(&frontend), "TCP", 8080),
                (end(&frontend), outside_end.clone(), "TCP", 443),
                (end(&db), end(&dns), "UDP", 53),
            ];
            for (from, to, proto, port) in &denied_within_namespace {
                assert!(!allowed(&policies, from, to, proto, *port), "{from:?} -> {to:?} {proto} {port} allowed");
            }
        } else {
            assert_eq!(policies.len(), 3, "one per namespace");
        }
    }

    // api's ingress rule goes: validate names exactly the flows it served
    let api_file = node.dir.path("policies-workload/shop.weavice-deployment-api.yaml");
    let mut api_policy: Value = serde_saphyr::from_str(&std::fs::read_to_string(&api_file).unwrap()).unwrap();
    api_policy["spec"].as_object_mut().unwrap().remove("ingress");
    std::fs::write(&api_file, api_policy.to_string()).unwrap();
    let (ok, out, _) = policy_tool(&[
        "validate",
        "--journal",
        &journal,
        "--cluster",
        &cluster_file,
        "--policies",
        &node.dir.path("policies-workload"),
        "--format",
        "json",
    ]);
    assert!(!ok, "exit 1: {out}");
    let denied = serde_json::from_str::<Value>(&out).unwrap()["denied"].clone();
    let served: Vec<&Value> = listed.iter().filter(|c| c["to"]["pod"] == json!(api.name)).collect();
    assert_eq!(denied.as_array().unwrap().len(), served.len(), "{denied:#}");
    for d in denied.as_array().unwrap() {
        assert_eq!((&d["to"]["pod"], &d["deniedBy"]), (&json!(api.name), &json!("ingress")), "{d:#}");
    }

    // the HTML report renders offline with no console output
    let report = node.dir.path("report.html");
    let (ok, _, err) = policy_tool(&["graph", "--journal", &journal, "--cluster", &cluster_file, "--out", &report]);
    assert!(ok, "{err}");
    let browser = Netns::new("polb");
    let profile = node.dir.path("chromium");
    let out = browser.exec(
        "chromium",
        &[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={profile}"),
            "--dump-dom",
            &format!("file://{report}"),
        ],
    );
    let (dom, log) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(dom.contains("data-rendered=\"5\""), "the script ran over 5 graph nodes: {dom}");
    assert!(dom.contains("<svg") && dom.contains("shop/deployment/api"), "{dom}");
    assert!(!log.contains(":CONSOLE"), "console output: {log}");
}
