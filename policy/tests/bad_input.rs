//! Bad input: a clear message, exit 2, no output left behind. A corrupt
//! journal is read around its bad lines, which are counted.

mod common;
use common::*;

fn expect_bad(args: &[&str], says: &str) {
    let (code, out, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn bad_input_exits_2_with_a_message_that_says_what_to_fix() {
    let d = Dir::new("bad");
    let j = pair(&d, "j/journal.jsonl", "shop");
    let out = d.path("out").to_string_lossy().into_owned();
    expect_bad(&["list", "--journal", "/nonexistent/journal"], "--journal /nonexistent/journal");
    std::fs::write(d.path("garbage.jsonl"), "hello\nworld\n").unwrap();
    expect_bad(&["list", "--journal", &d.path("garbage.jsonl").to_string_lossy()], "not a weavice journal");
    std::fs::write(d.path("cluster.json"), r#"{"kind": "Pod", "metadata": {}}"#).unwrap();
    expect_bad(
        &["list", "--journal", &j, "--cluster", &d.path("cluster.json").to_string_lossy()],
        "expected the JSON of `kubectl get",
    );
    expect_bad(
        &["list", "--journal", &j, "--since", "2026-11-28T11:00:00Z", "--until", "2026-11-28T10:00:00Z"],
        "is after --until",
    );
    expect_bad(&["list", "--journal", &j, "--since", "yesterday"], "--since \"yesterday\"");
    expect_bad(
        &["generate", "--journal", &j, "--granularity", "namespace", "--only", "9", "--out", &out],
        "--only 9: no such connection",
    );
    assert!(!d.path("out").exists(), "no partial output directory");
    std::fs::create_dir(d.path("full")).unwrap();
    std::fs::write(d.path("full/keep.yaml"), "mine").unwrap();
    expect_bad(
        &["generate", "--journal", &j, "--granularity", "namespace", "--out", &d.path("full").to_string_lossy()],
        "not empty",
    );
    assert_eq!(std::fs::read_to_string(d.path("full/keep.yaml")).unwrap(), "mine");
    expect_bad(&["graph", "--journal", &j, "--out", &d.path("g.png").to_string_lossy()], ".svg, .dot or .html");
    let (code, _, _) = run(&["list"]);
    assert_eq!(code, 2, "a missing --journal is a usage error");
    let leftovers: Vec<_> = std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{leftovers:?}");
}

#[test]
fn a_corrupt_journal_is_read_around_its_bad_lines_which_are_counted() {
    let d = Dir::new("corrupt");
    let j = pair(&d, "j/journal.jsonl", "shop");
    let mut text = std::fs::read_to_string(&j).unwrap();
    text.insert_str(0, "{\"v\":1,\"time\":\"2026-11-28T10:00:00.000000000Z\",\"kind\":\"flow\",\"torn\n\0\0garbage\n");
    text.push_str("{\"kind\":\"flow\",\"v\":1}\n");
    std::fs::write(&j, text).unwrap();
    let (code, out, err) = run(&["list", "--journal", &j, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipped 3 lines"), "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["to"]["pod"], "b");
}
