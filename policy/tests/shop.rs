//! Generation from journals written here: a shop on two nodes.
//! node-1: frontend (Deployment, shop), api (Deployment, shop), coredns
//! (Deployment, kube-system); node-2: db-0 (StatefulSet, data). An address
//! reused by two pods in a row; one connection recorded on both nodes.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

const FRONTEND: &str = "frontend-5d8f7c9b4-aaaaa";
const API: &str = "api-5d8f7c9b4-bbbbb";
const DNS: &str = "coredns-5d8f7c9b4-ccccc";

fn shop(d: &Dir) -> (Vec<PathBuf>, PathBuf) {
    let node1 = vec![
        pod(&t(0, 0), "node-1", "add", "c1", "shop", FRONTEND, &["10.22.0.2"]),
        pod(&t(0, 1), "node-1", "add", "c2", "shop", API, &["10.22.0.3", "fd22::3"]),
        pod(&t(0, 2), "node-1", "add", "c3", "kube-system", DNS, &["10.22.0.4"]),
        // 10.22.0.9: first a pod of the report job, then a bare pod
        pod(&t(0, 3), "node-1", "add", "c4", "shop", "report-1-xk2p9", &["10.22.0.9"]),
        pod(&t(5, 0), "node-1", "del", "c4", "shop", "report-1-xk2p9", &["10.22.0.9"]),
        pod(&t(6, 0), "node-1", "add", "c5", "shop", "debug", &["10.22.0.9"]),
        // frontend to api through the Service 10.96.0.10:80 (targetPort 8080), three times
        flow(
            "node-1",
            1,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", 40001), to: ("10.22.0.3", 8080), via: Some(("10.96.0.10", 80)) },
        ),
        flow(
            "node-1",
            2,
            &t(1, 2),
            &t(1, 3),
            F { proto: "TCP", from: ("10.22.0.2", 40002), to: ("10.22.0.3", 8080), via: Some(("10.96.0.10", 80)) },
        ),
        flow(
            "node-1",
            3,
            &t(1, 4),
            &t(1, 5),
            F { proto: "TCP", from: ("10.22.0.2", 40003), to: ("10.22.0.3", 8080), via: Some(("10.96.0.10", 80)) },
        ),
        // DNS through the kube-dns Service
        flow(
            "node-1",
            4,
            &t(1, 6),
            &t(1, 7),
            F { proto: "UDP", from: ("10.22.0.2", 50000), to: ("10.22.0.4", 53), via: Some(("10.96.0.53", 53)) },
        ),
        // api to db on node-2, two ports
        flow(
            "node-1",
            5,
            &t(2, 0),
            &t(2, 9),
            F { proto: "TCP", from: ("10.22.0.3", 41000), to: ("10.23.0.2", 5432), via: Some(("10.96.0.20", 5432)) },
        ),
        flow(
            "node-1",
            6,
            &t(2, 10),
            &t(2, 11),
            F { proto: "TCP", from: ("10.22.0.3", 41001), to: ("10.23.0.2", 5433), via: None },
        ),
        // api to the outside, the outside to frontend
        flow(
            "node-1",
            7,
            &t(3, 0),
            &t(3, 1),
            F { proto: "TCP", from: ("10.22.0.3", 42000), to: ("203.0.113.5", 443), via: None },
        ),
        flow(
            "node-1",
            8,
            &t(3, 2),
            &t(3, 3),
            F { proto: "TCP", from: ("198.51.100.7", 33000), to: ("10.22.0.2", 8080), via: None },
        ),
        // the reused address: the report job's pod, then the bare pod
        flow(
            "node-1",
            9,
            &t(4, 0),
            &t(4, 1),
            F { proto: "TCP", from: ("10.22.0.9", 43000), to: ("10.22.0.3", 8080), via: None },
        ),
        flow(
            "node-1",
            10,
            &t(7, 0),
            &t(7, 1),
            F { proto: "TCP", from: ("10.22.0.9", 43001), to: ("10.22.0.3", 9090), via: None },
        ),
    ];
    let node2 = vec![
        pod(&t(0, 0), "node-2", "add", "d1", "data", "db-0", &["10.23.0.2"]),
        // the same api-to-db connection, on the server's node: the DNAT was on node-1's
        flow(
            "node-2",
            77,
            &t(2, 0),
            &t(2, 9),
            F { proto: "TCP", from: ("10.22.0.3", 41000), to: ("10.23.0.2", 5432), via: None },
        ),
    ];
    let mut items = vec![namespace("shop"), namespace("data"), namespace("kube-system")];
    items.extend(deployment("shop", "frontend", &[(FRONTEND, "10.22.0.2")]));
    items.extend(deployment("shop", "api", &[(API, "10.22.0.3")]));
    items.extend(deployment("kube-system", "coredns", &[(DNS, "10.22.0.4")]));
    items.extend(statefulset("data", "db", "10.23.0.2"));
    items.push(service("shop", "api", "10.96.0.10", 80, 8080));
    // the report job: labels job-name, and a per-run controller-uid
    items.push(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "report-1", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}}));
    items.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "report-1-xk2p9", "namespace": "shop",
        "labels": {"job-name": "report-1", "batch.kubernetes.io/controller-uid": "u1"},
        "ownerReferences": [{"kind": "Job", "name": "report-1", "controller": true}]}, "spec": {}, "status": {}}));
    items.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "shop", "labels": {"run": "debug"}},
        "spec": {}, "status": {"podIP": "10.22.0.9"}}));
    let journals = vec![d.journal("node-1/journal.jsonl", &node1), d.journal("node-2/journal.jsonl", &node2)];
    (journals, d.file("cluster.json", &list(items)))
}

fn args<'a>(cmd: &'a str, journals: &'a [PathBuf], cluster: &'a std::path::Path, extra: &[&'a str]) -> Vec<String> {
    let mut a = vec![cmd.to_string()];
    for j in journals {
        a.push("--journal".into());
        a.push(j.to_string_lossy().into_owned());
    }
    a.push("--cluster".into());
    a.push(cluster.to_string_lossy().into_owned());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run_ok(a: &[String]) -> String {
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{a:?}: {err}");
    out
}

fn listed(d: &Dir) -> Vec<Value> {
    let (journals, cluster) = shop(d);
    let out = run_ok(&args("list", &journals, &cluster, &["--output", "json"]));
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
}

fn find<'a>(all: &'a [Value], from: &str, to: &str, port: u16) -> &'a Value {
    all.iter()
        .find(|c| c["from"]["pod"] == json!(from) && c["to"]["pod"] == json!(to) && c["port"] == json!(port))
        .unwrap_or_else(|| panic!("{from} -> {to}:{port} not in {all:#?}"))
}

#[test]
fn list_joins_by_address_and_time_and_counts_a_connection_on_two_nodes_once() {
    let d = Dir::new("list");
    let all = listed(&d);
    let ids: Vec<u64> = all.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());
    let svc = find(&all, FRONTEND, API, 8080);
    assert_eq!(svc["flows"], json!(3));
    assert_eq!(svc["via"], json!({"ip": "10.96.0.10", "port": 80, "service": "shop/api"}));
    assert_eq!(svc["from"]["workload"], json!("deployment/frontend"));
    assert_eq!((&svc["firstSeen"], &svc["lastSeen"]), (&json!(t(1, 0)), &json!(t(1, 5))));
    assert_eq!(find(&all, API, "db-0", 5432)["flows"], json!(1), "recorded on both nodes, one connection");
    let rows = all.iter().filter(|c| c["to"]["pod"] == json!("db-0") && c["port"] == json!(5432)).count();
    assert_eq!(rows, 1, "the server's record, without the client's `via`, is the same connection: {all:#?}");
    assert_eq!(find(&all, API, "db-0", 5432)["via"]["ip"], json!("10.96.0.20"));
    assert_eq!(find(&all, API, "db-0", 5432)["to"]["workload"], json!("statefulset/db"));
    // 10.22.0.9 at 10:04 was the report job's pod; at 10:07 the debug pod
    assert_eq!(find(&all, "report-1-xk2p9", API, 8080)["from"]["workload"], json!("job/report-1"));
    assert_eq!(find(&all, "debug", API, 9090)["from"]["workload"], json!("pod/debug"));
    let outside = all.iter().find(|c| c["to"]["ip"] == json!("203.0.113.5")).unwrap();
    assert_eq!(outside["to"], json!({"ip": "203.0.113.5"}), "an outside peer is its address");

    // the same input in another order numbers the same way
    let (journals, cluster) = shop(&d);
    let reversed: Vec<PathBuf> = journals.into_iter().rev().collect();
    let again: Value =
        serde_json::from_str(&run_ok(&args("list", &reversed, &cluster, &["--output", "json"]))).unwrap();
    assert_eq!(again, json!(all));
    let text = run_ok(&args("list", &reversed, &cluster, &[]));
    assert!(
        text.contains("shop/api-5d8f7c9b4-bbbbb (deployment/api)")
            && text.contains("8080 (via shop/api 10.96.0.10:80)"),
        "{text}"
    );
}

fn generate(d: &Dir, extra: &[&str]) -> (std::collections::BTreeMap<String, Value>, PathBuf) {
    let (journals, cluster) = shop(d);
    let out = d.path(&format!("out-{}", extra.join("")));
    let o = out.to_string_lossy().into_owned();
    let mut a = args("generate", &journals, &cluster, extra);
    a.extend(["--out".to_string(), o]);
    run_ok(&a);
    (policies(&out), out)
}

/// The rule of `side` whose peer has `key` equal to `value`.
fn rule<'a>(p: &'a Value, side: &str, peers: &str, key: &str, value: &Value) -> &'a Value {
    p["spec"][side]
        .as_array()
        .unwrap_or_else(|| panic!("no {side} in {p:#}"))
        .iter()
        .find(|r| r[peers].as_array().unwrap().iter().any(|peer| peer.pointer(key) == Some(value)))
        .unwrap_or_else(|| panic!("no {side} rule with {key}={value} in {p:#}"))
}

#[test]
fn workload_policies_select_by_the_owners_selector_and_allow_every_port_both_ways() {
    let d = Dir::new("gen");
    let (all, _) = generate(&d, &[]);
    let api = &all["shop.weavice-deployment-api.yaml"];
    assert_eq!(
        api["spec"]["podSelector"],
        json!({"matchLabels": {"app": "api"}}),
        "the Deployment's, no pod-template-hash"
    );
    assert_eq!(api["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    // ingress from frontend on the target port 8080, not the Service's 80
    let from_frontend = rule(api, "ingress", "from", "/podSelector/matchLabels/app", &json!("frontend"));
    assert_eq!(from_frontend["ports"], json!([{"protocol": "TCP", "port": 8080}]));
    assert!(from_frontend["from"][0].get("namespaceSelector").is_none(), "same namespace");
    // egress to db in another namespace: both ports as one range
    let to_db = rule(api, "egress", "to", "/podSelector/matchLabels/app", &json!("db"));
    assert_eq!(to_db["to"][0]["namespaceSelector"], json!({"matchLabels": {"kubernetes.io/metadata.name": "data"}}));
    assert_eq!(to_db["ports"], json!([{"protocol": "TCP", "port": 5432, "endPort": 5433}]));
    let out = rule(api, "egress", "to", "/ipBlock/cidr", &json!("203.0.113.5/32"));
    assert_eq!(out["ports"], json!([{"protocol": "TCP", "port": 443}]));
    // the job's pod by its stable label, the bare pod by its own
    rule(api, "ingress", "from", "/podSelector/matchLabels/job-name", &json!("report-1"));
    let debug = rule(api, "ingress", "from", "/podSelector/matchLabels/run", &json!("debug"));
    assert_eq!(debug["ports"], json!([{"protocol": "TCP", "port": 9090}]));
    let job = &all["shop.weavice-job-report-1.yaml"];
    assert_eq!(job["spec"]["podSelector"], json!({"matchLabels": {"job-name": "report-1"}}), "no controller-uid");

    let db = &all["data.weavice-statefulset-db.yaml"];
    assert_eq!(db["spec"]["podSelector"], json!({"matchLabels": {"app": "db"}}));
    let from_api = rule(db, "ingress", "from", "/podSelector/matchLabels/app", &json!("api"));
    assert_eq!(from_api["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], json!("shop"));
    assert!(db["spec"].get("egress").is_none(), "db called nobody: egress isolated, nothing allowed");

    // DNS: UDP and TCP to the resolver really used, on both sides
    let frontend = &all["shop.weavice-deployment-frontend.yaml"];
    let dns = rule(frontend, "egress", "to", "/podSelector/matchLabels/app", &json!("coredns"));
    assert_eq!(dns["ports"], json!([{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]));
    let coredns = &all["kube-system.weavice-deployment-coredns.yaml"];
    let dns_in = rule(coredns, "ingress", "from", "/podSelector/matchLabels/app", &json!("frontend"));
    assert_eq!(dns_in["ports"], json!([{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]));
    rule(frontend, "ingress", "from", "/ipBlock/cidr", &json!("198.51.100.7/32"));

    // evidence: flows and times per rule
    let notes = frontend["metadata"]["annotations"].as_object().unwrap();
    assert!(
        notes
            .values()
            .any(|v| v == &json!(format!("shop/deployment/api: 3 flows, first {}, last {}", t(1, 0), t(1, 5)))),
        "{notes:#?}"
    );
    assert_eq!(all.len(), 6, "{:?}", all.keys().collect::<Vec<_>>());
}

#[test]
fn no_allow_dns_keeps_only_the_protocol_observed() {
    let d = Dir::new("nodns");
    let (all, _) = generate(&d, &["--no-allow-dns"]);
    let frontend = &all["shop.weavice-deployment-frontend.yaml"];
    let dns = rule(frontend, "egress", "to", "/podSelector/matchLabels/app", &json!("coredns"));
    assert_eq!(dns["ports"], json!([{"protocol": "UDP", "port": 53}]));
}

#[test]
fn namespace_granularity_writes_one_policy_per_namespace_with_namespace_peers() {
    let d = Dir::new("ns");
    let (all, _) = generate(&d, &["--granularity", "namespace"]);
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["data.weavice-namespace.yaml", "kube-system.weavice-namespace.yaml", "shop.weavice-namespace.yaml"]
    );
    let shop = &all["shop.weavice-namespace.yaml"];
    assert_eq!(shop["spec"]["podSelector"], json!({}));
    let to_db =
        rule(shop, "egress", "to", "/namespaceSelector/matchLabels/kubernetes.io~1metadata.name", &json!("data"));
    assert!(to_db["to"][0].get("podSelector").is_none(), "all pods of the namespace");
    let within = rule(shop, "ingress", "from", "/podSelector", &json!({}));
    assert_eq!(within["ports"], json!([{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9090}]));
}

#[test]
fn the_same_input_gives_the_same_bytes_whatever_the_order_of_files() {
    let d = Dir::new("det");
    let (journals, cluster) = shop(&d);
    let mut outputs = Vec::new();
    for (i, order) in [journals.clone(), journals.iter().rev().cloned().collect()].iter().enumerate() {
        let out = d.path(&format!("det-{i}"));
        let mut a = args("generate", order, &cluster, &[]);
        a.extend(["--out".into(), out.to_string_lossy().into_owned()]);
        run_ok(&a);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        files.sort();
        outputs.push(files);
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn a_pod_the_cluster_file_does_not_know_is_named_and_nothing_wrong_is_written() {
    let d = Dir::new("unknown");
    let (mut journals, cluster) = shop(&d);
    journals.push(d.journal(
        "node-3/journal.jsonl",
        &[
            pod(&t(0, 0), "node-3", "add", "e1", "shop", "ghost", &["10.24.0.2"]),
            // a frontend pod gone since: its ReplicaSet names it
            pod(&t(0, 0), "node-3", "add", "e2", "shop", "frontend-5d8f7c9b4-zzzzz", &["10.24.0.3"]),
            flow(
                "node-3",
                1,
                &t(8, 0),
                &t(8, 1),
                F { proto: "TCP", from: ("10.24.0.2", 1000), to: ("10.22.0.3", 8080), via: None },
            ),
            flow(
                "node-3",
                2,
                &t(8, 0),
                &t(8, 1),
                F { proto: "TCP", from: ("10.24.0.3", 1001), to: ("10.22.0.3", 8080), via: None },
            ),
        ],
    ));
    let out = d.path("out");
    let mut a = args("generate", &journals, &cluster, &[]);
    a.extend(["--out".into(), out.to_string_lossy().into_owned()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = run(&a);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("shop/ghost: not in the cluster file"), "{err}");
    assert!(err.contains("not written: shop/weavice-deployment-api"), "api's ingress cannot name ghost: {err}");
    let all = policies(&out);
    assert!(!all.contains_key("shop.weavice-deployment-api.yaml"));
    assert!(all.contains_key("shop.weavice-deployment-frontend.yaml"), "the gone pod is frontend's");
    assert!(!err.contains("frontend-5d8f7c9b4-zzzzz"), "{err}");
}

#[test]
fn without_a_cluster_file_workload_policies_name_every_pod_they_cannot_select() {
    let d = Dir::new("nocluster");
    let (journals, _) = shop(&d);
    let out = d.path("out");
    let (code, _, err) =
        run(&["generate", "--journal", &journals[0].to_string_lossy(), "--out", &out.to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("shop/{API}: no --cluster file")) && err.contains("no policy to write"), "{err}");
    assert!(!out.exists());
    // namespace granularity needs no labels
    let (code, _, err) = run(&[
        "generate",
        "--journal",
        &journals[0].to_string_lossy(),
        "--granularity",
        "namespace",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(policies(&out).len(), 2, "shop and kube-system");
}

#[test]
fn only_keeps_the_chosen_connections_and_namespace_the_chosen_namespace() {
    let d = Dir::new("only");
    let all = listed(&d);
    let id = find(&all, API, "db-0", 5432)["id"].to_string();
    let (policies, _) = generate(&d, &["--only", &id]);
    assert_eq!(
        policies.keys().collect::<Vec<_>>(),
        ["data.weavice-statefulset-db.yaml", "shop.weavice-deployment-api.yaml"]
    );
    let api = &policies["shop.weavice-deployment-api.yaml"];
    assert_eq!(api["spec"]["egress"].as_array().unwrap().len(), 1);
    assert!(api["spec"].get("ingress").is_none());
    let (data, _) = generate(&d, &["--namespace", "data"]);
    assert_eq!(data.keys().collect::<Vec<_>>(), ["data.weavice-statefulset-db.yaml"]);
}

#[test]
fn graphs_are_written_as_svg_dot_and_a_self_contained_html_report() {
    let d = Dir::new("graph");
    let (journals, cluster) = shop(&d);
    for ext in ["svg", "dot", "html"] {
        let out = d.path(&format!("g.{ext}"));
        let mut a = args("graph", &journals, &cluster, &[]);
        a.extend(["--out".into(), out.to_string_lossy().into_owned()]);
        run_ok(&a);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("shop/deployment/api") && text.contains("TCP 8080"), "{ext}: {text}");
        match ext {
            "dot" => assert!(
                text.starts_with("digraph flows {")
                    && text.contains("\"shop/deployment/frontend\" -> \"shop/deployment/api\"")
            ),
            "svg" => assert_eq!(text.matches("<g class=\"node\"").count(), 8, "{text}"),
            _ => {
                assert!(
                    !text.contains("http://")
                        || text.matches("http://").all(|_| text.contains("xmlns=\"http://www.w3.org/2000/svg\""))
                );
                assert!(!text.contains("src=") && !text.contains("href=\"http"), "nothing fetched");
                assert!(text.contains("weavice-deployment-api") && text.contains("<table id=\"connections\""));
            }
        }
    }
}

#[test]
fn generated_policies_validate_clean_and_a_removed_rule_reports_the_flows_it_served() {
    let d = Dir::new("validate");
    let (all, out) = generate(&d, &[]);
    let (journals, cluster) = shop(&d);
    let o = out.to_string_lossy().into_owned();
    let a = args("validate", &journals, &cluster, &["--policies", &o, "--format", "json"]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, stdout, err) = run(&a);
    assert_eq!(code, 0, "{stdout}{err}");
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["denied"], json!([]));
    assert_eq!(r["unusedRules"], json!([]), "every generated rule served a flow");
    assert_eq!(r["flowsChecked"], json!(10));

    // api's ingress rule for frontend goes; one policy more selects nothing
    let path = out.join("shop.weavice-deployment-api.yaml");
    let mut api = all["shop.weavice-deployment-api.yaml"].clone();
    let rules = api["spec"]["ingress"].as_array_mut().unwrap();
    let at = rules.iter().position(|r| r["from"][0]["podSelector"]["matchLabels"]["app"] == json!("frontend")).unwrap();
    rules.remove(at);
    std::fs::write(&path, api.to_string()).unwrap();
    std::fs::write(
        out.join("extra.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ghost, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: ghost}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: nobody}}}], ports: [{port: metrics}]}]\n",
    )
    .unwrap();
    let (code, stdout, err) = run(&a);
    assert_eq!(code, 1, "{stdout}{err}");
    let r: Value = serde_json::from_str(&stdout).unwrap();
    let denied = r["denied"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(
        (&denied[0]["from"]["pod"], &denied[0]["to"]["pod"], &denied[0]["port"]),
        (&json!(FRONTEND), &json!(API), &json!(8080))
    );
    assert_eq!((&denied[0]["flows"], &denied[0]["deniedBy"]), (&json!(3), &json!("ingress")));
    let nothing = r["matchingNothing"].to_string();
    assert!(nothing.contains("shop/ghost: spec.podSelector selects no pod"), "{nothing}");
    assert!(nothing.contains("shop/ghost/ingress[0].from[0] matches no pod"), "{nothing}");
    assert!(nothing.contains("\\\"metrics\\\""), "a named port no pod defines: {nothing}");
    let (_, text, _) = run(&a.iter().map(|s| if *s == "json" { "text" } else { s }).collect::<Vec<_>>());
    assert!(text.contains(&format!("DENIED shop/{FRONTEND} (deployment/frontend) -> shop/{API} (deployment/api) TCP 8080 (3 flows, by ingress)")), "{text}");
}

#[test]
fn explain_gives_the_verdict_rule_by_rule() {
    let d = Dir::new("explain");
    let (_, out) = generate(&d, &[]);
    let (_, cluster) = shop(&d);
    let (o, c) = (out.to_string_lossy().into_owned(), cluster.to_string_lossy().into_owned());
    let explain = |from: &str, to: &str, port: &str, extra: &[&str]| {
        let mut a = vec!["explain", "--policies", &o, "--cluster", &c, "--from", from, "--to", to, "--port", port];
        a.extend_from_slice(extra);
        run(&a)
    };
    let (code, stdout, err) = explain(&format!("shop/{FRONTEND}"), "10.22.0.3", "8080", &["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["allowed"], json!(true));
    assert_eq!(v["egress"]["allowedBy"], json!(["shop/weavice-deployment-frontend/egress[0]"]));
    assert_eq!(v["ingress"]["isolated"], json!(true));
    let (code, stdout, _) = explain(&format!("shop/{FRONTEND}"), "data/db-0", "5432", &[]);
    assert_eq!(code, 1, "denied: {stdout}");
    assert!(stdout.starts_with("DENIED") && stdout.contains("no peer matches data/db-0"), "{stdout}");
    let (code, _, err) = explain("shop/nobody", "data/db-0", "5432", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--from shop/nobody: the cluster file does not know this pod"), "{err}");
    let (code, _, err) = explain(&format!("shop/{FRONTEND}"), "data/db-0", "http", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--port http: data/db-0 has no TCP container port of that name"), "{err}");
    let (code, _, err) = explain(&format!("shop/{FRONTEND}"), "203.0.113.5", "443", &["--protocol", "udp"]);
    assert_eq!(code, 1, "{err}");
}
