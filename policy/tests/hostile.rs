//! Input that tried to break the tool (an adversarial review): names that
//! would be paths, workloads labelled apart, file order and copies, torn
//! active files, values no daemon writes, long names, odd --out paths.

mod common;
use common::*;
use serde_json::json;

#[test]
fn a_namespace_that_is_a_path_writes_nothing_outside_out() {
    let d = Dir::new("trav");
    let escape = d.path("ESCAPED");
    let j = pair(&d, "j.jsonl", &escape.to_string_lossy());
    let out = d.path("out");
    let (code, _, err) =
        run(&["generate", "--granularity", "namespace", "--journal", &j, "--out", &out.to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a Kubernetes namespace name"), "{err}");
    let written: Vec<_> = std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(written.iter().all(|n| !n.to_string_lossy().contains("ESCAPED")), "{written:?}");
}

#[test]
fn pods_of_one_deployment_get_its_selector_even_without_their_replicaset() {
    let d = Dir::new("norsdeploy");
    let j = pair(&d, "j.jsonl", "shop");
    // a and b: the Deployment web in the file, their ReplicaSets not; their labels differ
    let pod_item = |name: &str, version: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop",
            "labels": {"app": "web", "version": version, "pod-template-hash": "abc12"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc12", "controller": true}]}, "spec": {}, "status": {}})
    };
    let cluster = d.file(
        "cluster.json",
        &list(vec![
            namespace("shop"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}}),
            pod_item("a", "v1"),
            pod_item("b", "v2"),
        ]),
    );
    let out = d.path("out");
    let (code, _, err) =
        run(&["generate", "--journal", &j, "--cluster", &cluster.to_string_lossy(), "--out", &out.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let all = policies(&out);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all["shop.weavice-deployment-web.yaml"]["spec"]["podSelector"], json!({"matchLabels": {"app": "web"}}));
}

#[test]
fn a_job_index_is_no_selector_and_two_selectors_for_one_name_write_neither() {
    let d = Dir::new("job");
    let j = pair(&d, "j.jsonl", "shop");
    let pod_item = |name: &str, index: &str, extra: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop",
            "labels": {"job-name": "idx", "batch.kubernetes.io/job-completion-index": index, "extra": extra},
            "ownerReferences": [{"kind": "Job", "name": "idx", "controller": true}]}, "spec": {}, "status": {}})
    };
    let cluster =
        d.file("cluster.json", &list(vec![namespace("shop"), pod_item("a", "0", "x"), pod_item("b", "1", "x")]));
    let out = d.path("out");
    let args = |out: &std::path::Path| {
        vec![
            "generate".to_string(),
            "--journal".into(),
            j.clone(),
            "--cluster".into(),
            cluster.to_string_lossy().into_owned(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
        ]
    };
    let a = args(&out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let all = policies(&out);
    assert_eq!(
        all["shop.weavice-job-idx.yaml"]["spec"]["podSelector"],
        json!({"matchLabels": {"extra": "x", "job-name": "idx"}})
    );
    // labelled apart: one name, two selectors
    let cluster2 = list(vec![namespace("shop"), pod_item("a", "0", "x"), pod_item("b", "1", "y")]);
    std::fs::write(&cluster, cluster2.to_string()).unwrap();
    let out2 = d.path("out2");
    let a = args(&out2);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than one selector"), "{err}");
}

#[test]
fn file_order_and_copies_change_nothing() {
    let d = Dir::new("order");
    let f = |event: &str, id: u32| {
        let mut r = flow(
            "n",
            id,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", 1000 + id as u16), to: ("10.22.0.3", 80), via: None },
        );
        r["event"] = json!(event);
        r["time"] = json!(if event == "new" { t(1, 0) } else { t(1, 1) });
        r
    };
    let old = d.journal(
        "n/journal-20261128T100100.000000000Z.jsonl",
        &[
            pod(&t(0, 0), "n", "add", "c1", "shop", "a", &["10.22.0.2"]),
            pod(&t(0, 0), "n", "add", "c2", "shop", "b", &["10.22.0.3"]),
            f("new", 1),
            f("new", 2),
        ],
    );
    let active = d.journal("n/journal.jsonl", &[f("end", 1), f("end", 2)]);
    std::fs::create_dir_all(d.path("copy")).unwrap();
    std::fs::copy(&old, d.path("copy/old.jsonl")).unwrap();
    let count = |args: &[&str]| {
        let mut a = vec!["list", "--output", "json"];
        a.extend_from_slice(args);
        let (code, out, err) = run(&a);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()[0]["flows"].clone()
    };
    let (o, a) = (old.to_string_lossy().into_owned(), active.to_string_lossy().into_owned());
    assert_eq!(count(&["--journal", &o, "--journal", &a]), json!(2));
    assert_eq!(count(&["--journal", &a, "--journal", &o]), json!(2), "the active file named first");
    let copy = d.path("copy/old.jsonl").to_string_lossy().into_owned();
    assert_eq!(count(&["--journal", &o, "--journal", &a, "--journal", &copy]), json!(2), "a copy");
}

#[test]
fn a_torn_active_file_and_values_no_daemon_writes_are_skipped() {
    let d = Dir::new("torn");
    let j = pair(&d, "n/journal-20261128T100100.000000000Z.jsonl", "shop");
    std::fs::write(d.path("n/journal.jsonl"), "{\"v\":1,\"time\":\"2026-11-28T10:0").unwrap();
    let mut bad_time =
        flow("n", 7, &t(2, 0), &t(2, 1), F { proto: "TCP", from: ("10.22.0.2", 7), to: ("10.22.0.3", 81), via: None });
    bad_time["last_seen"] = json!("garbage");
    let port0 =
        flow("n", 8, &t(2, 0), &t(2, 1), F { proto: "TCP", from: ("10.22.0.2", 8), to: ("10.22.0.3", 0), via: None });
    let mut bad_ip =
        flow("n", 9, &t(2, 0), &t(2, 1), F { proto: "UDP", from: ("10.22.0.2", 9), to: ("10.22.0.3", 53), via: None });
    bad_ip["IP"]["destination"] = json!("10.22.0.999");
    let lost = json!({"v": 1, "time": t(3, 0), "kind": "lost", "node": "n", "source": "CONNTRACK_EVENTS", "num_events_lost": u64::MAX});
    d.journal("m/journal.jsonl", &[bad_time, port0, bad_ip, lost.clone(), lost]);
    let (code, out, err) = run(&["list", "--journal", &d.0.to_string_lossy(), "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped 1 lines") && err.contains("skipped 3 lines"), "{err}");
    assert!(err.contains(&format!("{} lost events", u64::MAX)), "saturates: {err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    drop(j);
}

#[test]
fn long_valid_names_fit_a_file_system() {
    let d = Dir::new("long");
    let ns = "n".repeat(63);
    let j = pair(&d, "j.jsonl", &ns);
    let web = "w".repeat(200);
    let mut items = vec![namespace(&ns)];
    for (name, ip) in [("a", "10.22.0.2"), ("b", "10.22.0.3")] {
        items.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": web}},
            "spec": {}, "status": {"podIP": ip}}));
    }
    let cluster = d.file("cluster.json", &list(items));
    let out = d.path("out");
    let (code, _, err) =
        run(&["generate", "--journal", &j, "--cluster", &cluster.to_string_lossy(), "--out", &out.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(policies(&out).len(), 2);
}

#[test]
fn only_ids_are_lists_ids_and_out_is_checked_before_any_work() {
    let d = Dir::new("onlyns");
    let mut lines = vec![
        pod(&t(0, 0), "n", "add", "c1", "aa", "a", &["10.22.0.2"]),
        pod(&t(0, 0), "n", "add", "c2", "zz", "z", &["10.22.0.3"]),
    ];
    lines.push(flow(
        "n",
        1,
        &t(1, 0),
        &t(1, 1),
        F { proto: "TCP", from: ("10.22.0.2", 1), to: ("203.0.113.1", 80), via: None },
    ));
    lines.push(flow(
        "n",
        2,
        &t(1, 0),
        &t(1, 1),
        F { proto: "TCP", from: ("10.22.0.3", 2), to: ("203.0.113.1", 80), via: None },
    ));
    let j = d.journal("j.jsonl", &lines).to_string_lossy().into_owned();
    let out = d.path("out").to_string_lossy().into_owned();
    // zz's connection is id 2, also with --namespace zz
    let (code, _, err) = run(&[
        "generate",
        "--granularity",
        "namespace",
        "--journal",
        &j,
        "--namespace",
        "zz",
        "--only",
        "2",
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "generate",
        "--granularity",
        "namespace",
        "--journal",
        &j,
        "--namespace",
        "zz",
        "--only",
        "1",
        "--out",
        &d.path("o2").to_string_lossy(),
    ]);
    assert_eq!(code, 2, "id 1 is aa's: {err}");
    std::os::unix::fs::symlink(d.path("empty"), d.path("link")).unwrap();
    std::fs::create_dir(d.path("empty")).unwrap();
    for bad in [d.path("link"), d.path("nope/x"), std::path::PathBuf::from(".")] {
        let (code, _, err) =
            run(&["generate", "--granularity", "namespace", "--journal", &j, "--out", &bad.to_string_lossy()]);
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains("--out"), "{err}");
    }
    let (code, _, err) = run(&["graph", "--journal", &j, "--out", &d.path("nope/g.svg").to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn review_findings_stay_fixed() {
    let d = Dir::new("review");
    let j = pair(&d, "j.jsonl", "shop");
    let out = d.path("ns-policies");
    let (code, _, err) =
        run(&["generate", "--granularity", "namespace", "--journal", &j, "--out", &out.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    // without --cluster, namespace-wide policies are still checked
    let (code, stdout, err) =
        run(&["validate", "--journal", &j, "--policies", &out.to_string_lossy(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["flowsChecked"], json!(1));
    std::fs::write(out.join("shop.weavice-namespace.yaml"), "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n").unwrap();
    let (code, stdout, _) = run(&["validate", "--journal", &j, "--policies", &out.to_string_lossy()]);
    assert_eq!(code, 1, "{stdout}");
    // no policy at all is bad input
    std::fs::create_dir(d.path("empty")).unwrap();
    let (code, _, err) = run(&["validate", "--journal", &j, "--policies", &d.path("empty").to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no NetworkPolicy in it"), "{err}");

    // a gone pod of a Deployment selecting by expressions; a finished pod on a reused address;
    // a CronJob's run selected without its run's name
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}});
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc12", "namespace": "shop",
        "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}, "spec": {"selector": {"matchLabels": {"app": "web"}}}});
    let finished = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "old", "namespace": "shop", "labels": {"app": "old"}},
        "spec": {}, "status": {"phase": "Succeeded", "podIP": "10.22.0.9"}});
    let cron = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "report-29100000-abcde", "namespace": "shop",
        "labels": {"job-name": "report-29100000", "app": "report", "batch.kubernetes.io/job-name": "report-29100000"},
        "ownerReferences": [{"kind": "Job", "name": "report-29100000", "controller": true}]}, "spec": {}, "status": {"podIP": "10.22.0.7"}});
    let cluster = d.file("cluster.json", &list(vec![namespace("shop"), deployment, rs, finished, cron]));
    let lines = [
        pod(&t(0, 0), "n", "add", "c1", "shop", "web-abc12-zzzzz", &["10.22.0.2"]),
        pod(&t(0, 0), "n", "add", "c2", "shop", "report-29100000-abcde", &["10.22.0.7"]),
        flow(
            "n",
            1,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.7", 1000), to: ("10.22.0.2", 80), via: None },
        ),
        // 10.22.0.9: no journal knows it; the finished pod's address is no pod now
        flow(
            "n",
            2,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", 1001), to: ("10.22.0.9", 443), via: None },
        ),
    ];
    let j2 = d.journal("j2.jsonl", &lines).to_string_lossy().into_owned();
    let out2 = d.path("wl");
    let c = cluster.to_string_lossy().into_owned();
    let (code, _, err) = run(&["generate", "--journal", &j2, "--cluster", &c, "--out", &out2.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let all = policies(&out2);
    assert_eq!(
        all["shop.weavice-cronjob-report.yaml"]["spec"]["podSelector"],
        json!({"matchLabels": {"app": "report"}})
    );
    let web = &all["shop.weavice-deployment-web.yaml"];
    assert_eq!(web["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"], json!("10.22.0.9/32"), "{web:#}");

    // --since: a pod gone before the window gets no policy
    let gone = [
        pod(&t(0, 0), "n", "add", "c1", "old", "a", &["10.22.0.2"]),
        pod(&t(2, 0), "n", "del", "c1", "old", "a", &["10.22.0.2"]),
        pod(&t(0, 0), "n", "add", "c2", "shop", "b", &["10.22.0.3"]),
    ];
    let j3 = d.journal("j3.jsonl", &gone).to_string_lossy().into_owned();
    let out3 = d.path("since");
    let (code, _, err) = run(&[
        "generate",
        "--granularity",
        "namespace",
        "--journal",
        &j3,
        "--since",
        &t(5, 0),
        "--out",
        &out3.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(policies(&out3).keys().collect::<Vec<_>>(), ["shop.weavice-namespace.yaml"]);
}
