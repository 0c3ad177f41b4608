//! The node journal's pod records (issue 10, first slice): the plugin
//! appends one at every ADD and DEL, with the pod's names and addresses;
//! parallel plugins write whole lines; a journal that cannot be written
//! never fails the ADD and is counted in the next record.

use serde_json::{json, Value};
use std::io::BufReader;
use weavice_tests::*;

fn records(node: &Node) -> (Vec<Value>, usize) {
    let path = node.dir.path("state/journal/journal.jsonl");
    let file = std::fs::File::open(&path).expect("the journal");
    let read: journal::read::Read<Value> = journal::read::records(BufReader::new(file), "pod");
    (read.records, read.skipped)
}

#[test]
fn add_and_del_append_pod_records_with_names_and_addresses() {
    if !require_root() {
        return;
    }
    let node = Node::new("jr");
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
    let pod = Netns::new("jrp");
    let args = [("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=frontend-0;K8S_POD_UID=u-1")];
    assert!(node.cnitool("add", "podnet", &pod, &args).status.success());
    assert!(node.cnitool("del", "podnet", &pod, &args).status.success());
    let (recs, skipped) = records(&node);
    assert_eq!((recs.len(), skipped), (2, 0), "{recs:#?}");
    let (add, del) = (&recs[0], &recs[1]);
    assert_eq!((&add["event"], &del["event"]), (&json!("add"), &json!("del")));
    assert_eq!(add["pod"], json!({"namespace": "shop", "pod_name": "frontend-0", "uid": "u-1"}));
    assert_eq!(add["v"], json!(1));
    assert_eq!(add["ips"].as_array().unwrap().len(), 2, "IPv4 and IPv6: {add}");
    assert_eq!(add["ips"], del["ips"], "DEL says which addresses it gives back");
    assert!(add["host_veth"].as_str().unwrap().starts_with("wv") && add["mac"].as_str().unwrap().len() == 17);
    let time = add["time"].as_str().unwrap();
    assert!(time.len() == 30 && time.ends_with('Z') && time < del["time"].as_str().unwrap(), "{time}");
    let mode = std::fs::metadata(node.dir.path("state/journal/journal.jsonl")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600, "root only");
}

#[test]
fn fifty_parallel_adds_write_fifty_whole_records() {
    if !require_root() {
        return;
    }
    let node = Node::new("jrp");
    let conf = node.conf(
        "1.0.0",
        "podnet",
        json!({"ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"),
        "ranges": [[{"subnet": "10.88.0.0/24"}]]}}),
    );
    let pods: Vec<Netns> = (0..50).map(|_| Netns::new("jrq")).collect();
    std::thread::scope(|scope| {
        for (i, pod) in pods.iter().enumerate() {
            let (node, conf) = (&node, &conf);
            scope.spawn(move || {
                let id = format!("par{i}");
                let r = node.cni_with_args(
                    "ADD",
                    conf,
                    &id,
                    &pod.path(),
                    "eth0",
                    &format!("K8S_POD_NAMESPACE=load;K8S_POD_NAME=p-{i}"),
                );
                assert!(r.ok, "{}", r.stdout);
            });
        }
    });
    let (recs, skipped) = records(&node);
    assert_eq!((recs.len(), skipped), (50, 0));
    let mut names: Vec<&str> = recs.iter().map(|r| r["pod"]["pod_name"].as_str().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50, "one record per pod");
}

#[test]
fn a_journal_that_cannot_be_written_never_fails_the_add_and_is_counted() {
    if !require_root() {
        return;
    }
    let node = Node::new("jrf");
    let conf = node.conf("1.0.0", "podnet", json!({}));
    // the journal's file is a directory: every append fails
    std::fs::create_dir_all(node.dir.path("state/journal/journal.jsonl")).unwrap();
    let (a, b) = (Netns::new("jrfa"), Netns::new("jrfb"));
    let r = node.cni("ADD", &conf, "first", &a.path(), "eth0");
    assert!(r.ok, "the ADD succeeds: {}", r.stdout);
    assert!(node.log().contains("not written"), "{}", node.log());
    std::fs::remove_dir(node.dir.path("state/journal/journal.jsonl")).unwrap();
    let r = node.cni("ADD", &conf, "second", &b.path(), "eth0");
    assert!(r.ok, "{}", r.stdout);
    let (recs, _) = records(&node);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["lost_before"], json!(1), "the lost record is counted: {}", recs[0]);
}
