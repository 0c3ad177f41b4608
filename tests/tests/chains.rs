//! `weavice-agent chain apply|list|delete` (issue 9, first slice: the specs,
//! checked against the node and stored; steering comes next). Pods come from
//! cnitool with the Kubernetes names a runtime passes in CNI_ARGS.

use serde_json::{json, Value};
use std::process::Output;
use weavice_tests::*;

const SHOP: &str = r#"apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: shop-guard}
spec:
  network: podnet
  from: {namespace: shop, pods: "frontend-*"}
  to:   {namespace: shop, pods: "payments-*"}
  ports: [{protocol: TCP, port: 8080}]
  failurePolicy: Closed
  functions:
    - {name: fw,  mode: route,  pod: {namespace: sec, name: fw-0}}
    - {name: ips, mode: queue,  queue: 3}
    - {name: ids, mode: mirror, address: 198.51.100.9}
"#;

/// A node with network podnet and pods shop/frontend-0, shop/payments-0, sec/fw-0.
struct Shop {
    node: Node,
    _pods: Vec<Netns>,
}

impl Shop {
    fn new(tag: &str) -> Shop {
        let node = Node::new(tag);
        node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
        let mut pods = Vec::new();
        for (ns, name) in [("shop", "frontend-0"), ("shop", "payments-0"), ("sec", "fw-0")] {
            let pod = Netns::new(tag);
            let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}");
            let out = node.cnitool("add", "podnet", &pod, &[("CNI_ARGS", &args)]);
            assert!(out.status.success(), "cnitool add: {}", String::from_utf8_lossy(&out.stderr));
            pods.push(pod);
        }
        Shop { node, _pods: pods }
    }

    /// `weavice-agent chain ARGS... --state-dir <the node's>` inside the node.
    fn chain(&self, args: &[&str]) -> Output {
        let state = self.node.dir.path("state");
        let mut all = vec!["chain"];
        all.extend_from_slice(args);
        all.extend(["--state-dir", &state]);
        self.node.ns.exec(&bin("weavice-agent"), &all)
    }

    fn apply(&self, yaml: &str) -> Output {
        let file = self.node.dir.path("chain.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.chain(&["apply", "-f", &file])
    }

    /// `chain list --output json`, packet counts left out (the node's own
    /// neighbour discovery may move them).
    fn list(&self) -> Value {
        let out = self.chain(&["list", "--output", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut list: Value = serde_json::from_slice(&out.stdout).expect("list JSON");
        for c in list.as_array_mut().into_iter().flatten() {
            for f in c["functions"].as_array_mut().into_iter().flatten() {
                f.as_object_mut().map(|o| o.remove("packets"));
            }
        }
        list
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn a_chain_is_applied_listed_changed_and_deleted() {
    if !require_root() {
        return;
    }
    let shop = Shop::new("cha");
    let out = shop.apply(SHOP);
    assert!(out.status.success() && text(&out).contains("applied"), "{}", text(&out));
    let again = shop.apply(SHOP);
    assert!(again.status.success() && text(&again).contains("unchanged"), "{}", text(&again));

    let list = shop.list();
    assert_eq!(list[0]["name"], "shop-guard");
    assert_eq!((&list[0]["from"], &list[0]["to"]), (&json!(["shop/frontend-0"]), &json!(["shop/payments-0"])));
    let health: Vec<&Value> = list[0]["functions"].as_array().unwrap().iter().map(|f| &f["healthy"]).collect();
    // the route function's pod is up; no reader on queue 3; a mirror cannot tell
    assert_eq!(health, [&json!(true), &json!(false), &Value::Null]);
    let table = text(&shop.chain(&["list"]));
    assert!(table.contains("fw (route): healthy") && table.contains("from: shop/frontend-0"), "{table}");

    // a function removed: applied in place
    let two = SHOP.replace("    - {name: ids, mode: mirror, address: 198.51.100.9}\n", "");
    assert!(text(&shop.apply(&two)).contains("applied"));
    assert_eq!(shop.list()[0]["functions"].as_array().unwrap().len(), 2);

    let del = shop.chain(&["delete", "shop-guard"]);
    assert!(del.status.success(), "{}", text(&del));
    assert_eq!(shop.list(), json!([]));
    assert_eq!(shop.chain(&["delete", "shop-guard"]).status.code(), Some(2), "no such chain");
}

#[test]
fn bad_chain_specs_exit_2_and_change_nothing() {
    if !require_root() {
        return;
    }
    let shop = Shop::new("chb");
    assert!(shop.apply(SHOP).status.success());
    let before = shop.list();
    let overlapping = SHOP.replace("shop-guard", "shop-guard-2");
    let cases = [
        ("spec: [".to_string(), "line"),
        (SHOP.replace("mode: route", "mode: bounce"), "bounce"),
        (SHOP.replace("queue: 3", "queue: 70000"), "above 65535"),
        (SHOP.replace("name: fw-0", "name: fw-9"), "sec/fw-9 is not on this node"),
        (SHOP.replace("network: podnet", "network: nonet"), "\"nonet\" has no pods on this node"),
        (overlapping, "shop-guard-2 and shop-guard claim the same traffic"),
        (
            SHOP.replace("shop-guard", "other-port").replace("port: 8080", "port: 9090"),
            "pod sec/fw-0 is a function of chain shop-guard already",
        ),
        (
            SHOP.replace("shop-guard", "twice").replace("port: 8080", "port: 9091")
                + "    - {name: fw2, mode: route, pod: {namespace: sec, name: fw-0}}\n",
            "more than one function",
        ),
        (
            SHOP.replace("shop-guard", "own-side")
                .replace("port: 8080", "port: 9092")
                .replace("to:   {namespace: shop, pods: \"payments-*\"}", "to:   {namespace: sec}"),
            "on the chain's from or to side",
        ),
    ];
    for (yaml, expect) in cases {
        let out = shop.apply(&yaml);
        assert_eq!(out.status.code(), Some(2), "{expect}: {}", text(&out));
        assert!(text(&out).contains(expect), "{expect:?} not in {}", text(&out));
        assert_eq!(shop.list(), before, "{expect}: nothing changed");
    }
    let missing = shop.chain(&["apply", "-f", "/nonexistent/chain.yaml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let traversal = shop.chain(&["delete", "../networks/podnet"]);
    assert_eq!(traversal.status.code(), Some(2), "{}", text(&traversal));
    assert!(std::path::Path::new(&shop.node.dir.path("state/networks/podnet.json")).exists());

    // a selector that matches nothing yet: a warning, and the chain is stored
    let later = SHOP
        .replace("shop-guard", "later")
        .replace("to:   {namespace: shop", "to:   {namespace: bank")
        .replace("    - {name: fw,  mode: route,  pod: {namespace: sec, name: fw-0}}\n", "");
    let out = shop.apply(&later);
    assert!(out.status.success() && text(&out).contains("matches no pod yet"), "{}", text(&out));
    assert_eq!(shop.list().as_array().unwrap().len(), 2);
}
