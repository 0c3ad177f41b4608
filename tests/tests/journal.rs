//! The node journal (issue 10). Pod records: the plugin appends one at
//! every ADD and DEL, with the pod's names and addresses; parallel plugins
//! write whole lines; a journal that cannot be written never fails the ADD
//! and is counted in the next record. Flow records: `weavice-agent run`
//! records pods' connections from conntrack events, with both tuples, both
//! pods and counters; SIGTERM writes the open ones; kill -9 and a restart
//! lose nothing written; rotation keeps every record once.

use serde_json::{json, Value};
use std::io::BufReader;
use std::process::Command;
use weavice_tests::*;

fn records(node: &Node) -> (Vec<Value>, usize) {
    records_of(node, "pod")
}

/// The records of `kind` across the journal's files, and the lines skipped.
fn records_of(node: &Node, kind: &str) -> (Vec<Value>, usize) {
    let (mut all, mut skipped) = (Vec::new(), 0);
    for path in journal::rotate::files(std::path::Path::new(&node.dir.path("state/journal"))) {
        // rotated away since the listing (a daemon still writes): polled again
        let Ok(file) = std::fs::File::open(&path) else { continue };
        let read: journal::read::Read<Value> = journal::read::records(BufReader::new(file), kind);
        all.extend(read.records);
        skipped += read.skipped;
    }
    (all, skipped)
}

/// A node with the conflist `podnet`: weavice with `extra` config.
fn node_with_podnet(tag: &str, extra: Value) -> Node {
    let node = Node::new(tag);
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", extra)]);
    node
}

/// The flow records of connections to `ip` port `port` (after any DNAT).
fn flows_to<'a>(flows: &'a [Value], ip: &str, port: u16) -> Vec<&'a Value> {
    flows
        .iter()
        .filter(|f| {
            f["IP"]["destination"] == json!(ip)
                && f["l4"].as_object().unwrap().values().any(|l| l["destination_port"] == json!(port))
        })
        .collect()
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

#[test]
fn the_daemon_records_flows_between_pods_to_a_service_and_outside() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jfl", json!({}));
    let (a, b, outside) = (Netns::new("jfla"), Netns::new("jflb"), Netns::new("jflo"));
    let a_ip = node.add_k8s_pod("podnet", &a, "shop", "frontend-1");
    let b_ip = node.add_k8s_pod("podnet", &b, "shop", "api-2");
    attach_outside(&node.ns, &outside);
    // a Service address DNATed to api-2, as kube-proxy's nftables mode does
    service_dnat(&node, &b_ip);
    let daemon = Daemon::start(&node, &[]);
    serve_tcp(&b, "0.0.0.0:8080", "api");
    serve_tcp(&outside, "0.0.0.0:443", "out");
    assert_eq!(tcp_fetch(&a, &format!("{b_ip}:8080")), "api");
    assert_eq!(tcp_fetch(&a, "10.96.0.10:80"), "api", "through the Service");
    assert_eq!(tcp_fetch(&a, "203.0.113.2:443"), "out");
    let to: std::net::SocketAddr = format!("{b_ip}:5353").parse().unwrap();
    assert!(udp_source_seen(&a, &b, to).is_some());
    // a connection still open when the daemon stops, with data both ways
    let listener = b.run(|| std::net::TcpListener::bind("0.0.0.0:9000").unwrap());
    let mut held = a.run({
        let to = format!("{b_ip}:9000");
        move || std::net::TcpStream::connect(to).unwrap()
    });
    let accepted = listener.accept().unwrap();
    std::io::Write::write_all(&mut held, b"hello").unwrap();
    // closed TCP connections end at their close, not two minutes later
    let ends = || records_of(&node, "flow").0.iter().filter(|f| f["event"] == json!("end")).count();
    assert!(eventually(|| ends() >= 3), "the closed connections end: {:#?}", records_of(&node, "flow").0);
    assert!(daemon.stop().success(), "a clean exit on SIGTERM");
    drop((held, accepted));

    let log = std::fs::read_to_string(node.dir.path("agent.log")).unwrap();
    assert!(log.contains("ready: subscribed to conntrack events"), "{log}");
    let (flows, skipped) = records_of(&node, "flow");
    assert_eq!(skipped, 0);
    let frontend = json!({"namespace": "shop", "pod_name": "frontend-1"});
    let api = json!({"namespace": "shop", "pod_name": "api-2"});

    // pod to pod: made, then ended with counters both ways and its TCP state
    let direct: Vec<_> = flows_to(&flows, &b_ip, 8080).into_iter().filter(|f| f.get("via").is_none()).collect();
    let ended = direct.iter().find(|f| f["event"] == json!("end")).expect("an end record");
    assert!(
        direct.iter().any(|f| f["event"] == json!("new") && f["conntrack_id"] == ended["conntrack_id"]),
        "{direct:#?}"
    );
    assert_eq!((&ended["source"], &ended["destination"]), (&frontend, &api), "{ended}");
    assert_eq!(ended["IP"], json!({"source": a_ip, "destination": b_ip, "ipVersion": "IPv4"}));
    assert_eq!(ended["original"]["destination"], json!(b_ip));
    assert_eq!(ended["reply"]["source"], json!(b_ip));
    assert!(ended["packets"].as_u64().unwrap() >= 3 && ended["reply_packets"].as_u64().unwrap() >= 3, "{ended}");
    assert!(ended["bytes"].as_u64().unwrap() > 0 && ended["reply_bytes"].as_u64().unwrap() >= 3 + 60);
    assert!(ended["tcp_state"].is_string() && ended["first_seen"].as_str() <= ended["last_seen"].as_str(), "{ended}");

    // through the Service: the endpoint and target port, and what it was made to
    let service = flows_to(&flows, &b_ip, 8080).into_iter().find(|f| f.get("via").is_some()).expect("the Service flow");
    assert_eq!(service["via"], json!({"ip": "10.96.0.10", "port": 80}), "{service}");
    assert_eq!(service["original"]["destination"], json!("10.96.0.10"));
    assert_eq!(service["original"]["destination_port"], json!(80));
    assert_eq!(service["reply"]["source_port"], json!(8080));
    assert_eq!((&service["source"], &service["destination"]), (&frontend, &api));

    // outside: no pod there; the reply goes to the node's masquerading address
    let out = flows_to(&flows, "203.0.113.2", 443);
    let out = out.iter().find(|f| f["event"] == json!("end")).expect("the outside flow ended");
    assert_eq!(out["source"], frontend);
    assert!(out.get("destination").is_none(), "{out}");
    assert_eq!(out["reply"]["destination"], json!("203.0.113.1"), "masqueraded: {out}");

    // UDP, open when the daemon stopped: written with its counters so far
    let udp = flows_to(&flows, &b_ip, 5353);
    assert!(
        udp.iter().any(|f| f["l4"]["UDP"]["destination_port"] == json!(5353) && f["event"] == json!("new")),
        "{udp:#?}"
    );
    let open_udp = udp.iter().find(|f| f["event"] == json!("open")).expect("written at the stop");
    assert_eq!(open_udp["packets"], json!(1));

    // the connection held open over the stop: an open record, counters so far
    let held = flows_to(&flows, &b_ip, 9000);
    let held = held.iter().find(|f| f["event"] == json!("open")).expect("the held connection written at the stop");
    assert_eq!(held["tcp_state"], json!("ESTABLISHED"));
    assert!(held["packets"].as_u64().unwrap() >= 3 && held["bytes"].as_u64().unwrap() >= 3 * 52 + 5, "{held}");
}

/// Connects from `from` to `to` and closes after the server's answer.
fn connect_and_close(from: &Netns, to: String) {
    assert!(!tcp_fetch(from, &to).is_empty(), "{to} answers");
}

/// The journal's files, concatenated.
fn journal_bytes(node: &Node) -> Vec<u8> {
    journal::rotate::files(std::path::Path::new(&node.dir.path("state/journal")))
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

#[test]
fn kill_9_and_a_restart_lose_nothing_written_and_a_torn_line_is_skipped() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jfk", json!({}));
    let (a, b) = (Netns::new("jfka"), Netns::new("jfkb"));
    node.add_k8s_pod("podnet", &a, "shop", "frontend-1");
    let b_ip = node.add_k8s_pod("podnet", &b, "shop", "api-2");
    serve_tcp(&b, "0.0.0.0:8080", "api");
    let daemon = Daemon::start(&node, &[]);
    connect_and_close(&a, format!("{b_ip}:8080"));
    let ended = |n: usize| {
        let (flows, _) = records_of(&node, "flow");
        flows_to(&flows, &b_ip, 8080).iter().filter(|f| f["event"] == json!("end")).count() >= n
    };
    assert!(eventually(|| ended(1)), "{:#?}", records_of(&node, "flow"));
    let before = journal_bytes(&node);
    drop(daemon); // kill -9
                  // a crash of some writer mid-line, and garbage
    let active = node.dir.path("state/journal/journal.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&active).unwrap();
    std::io::Write::write_all(&mut f, b"not a record\n{\"v\":1,\"time\":\"2026-11-28T").unwrap();
    drop(f);

    let daemon = Daemon::start(&node, &[]);
    connect_and_close(&a, format!("{b_ip}:8080"));
    assert!(eventually(|| ended(2)), "{:#?}", records_of(&node, "flow"));
    assert!(daemon.stop().success());
    let after = journal_bytes(&node);
    assert!(after.starts_with(&before), "what was written before the kill is still there, unchanged");
    let (flows, skipped) = records_of(&node, "flow");
    assert_eq!(skipped, 2, "the garbage line and the torn one, skipped and counted");
    let to_b = flows_to(&flows, &b_ip, 8080);
    // a connection is its conntrack_id and first_seen; the restart's listing
    // may write the first one's end again (it was in TIME_WAIT): the same
    let ends: std::collections::BTreeSet<(u64, &str)> = to_b
        .iter()
        .filter(|f| f["event"] == json!("end"))
        .map(|f| (f["conntrack_id"].as_u64().unwrap(), f["first_seen"].as_str().unwrap()))
        .collect();
    assert_eq!(ends.len(), 2, "both connections ended: {to_b:#?}");
    let (pods, _) = records(&node);
    assert_eq!(pods.len(), 2, "the pod records are still read");
}

#[test]
fn rotation_under_a_small_limit_keeps_every_record_once() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jfr", json!({"journalMaxBytes": 4096, "journalMaxFiles": 1000}));
    let b = Netns::new("jfrb");
    let b_ip = node.add_k8s_pod("podnet", &b, "shop", "api-2");
    serve_tcp(&b, "0.0.0.0:8080", "api");
    let daemon = Daemon::start(&node, &["--journal-max-bytes", "4096", "--journal-max-files", "1000"]);
    let clients: Vec<Netns> = (0..20).map(|_| Netns::new("jfrc")).collect();
    // the plugin's and the daemon's appends and rotations, at once
    std::thread::scope(|scope| {
        for (i, pod) in clients.iter().enumerate() {
            let (node, b_ip) = (&node, &b_ip);
            scope.spawn(move || {
                node.add_k8s_pod("podnet", pod, "shop", &format!("client-{i}"));
                for _ in 0..5 {
                    connect_and_close(pod, format!("{b_ip}:8080"));
                }
            });
        }
    });
    let all_ended = || {
        flows_to(&records_of(&node, "flow").0, &b_ip, 8080).iter().filter(|f| f["event"] == json!("end")).count() >= 100
    };
    assert!(eventually(all_ended), "{} ended", flows_to(&records_of(&node, "flow").0, &b_ip, 8080).len());
    assert!(daemon.stop().success());
    let files = journal::rotate::files(std::path::Path::new(&node.dir.path("state/journal")));
    assert!(files.len() > 10, "rotated: {} files", files.len());
    let (pods, skipped) = records(&node);
    assert_eq!(skipped, 0);
    let mut names: Vec<&str> = pods.iter().map(|r| r["pod"]["pod_name"].as_str().unwrap()).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!((n, names.len()), (21, 21), "every pod record once");
    let (flows, skipped) = records_of(&node, "flow");
    assert_eq!(skipped, 0);
    for event in ["new", "end"] {
        let of_event: Vec<_> =
            flows_to(&flows, &b_ip, 8080).into_iter().filter(|f| f["event"] == json!(event)).collect();
        let ids: std::collections::BTreeSet<_> = of_event.iter().map(|f| f["conntrack_id"].as_u64().unwrap()).collect();
        assert_eq!((of_event.len(), ids.len()), (100, 100), "every connection's {event} record once");
        for f in flows_to(&flows, &b_ip, 8080) {
            assert!(f["source"]["pod_name"].as_str().unwrap().starts_with("client-"), "joined across files: {f}");
        }
    }
}

#[test]
fn journal_tail_prints_one_line_per_record_and_counts_what_it_skips() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jft", json!({}));
    let (a, b) = (Netns::new("jfta"), Netns::new("jftb"));
    node.add_k8s_pod("podnet", &a, "shop", "frontend-1");
    let b_ip = node.add_k8s_pod("podnet", &b, "shop", "api-2");
    service_dnat(&node, &b_ip);
    serve_tcp(&b, "0.0.0.0:8080", "api");
    let daemon = Daemon::start(&node, &[]);
    connect_and_close(&a, "10.96.0.10:80".into());
    let ended = || records_of(&node, "flow").0.iter().any(|f| f["event"] == json!("end"));
    assert!(eventually(ended));
    assert!(daemon.stop().success());
    let active = node.dir.path("state/journal/journal.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&active).unwrap();
    std::io::Write::write_all(&mut f, b"garbage\n").unwrap();
    drop(f);
    let tail = |output: &str| {
        let out = Command::new(bin("weavice-agent"))
            .args(["journal", "tail", "--state-dir", &node.dir.path("state"), "--output", output])
            .output()
            .unwrap();
        assert!(out.status.success());
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (text, stderr) = tail("text");
    assert!(stderr.contains("1 line(s)") && stderr.contains("skipped"), "{stderr}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains(" pod add shop/frontend-1 10.88.0."), "{text}");
    let end = lines.iter().find(|l| l.contains(" end ")).expect("an end line");
    let expected = "end shop/frontend-1 -> shop/api-2 TCP 8080 (via 10.96.0.10:80) ";
    assert!(end.contains(expected) && end.contains(" pkts "), "{end}");
    let (json_out, _) = tail("json");
    assert_eq!(json_out.lines().count(), lines.len(), "the same records");
    for l in json_out.lines() {
        serde_json::from_str::<Value>(l).expect("each a JSON record");
    }
}

#[test]
fn events_the_kernel_drops_are_counted_and_open_connections_found_again() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jfd", json!({}));
    let (a, b) = (Netns::new("jfda"), Netns::new("jfdb"));
    node.add_k8s_pod("podnet", &a, "shop", "frontend-1");
    let b_ip = node.add_k8s_pod("podnet", &b, "shop", "api-2");
    serve_tcp(&b, "0.0.0.0:8080", "api");
    let listener = b.run(|| std::net::TcpListener::bind("0.0.0.0:9000").unwrap());
    let daemon = Daemon::start(&node, &[]);
    // the daemon stops reading; the kernel fills its 8 MiB and drops the rest
    daemon.signal(libc::SIGSTOP);
    const MADE: usize = 5000;
    let to = format!("{b_ip}:8080");
    a.run(move || {
        for _ in 0..MADE {
            let mut s = std::net::TcpStream::connect(&to).unwrap();
            std::io::Read::read_to_end(&mut s, &mut Vec::new()).unwrap();
        }
    });
    // made and still open while its announcement may have been dropped
    let held = a.run({
        let to = format!("{b_ip}:9000");
        move || std::net::TcpStream::connect(to).unwrap()
    });
    let accepted = listener.accept().unwrap();
    daemon.signal(libc::SIGCONT);
    let lost = || records_of(&node, "lost").0.iter().map(|r| r["num_events_lost"].as_u64().unwrap()).sum::<u64>();
    assert!(eventually(|| lost() > 0), "the drops are recorded as lost");
    assert!(daemon.stop().success());
    drop((held, accepted));
    let (flows, skipped) = records_of(&node, "flow");
    assert_eq!(skipped, 0);
    let (lost_records, _) = records_of(&node, "lost");
    assert!(lost_records.iter().all(|r| r["source"] == json!("CONNTRACK_EVENTS")), "{lost_records:#?}");
    let recorded = flows_to(&flows, &b_ip, 8080).iter().filter(|f| f["event"] == json!("new")).count();
    assert!(recorded < MADE, "some announcements were dropped ({recorded} of {MADE} recorded)");
    assert!((MADE - recorded) as u64 <= lost(), "every miss counted: {recorded} recorded, {} lost", lost());
    let held = flows_to(&flows, &b_ip, 9000);
    assert!(!held.is_empty(), "the connection open across the drop is found by the listing that follows");
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_and_when_it_stops() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jfn", json!({}));
    node.add_k8s_pod("podnet", &Netns::new("jfna"), "shop", "frontend-1");
    let path = node.dir.path("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let daemon = Daemon::start_with_env(&node, &[], &[("NOTIFY_SOCKET", &path)]);
    let mut buf = [0u8; 64];
    let n = systemd.recv(&mut buf).expect("READY=1");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(daemon.stop().success());
    let n = systemd.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn an_address_reused_at_once_is_joined_to_the_pod_holding_it_then() {
    if !require_root() {
        return;
    }
    // a /29: after the server and three fillers, every client gets the one address left
    let node = Node::new("jfu");
    let ipam = json!({"ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"),
        "ranges": [[{"subnet": "10.66.0.0/29"}]]}});
    node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", ipam)]);
    let srv = Netns::new("jfus");
    let srv_ip = node.add_k8s_pod("podnet", &srv, "shop", "srv");
    let fillers: Vec<Netns> = (0..3).map(|_| Netns::new("jfuf")).collect();
    for (i, f) in fillers.iter().enumerate() {
        node.add_k8s_pod("podnet", f, "shop", &format!("filler-{i}"));
    }
    serve_tcp(&srv, "0.0.0.0:8080", "srv");
    let daemon = Daemon::start(&node, &[]);
    let mut reused = Vec::new();
    for i in 0..4 {
        let c = Netns::new("jfuc");
        let name = format!("client-{i}");
        reused.push(node.add_k8s_pod("podnet", &c, "shop", &name));
        connect_and_close(&c, format!("{srv_ip}:8080"));
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={name}");
        assert!(node.cnitool("del", "podnet", &c, &[("CNI_ARGS", &args)]).status.success());
    }
    reused.dedup();
    assert_eq!(reused.len(), 1, "one address, reused by every client");
    let ended = || {
        flows_to(&records_of(&node, "flow").0, &srv_ip, 8080).iter().filter(|f| f["event"] == json!("end")).count() >= 4
    };
    assert!(eventually(ended));
    assert!(daemon.stop().success());
    let (flows, _) = records_of(&node, "flow");
    for event in ["new", "end"] {
        let names: Vec<&str> = flows_to(&flows, &srv_ip, 8080)
            .iter()
            .filter(|f| f["event"] == json!(event))
            .map(|f| f["source"]["pod_name"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(names, ["client-0", "client-1", "client-2", "client-3"], "{event} records");
    }
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    if !require_root() {
        return;
    }
    let node = node_with_podnet("jf2", json!({}));
    node.add_k8s_pod("podnet", &Netns::new("jf2a"), "shop", "frontend-1");
    let daemon = Daemon::start(&node, &[]);
    let second = Command::new("ip")
        .args(["netns", "exec", &node.ns.name, &bin("weavice-agent"), "run", "--state-dir", &node.dir.path("state")])
        .args(["--log-file", &node.dir.path("agent2.log")])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another weavice-agent run holds"), "{stderr}");
    assert!(daemon.stop().success(), "the first one runs on");
}
