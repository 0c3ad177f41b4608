//! Reading journals: directories of many nodes' journals are merged, and a
//! connection is counted once whatever records it has.

mod common;
use common::*;

#[test]
fn a_directory_of_many_nodes_journals_is_read_whole() {
    let d = Dir::new("dirs");
    pair(&d, "j/journal.jsonl", "shop");
    d.journal(
        "k/state/journal/journal-20261128T100000.000000000Z.jsonl",
        &[pod(&t(0, 0), "m", "add", "x", "other", "c", &["10.30.0.2"])],
    );
    d.journal(
        "k/state/journal/journal.jsonl",
        &[flow(
            "m",
            1,
            &t(2, 0),
            &t(2, 1),
            F { proto: "UDP", from: ("10.30.0.2", 1000), to: ("10.22.0.3", 53), via: None },
        )],
    );
    let (code, out, err) = run(&["list", "--journal", &d.0.to_string_lossy(), "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let udp = listed.as_array().unwrap().iter().find(|c| c["protocol"] == "UDP").unwrap();
    assert_eq!(
        (&udp["from"]["pod"], &udp["to"]["pod"]),
        (&serde_json::json!("c"), &serde_json::json!("b")),
        "joined across nodes"
    );
}

#[test]
fn a_connection_is_counted_once_whatever_records_it_has() {
    let d = Dir::new("count");
    let f = |id: u32, event: &str, sport: u16| {
        let mut r = flow(
            "n",
            id,
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", sport), to: ("10.22.0.3", 80), via: None },
        );
        r["event"] = serde_json::json!(event);
        r
    };
    let lines = [
        pod(&t(0, 0), "n", "add", "c1", "shop", "a", &["10.22.0.2"]),
        pod(&t(0, 0), "n", "add", "c2", "shop", "b", &["10.22.0.3"]),
        // made, listed open after lost events, ended, then listed again by a restarted daemon
        f(1, "new", 1000),
        f(1, "open", 1000),
        f(1, "end", 1000),
        f(1, "end", 1000),
        // open at the daemon's start, then ended
        f(2, "open", 1001),
        f(2, "end", 1001),
        // only its end
        f(3, "end", 1002),
        // a conntrack id reused for another connection
        f(1, "new", 1003),
    ];
    let j = d.journal("j.jsonl", &lines);
    let (code, out, err) = run(&["list", "--journal", &j.to_string_lossy(), "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["flows"], 4, "{listed:#}");
}

#[test]
fn a_reader_that_goes_away_is_no_failure() {
    let d = Dir::new("pipe");
    let mut lines = vec![pod(&t(0, 0), "n", "add", "c1", "shop", "a", &["10.22.0.2"])];
    for port in 1..3000 {
        lines.push(flow(
            "n",
            port.into(),
            &t(1, 0),
            &t(1, 1),
            F { proto: "TCP", from: ("10.22.0.2", 1000), to: ("203.0.113.9", port), via: None },
        ));
    }
    let j = d.journal("j.jsonl", &lines);
    let mut child = std::process::Command::new(bin())
        .args(["list", "--journal", &j.to_string_lossy(), "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -c 10`
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
