//! The node library against the kernel, as root, each test in namespaces of
//! its own: routes in any table, ip rules, and namespace work that never
//! moves the calling thread.

use datapath::netlink::RouteSocket;
use datapath::netns::NetNs;
use datapath::route::{Route, RouteFilter};
use datapath::rule::Rule;
use std::os::unix::fs::MetadataExt;
use weavice_tests::{require_root, Netns};

fn netns_inode(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// A namespace with a link d0 holding 10.250.1.1/30 and fd50::1/64 (a veth:
/// this kernel has no dummy links).
fn with_link() -> Netns {
    let ns = Netns::new("dp");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["link", "set", "d1", "up"]);
    ns.ip(&["addr", "add", "10.250.1.1/30", "dev", "d0"]);
    ns.ip(&["addr", "add", "fd50::1/64", "dev", "d0", "nodad"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns
}

fn socket_in(ns: &Netns) -> RouteSocket {
    NetNs::open(&ns.path()).unwrap().run(RouteSocket::open).unwrap().unwrap()
}

#[test]
fn work_in_a_namespace_runs_there_and_leaves_the_caller_where_it_was() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("dpns");
    let before = netns_inode("/proc/thread-self/ns/net");
    let inside = NetNs::open(&ns.path()).unwrap().run(|| netns_inode("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(inside, netns_inode(&ns.path()));
    assert_ne!(inside, before);
    assert_eq!(netns_inode("/proc/thread-self/ns/net"), before, "the calling thread did not move");
    let e = NetNs::open("/proc/self/status").unwrap().run(|| ()).unwrap_err().to_string();
    assert!(e.contains("is not a network namespace"), "{e}");
}

#[test]
fn routes_go_into_any_table_and_come_out_again() {
    if !require_root() {
        return;
    }
    let ns = with_link();
    let mut nl = socket_in(&ns);
    let d0 = nl.link().get("d0").unwrap().unwrap().index;
    let v4 = |s: &str| s.parse().unwrap();
    let hop = Route::via(v4("0.0.0.0/0"), "10.250.1.2".parse().unwrap()).dev(d0).in_table(201);
    let closed = Route::blackhole(v4("10.22.0.0/16")).in_table(202);
    let v6 = Route::via("::/0".parse().unwrap(), "fd50::2".parse().unwrap()).dev(d0).in_table(201);
    for r in [&hop, &closed, &v6] {
        nl.route().add(r).unwrap();
        nl.route().add(r).unwrap(); // again: already there is fine
    }
    assert_eq!(ns.ip(&["route", "show", "table", "201"]).trim(), "default via 10.250.1.2 dev d0 proto static");
    assert_eq!(ns.ip(&["route", "show", "table", "202"]).trim(), "blackhole 10.22.0.0/16 proto static");
    let shown6 = ns.ip(&["-6", "route", "show", "table", "201"]);
    assert!(shown6.starts_with("default via fd50::2 dev d0 proto static"), "{shown6}");
    assert_eq!(nl.route().list(RouteFilter { v4: true, table: 201, oif: None }).unwrap(), vec![hop.clone()]);
    assert_eq!(nl.route().list(RouteFilter { v4: true, table: 202, oif: None }).unwrap(), vec![closed.clone()]);
    assert!(nl.route().list(RouteFilter { v4: true, table: 201, oif: Some(d0 + 1) }).unwrap().is_empty());
    for r in [&hop, &closed, &v6] {
        nl.route().delete(r).unwrap();
        nl.route().delete(r).unwrap(); // gone already is fine
    }
    assert_eq!(ns.ip(&["route", "show", "table", "201"]).trim(), "");
    assert_eq!(ns.ip(&["-6", "route", "show", "table", "201"]).trim(), "");
}

#[test]
fn rules_steer_by_mark_and_incoming_interface() {
    if !require_root() {
        return;
    }
    let ns = with_link();
    let mut nl = socket_in(&ns);
    let rule =
        Rule { v4: true, priority: 1000, iif: Some("d0".into()), fwmark: Some((0x10000, 0x0fff1000)), table: 201 };
    let v6 = Rule { v4: false, priority: 1001, iif: None, fwmark: None, table: 70000 };
    for r in [&rule, &v6] {
        nl.rule().add(r).unwrap();
        nl.rule().add(r).unwrap();
    }
    let shown = ns.ip(&["rule", "show", "pref", "1000"]);
    assert_eq!(shown.trim(), "1000:\tfrom all fwmark 0x10000/0xfff1000 iif d0 lookup 201", "{shown}");
    assert!(ns.ip(&["-6", "rule", "show", "pref", "1001"]).contains("lookup 70000"));
    assert!(nl.rule().list(true).unwrap().contains(&rule));
    assert!(nl.rule().list(false).unwrap().contains(&v6));
    for r in [&rule, &v6] {
        nl.rule().delete(r).unwrap();
        nl.rule().delete(r).unwrap();
    }
    assert_eq!(ns.ip(&["rule", "show", "pref", "1000"]).trim(), "");
    assert!(!nl.rule().list(true).unwrap().contains(&rule));
}

/// nfnetlink answers a batch it refuses (here: an unknown subsystem) only
/// at the batch's first delimiter, which asks for no acknowledgement: the
/// batch must fail there, not wait for the acknowledgements that never come.
#[test]
fn a_batch_refused_at_its_delimiter_fails_instead_of_waiting() {
    use datapath::netlink::{NetfilterSocket, Request};
    use netlink_packet_netfilter::nftables::{NfTablesMessage, TableMessage};
    use netlink_packet_netfilter::none::ControlMessage;
    use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
    if !require_root() {
        return;
    }
    let ns = Netns::new("dpnf");
    let mut nl = NetNs::open(&ns.path()).unwrap().run(NetfilterSocket::open).unwrap().unwrap();
    let delimiter = |m| NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 99), m);
    let get = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0),
        NfTablesMessage::GetTable(TableMessage { attributes: Vec::new() }),
    );
    let batch = vec![
        Request::unacknowledged(delimiter(ControlMessage::BatchBegin)),
        Request::new(get, 0),
        Request::unacknowledged(delimiter(ControlMessage::BatchEnd)),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(nl.batch(batch).map_err(|e| e.index)));
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("the batch returned");
    assert_eq!(outcome, Err(Some(0)));
}
