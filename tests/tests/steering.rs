//! Security-function chains steer traffic (issue 9): pods through cnitool
//! with Kubernetes names, route functions as pods of the network that
//! forward, chains applied with `weavice-agent chain apply`. What each
//! function sees is counted inside its namespace by destination and TTL:
//! every pass through the node takes one from the TTL, so the TTL a
//! function sees says where in the chain it is.

use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weavice_tests::*;

/// A node with network podnet and pods by (namespace, name).
struct Steer {
    node: Node,
    pods: HashMap<&'static str, Netns>,
    tag: &'static str,
    /// Each function's counts at the last [`Steer::reset_seen`].
    baseline: RefCell<HashMap<String, HashMap<u32, u64>>>,
}

const FUNCTIONS: [&str; 2] = ["fw-1", "fw-2"];

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

impl Steer {
    fn new(tag: &'static str) -> Steer {
        let node = Node::new(tag);
        node.write_conflist("podnet", "1.0.0", vec![node.conf("1.0.0", "podnet", json!({}))]);
        let mut s = Steer { node, pods: HashMap::new(), tag, baseline: RefCell::default() };
        for name in ["frontend-0", "payments-0", "other-0"] {
            s.add("shop", name);
        }
        for name in FUNCTIONS {
            s.add("sec", name);
        }
        s
    }

    /// cnitool ADD of pod namespace/name; a function (sec/*) forwards, sends
    /// no redirects and counts what it sees.
    fn add(&mut self, namespace: &str, name: &'static str) {
        let pod = Netns::new(self.tag);
        let out = self.cnitool("add", &pod, namespace, name);
        assert!(out.status.success(), "cnitool add {name}: {}", text(&out));
        if namespace == "sec" {
            let knobs = [
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
            ];
            for k in knobs {
                assert!(pod.exec("sysctl", &["-qw", k]).status.success(), "{k}");
            }
            let mut rules = String::new();
            for ttl in 55..=64 {
                rules +=
                    &format!("ip ttl {ttl} counter comment \"{ttl}\"\nip6 hoplimit {ttl} counter comment \"{ttl}\"\n");
                // data segments (a stream's), told from ACKs by their size
                rules += &format!("ip ttl {ttl} meta length > 500 counter comment \"{ttl}+\"\n");
            }
            let script = format!(
                "table inet seen {{\n chain pre {{\n type filter hook prerouting priority 0;\n{rules} }}\n}}\n"
            );
            let dir = TempDir::new(self.tag);
            std::fs::write(dir.path("seen.nft"), script).unwrap();
            let out = pod.exec("nft", &["-f", &dir.path("seen.nft")]);
            assert!(out.status.success(), "{}", text(&out));
            // A router solicits its next hop from its link-local address,
            // which is tentative (DAD) for about a second after the pod starts
            for _ in 0..50 {
                if pod.ip(&["-6", "addr", "show", "dev", "eth0", "tentative"]).trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.pods.insert(name, pod);
    }

    fn cnitool(&self, verb: &str, pod: &Netns, namespace: &str, name: &str) -> Output {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}");
        self.node.cnitool(verb, "podnet", pod, &[("CNI_ARGS", &args)])
    }

    fn del(&mut self, namespace: &str, name: &str) {
        let pod = self.pods.remove(name).unwrap();
        let out = self.cnitool("del", &pod, namespace, name);
        assert!(out.status.success(), "cnitool del {name}: {}", text(&out));
    }

    fn pod(&self, name: &str) -> &Netns {
        &self.pods[name]
    }

    /// The pod's address of a family.
    fn ip(&self, name: &str, v4: bool) -> String {
        let fam = if v4 { "-4" } else { "-6" };
        let out = self.pod(name).ip(&["-o", fam, "addr", "show", "dev", "eth0", "scope", "global"]);
        out.split_whitespace().nth(3).and_then(|a| a.split('/').next()).expect("an address").to_string()
    }

    fn agent(&self, args: &[&str]) -> Output {
        let state = self.node.dir.path("state");
        let mut all = args.to_vec();
        all.extend(["--state-dir", &state]);
        self.node.ns.exec(&bin("weavice-agent"), &all)
    }

    fn apply(&self, yaml: &str) {
        let file = self.node.dir.path("chain.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = self.agent(&["chain", "apply", "-f", &file]);
        assert!(out.status.success(), "chain apply: {}", text(&out));
    }

    /// Packets function `name` saw since the last reset, by TTL (both families).
    fn seen(&self, name: &str) -> HashMap<u32, u64> {
        let mut now = self.counted(name);
        if let Some(before) = self.baseline.borrow().get(name) {
            for (ttl, n) in now.iter_mut() {
                *n -= before.get(ttl).copied().unwrap_or(0);
            }
        }
        now.retain(|_, n| *n > 0);
        now
    }

    /// Data segments over 500 bytes function `name` saw since the last
    /// reset, by TTL (IPv4).
    fn seen_data(&self, name: &str) -> HashMap<u32, u64> {
        let mut now = self.counted_as(name, "+");
        if let Some(before) = self.baseline.borrow().get(&format!("{name}+")) {
            for (ttl, n) in now.iter_mut() {
                *n -= before.get(ttl).copied().unwrap_or(0);
            }
        }
        now.retain(|_, n| *n > 0);
        now
    }

    fn counted(&self, name: &str) -> HashMap<u32, u64> {
        self.counted_as(name, "")
    }

    /// The counters whose comment is a TTL followed by `suffix`.
    fn counted_as(&self, name: &str, suffix: &str) -> HashMap<u32, u64> {
        let out = self.pod(name).exec("nft", &["-j", "list", "table", "inet", "seen"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("nft -j");
        let mut by_ttl = HashMap::new();
        for rule in v["nftables"].as_array().unwrap().iter().filter_map(|o| o.get("rule")) {
            let comment = rule["comment"].as_str().unwrap();
            let Some(ttl) = comment.strip_suffix(suffix).and_then(|t| t.parse::<u32>().ok()) else { continue };
            let packets = rule["expr"].as_array().unwrap().iter().find_map(|e| e["counter"]["packets"].as_u64());
            *by_ttl.entry(ttl).or_default() += packets.unwrap_or(0);
        }
        by_ttl
    }

    /// Counts from now on (nft 1.0.6 does not reset named tables' counters).
    fn reset_seen(&self) {
        for f in FUNCTIONS.iter().filter(|f| self.pods.contains_key(*f)) {
            self.baseline.borrow_mut().insert(f.to_string(), self.counted(f));
            self.baseline.borrow_mut().insert(format!("{f}+"), self.counted_as(f, "+"));
        }
    }
}

fn chain(name: &str, functions: &[&str], policy: &str, ports: &str) -> String {
    let mut f = String::new();
    for fun in functions {
        f += &format!("    - {{name: {fun}, mode: route, pod: {{namespace: sec, name: {fun}}}}}\n");
    }
    format!(
        "apiVersion: weavice.io/v1alpha1\nkind: SecurityFunctionChain\nmetadata: {{name: {name}}}\nspec:\n  network: podnet\n  \
         from: {{namespace: shop, pods: \"frontend-*\"}}\n  to: {{namespace: shop, pods: \"payments-*\"}}\n{ports}  \
         failurePolicy: {policy}\n  functions:\n{f}"
    )
}

#[test]
fn requests_pass_the_functions_in_order_and_replies_in_reverse_other_traffic_is_untouched() {
    if !require_root() {
        return;
    }
    let s = Steer::new("sto");
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    for v4 in [true, false] {
        s.reset_seen();
        let b = s.ip("payments-0", v4);
        // a through the node (63), fw-1 (62), the node (61), fw-2 (60), the node: 59
        assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "v4 {v4}: the reply came back through both");
        // requests reach fw-1 at 63 and fw-2 at 61; replies fw-2 at 63 and fw-1 at 61
        let one = HashMap::from([(63, 1), (61, 1)]);
        assert_eq!(s.seen("fw-1"), one, "v4 {v4}: fw-1 saw the request first and the reply last");
        assert_eq!(s.seen("fw-2"), one, "v4 {v4}");
        // another pod to the same destination, and the chain's own pods the other way round: not steered
        s.reset_seen();
        assert_eq!(ping(s.pod("other-0"), &b), Some(63), "v4 {v4}: other-0 is not in the chain");
        let a = s.ip("frontend-0", v4);
        assert_eq!(ping(s.pod("payments-0"), &a), Some(63), "v4 {v4}: b to a is not a connection of the chain");
        assert_eq!(s.seen("fw-1"), HashMap::new());
    }
    // chain list counts what came back from each function: a request and a reply per family
    let list: Value = serde_json::from_slice(&s.agent(&["chain", "list", "--output", "json"]).stdout).unwrap();
    let packets: Vec<&Value> = list[0]["functions"].as_array().unwrap().iter().map(|f| &f["packets"]).collect();
    assert_eq!(packets, [&json!(4), &json!(4)], "{list}");
}

#[test]
fn a_deleted_function_drops_the_chain_when_closed_is_skipped_when_open_and_is_followed_when_back() {
    if !require_root() {
        return;
    }
    let mut s = Steer::new("stf");
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    let b = s.ip("payments-0", true);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59));

    // Closed: fw-1's DEL blackholes its hop at once; nothing leaks to other pods
    let old = s.ip("fw-1", true);
    s.del("sec", "fw-1");
    s.reset_seen();
    assert_eq!(ping(s.pod("frontend-0"), &b), None, "fail-closed: fw-1 is gone");
    assert_eq!(s.seen("fw-2"), HashMap::new(), "nothing went on to fw-2");
    assert_eq!(ping(s.pod("other-0"), &b), Some(63), "other traffic is untouched");

    // fw-1 back, at another address: the chain follows it
    s.add("shop", "filler-0"); // takes fw-1's old address if IPAM hands it out again
    s.add("sec", "fw-1");
    assert_ne!(s.ip("fw-1", true), old);
    s.reset_seen();
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "through the new fw-1");
    assert_eq!(s.seen("fw-1"), HashMap::from([(63, 1), (61, 1)]));

    // Open: fw-1 gone is skipped, fw-2 still passed
    s.apply(&chain("guard", &FUNCTIONS, "Open", ""));
    s.del("sec", "fw-1");
    s.reset_seen();
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(61), "fail-open: through fw-2 only");
    assert_eq!(s.seen("fw-2"), HashMap::from([(63, 2)]), "request and reply");
    let b6 = s.ip("payments-0", false);
    assert_eq!(ping(s.pod("frontend-0"), &b6), Some(61), "IPv6 too");
}

/// `nft -t list ruleset` and `ip rule` of both families in the node: what
/// no pod may change.
fn rules_and_ip_rules(s: &Steer) -> String {
    rules_dump(&s.node.ns) + &s.node.ns.ip(&["rule"]) + &s.node.ns.ip(&["-6", "rule"])
}

#[test]
fn pods_joining_and_leaving_change_set_elements_only() {
    if !require_root() {
        return;
    }
    let mut s = Steer::new("stc");
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    let before = rules_and_ip_rules(&s);
    assert_eq!(inet_elements(&s.node.ns, "c1_from_v4"), 1);
    let more = ["frontend-1", "frontend-2", "frontend-3"];
    for name in more {
        s.add("shop", name);
    }
    s.add("shop", "payments-1");
    assert_eq!(inet_elements(&s.node.ns, "c1_from_v4"), 4);
    assert_eq!(inet_elements(&s.node.ns, "c1_to_v6"), 2);
    assert_eq!(rules_and_ip_rules(&s), before, "a pod is set elements, never a rule");
    let b = s.ip("payments-1", true);
    assert_eq!(ping(s.pod("frontend-2"), &b), Some(59), "a new pod is steered from its first packet");
    for name in more {
        s.del("shop", name);
    }
    s.del("shop", "payments-1");
    assert_eq!(inet_elements(&s.node.ns, "c1_from_v4"), 1);
    assert_eq!(inet_elements(&s.node.ns, "c1_to_v4"), 1);
    assert_eq!(rules_and_ip_rules(&s), before);
}

#[test]
fn only_the_chains_ports_are_steered_and_service_traffic_is_steered_to_its_endpoint() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stp");
    s.apply(&chain("guard", &["fw-1"], "Closed", "  ports: [{protocol: TCP, port: 8080}]\n"));
    let b = s.ip("payments-0", true);
    serve_tcp(s.pod("payments-0"), &format!("{b}:8080"), "steered");
    serve_tcp(s.pod("payments-0"), &format!("{b}:9090"), "direct");
    s.reset_seen();
    assert_eq!(tcp_fetch(s.pod("frontend-0"), &format!("{b}:9090")), "direct");
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(63), "ICMP is not the chain's");
    assert_eq!(s.seen("fw-1"), HashMap::new(), "port 9090 and ICMP pass straight");
    assert_eq!(tcp_fetch(s.pod("frontend-0"), &format!("{b}:8080")), "steered");
    // the only function: requests and replies both reach it at 63 (a
    // handshake, data and teardown: at least 3 packets each way)
    let seen = s.seen("fw-1");
    assert!(seen.len() == 1 && seen.get(&63).is_some_and(|n| *n >= 6), "both ways: {seen:?}");

    // a Service: the node DNATs 10.96.0.10:80 to the pod; classified after DNAT
    service_dnat(&s.node, &b);
    s.reset_seen();
    assert_eq!(tcp_fetch(s.pod("frontend-0"), "10.96.0.10:80"), "steered");
    assert!(s.seen("fw-1").get(&63).is_some_and(|n| *n >= 3), "{:?}", s.seen("fw-1"));
}

#[test]
fn chains_come_back_after_a_flushed_ruleset_and_repair() {
    if !require_root() {
        return;
    }
    let s = Steer::new("str");
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    let b = s.ip("payments-0", true);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59));

    // CHECK names a pod's missing steering element; repair restores it
    let a = s.ip("frontend-0", true);
    let check = || s.cnitool("check", s.pod("frontend-0"), "shop", "frontend-0");
    assert!(check().status.success(), "{}", text(&check()));
    let gone = s.node.ns.exec("nft", &["delete", "element", "inet", "weavice", "c1_from_v4", &format!("{{ {a} }}")]);
    assert!(gone.status.success(), "{}", text(&gone));
    let out = check();
    assert!(!out.status.success() && text(&out).contains(&format!("{a} in c1_from_v4")), "{}", text(&out));
    assert!(s.agent(&["repair"]).status.success());
    assert!(check().status.success(), "{}", text(&check()));

    // (no traffic while the ruleset is gone: without weavice's drop of ICMP
    // redirects the node would send some, and the pods would keep them)
    assert!(s.node.ns.exec("nft", &["flush", "ruleset"]).status.success());
    assert_eq!(inet_elements(&s.node.ns, "c1_from_v4"), 0);
    let out = s.agent(&["repair"]);
    assert!(out.status.success() && text(&out).contains("1 chain(s)"), "{}", text(&out));
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "steered again");
    // the pods' elements are back too: a new connection from another matching pod
    let a6 = s.ip("frontend-0", false);
    assert_eq!(ping(s.pod("payments-0"), &a6), Some(63));
    assert_eq!(ping(s.pod("frontend-0"), &s.ip("payments-0", false)), Some(59));
}

/// A TCP stream from `from` to a server in `to` that counts what it gets:
/// a 1000-byte write every 5 ms until [`Stream::finish`].
struct Stream {
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<std::io::Result<u64>>,
    reader: std::thread::JoinHandle<std::io::Result<u64>>,
}

impl Stream {
    fn start(from: &Netns, to: &Netns, addr: &str) -> Stream {
        let addr: SocketAddr = addr.parse().unwrap();
        let listener = to.run(move || TcpListener::bind(addr).expect("bind"));
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept()?;
            let mut buf = [0u8; 65536];
            let mut total = 0u64;
            loop {
                match conn.read(&mut buf)? {
                    0 => return Ok(total),
                    n => total += n as u64,
                }
            }
        });
        let mut conn = from.run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2))).expect("connect");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                conn.write_all(&[7u8; 1000])?;
                sent += 1000;
                std::thread::sleep(Duration::from_millis(5));
            }
            conn.shutdown(std::net::Shutdown::Write)?;
            Ok(sent)
        });
        Stream { stop, writer, reader }
    }

    /// Bytes sent and bytes received; either side's error fails the test.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.writer.join().unwrap().expect("the stream broke on the sending side");
        let got = self.reader.join().unwrap().expect("the stream broke on the receiving side");
        (sent, got)
    }
}

#[test]
fn functions_are_inserted_reordered_and_removed_while_a_tcp_stream_runs() {
    if !require_root() {
        return;
    }
    let s = Steer::new("sts");
    let b = s.ip("payments-0", true);
    let stream = Stream::start(s.pod("frontend-0"), s.pod("payments-0"), &format!("{b}:7070"));
    // the stream's data each function passes in the next half second
    let window = || {
        std::thread::sleep(Duration::from_millis(300));
        s.reset_seen();
        std::thread::sleep(Duration::from_millis(500));
        FUNCTIONS.map(|f| s.seen_data(f))
    };
    let none = HashMap::new();
    assert_eq!(window(), [none.clone(), none.clone()], "no chain yet");
    let steps: [(&[&str], &str); 4] = [
        (&["fw-1"], "the established stream is steered from its next packet"),
        (&["fw-1", "fw-2"], "fw-2 inserted after fw-1"),
        (&["fw-2", "fw-1"], "reordered"),
        (&["fw-2"], "fw-1 removed"),
    ];
    for (functions, what) in steps {
        s.apply(&chain("guard", functions, "Closed", ""));
        let seen = window();
        for (f, data) in FUNCTIONS.iter().zip(&seen) {
            match functions.iter().position(|g| g == f) {
                // first in the chain: the data at 63; second: at 61
                Some(pos) => {
                    let ttl = 63 - 2 * pos as u32;
                    assert!(
                        data.len() == 1 && data.get(&ttl).is_some_and(|n| *n > 20),
                        "{what}: {f} at {ttl}: {data:?}"
                    );
                }
                None => assert_eq!(data, &none, "{what}: {f} is not in the chain"),
            }
        }
    }
    let out = s.agent(&["chain", "delete", "guard"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(window(), [none.clone(), none], "the chain deleted: straight again");
    let (sent, got) = stream.finish();
    assert!(sent > 100_000, "the stream ran: {sent}");
    assert_eq!(got, sent, "nothing lost, no reset");
}

/// The default route (IPv4) of routing table `table` in the node, without the
/// fail-closed fallback (metric 4000) that every table of a Closed chain has.
fn default_route(s: &Steer, table: u32) -> String {
    let routes = s.node.ns.ip(&["route", "show", "table", &table.to_string()]);
    routes.lines().find(|l| !l.contains("metric 4000")).unwrap_or_default().trim().to_string()
}

fn forwarding(pod: &Netns, on: bool) {
    let knob = format!("net.ipv4.ip_forward={}", u8::from(on));
    assert!(pod.exec("sysctl", &["-qw", &knob]).status.success());
}

#[test]
fn the_daemon_applies_the_failure_policy_to_a_function_that_stops_forwarding() {
    if !require_root() {
        return;
    }
    let s = Steer::new("std");
    s.apply(&chain("guard", &FUNCTIONS, "Open", ""));
    let daemon = Daemon::start(&s.node, &[]);
    let b = s.ip("payments-0", true);
    let ttl = || ping(s.pod("frontend-0"), &b);
    assert_eq!(ttl(), Some(59));

    // Open: fw-1 stops forwarding (its pod and link stay up): skipped
    forwarding(s.pod("fw-1"), false);
    assert!(eventually(|| ttl() == Some(61)), "fw-1 skipped: {:?}", ttl());
    let list = s.agent(&["chain", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["functions"][0]["healthy"], json!(false), "{list}");
    forwarding(s.pod("fw-1"), true);
    assert!(eventually(|| ttl() == Some(59)), "fw-1 used again: {:?}", ttl());

    // Closed: fw-2 stops: the chain's traffic is dropped, by a blackhole, not by fw-2
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    forwarding(s.pod("fw-2"), false);
    let table = |reply: u32| default_route(&s, 0x5700_0000u32 + 32 + reply + 2);
    assert!(eventually(|| table(0).starts_with("blackhole")), "{}", table(0));
    assert_eq!(ttl(), None);

    // SIGTERM: a clean exit, the chains routed by their pods alone again
    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(s.node.dir.path("agent.log")).unwrap();
    assert!(log.contains("function fw-1 is down") && log.contains("function fw-1 forwards again"), "{log}");
    assert!(log.trim_end().ends_with("stopped"), "{log}");
    assert!(table(0).starts_with("default via"), "{}", table(0));
}

/// An NFQUEUE reader in the node: counts each packet by (source, destination)
/// and drops TCP to `drop_port`, accepts the rest.
struct Reader {
    stop: Arc<AtomicBool>,
    seen: std::thread::JoinHandle<HashMap<(String, String), u32>>,
}

impl Reader {
    fn start(node: &Netns, queue: u16, drop_port: u16) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = node.path();
        let seen = std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            use std::os::unix::io::AsRawFd;
            // SAFETY: setns on our own descriptor, for this thread only.
            assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let mut q = nfq::Queue::open().expect("open NFQUEUE");
            // the previous reader's queue is released a moment after its socket closes
            let mut bound = q.bind(queue);
            for _ in 0..50 {
                if bound.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                bound = q.bind(queue);
            }
            bound.expect("bind the queue");
            q.set_nonblocking(true);
            ready_tx.send(()).unwrap();
            let mut seen: HashMap<(String, String), u32> = HashMap::new();
            while !stopped.load(Ordering::Relaxed) {
                let Ok(mut msg) = q.recv() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let p = msg.get_payload();
                let (src, dst) = (
                    std::net::Ipv4Addr::new(p[12], p[13], p[14], p[15]),
                    std::net::Ipv4Addr::new(p[16], p[17], p[18], p[19]),
                );
                let tcp_to_dropped = p[9] == 6 && u16::from_be_bytes([p[22], p[23]]) == drop_port;
                *seen.entry((src.to_string(), dst.to_string())).or_default() += 1;
                msg.set_verdict(if tcp_to_dropped { nfq::Verdict::Drop } else { nfq::Verdict::Accept });
                q.verdict(msg).expect("verdict");
            }
            let _ = q.unbind(queue);
            seen
        });
        ready_rx.recv().unwrap();
        Reader { stop, seen }
    }

    fn finish(self) -> HashMap<(String, String), u32> {
        self.stop.store(true, Ordering::Relaxed);
        self.seen.join().unwrap()
    }
}

fn with_function(yaml: String, function: &str) -> String {
    yaml + &format!("    - {function}\n")
}

#[test]
fn a_queue_function_sees_each_packet_once_and_its_verdicts_decide() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stq");
    let spec = |policy| with_function(chain("guard", &["fw-1"], policy, ""), "{name: ips, mode: queue, queue: 3}");
    s.apply(&spec("Closed"));
    let (a, b) = (s.ip("frontend-0", true), s.ip("payments-0", true));
    serve_tcp(s.pod("payments-0"), &format!("{b}:8080"), "allowed");
    serve_tcp(s.pod("payments-0"), &format!("{b}:9090"), "never");
    let reader = Reader::start(&s.node.ns, 3, 9090);
    let health = || {
        let list: Value = serde_json::from_slice(&s.agent(&["chain", "list", "--output", "json"]).stdout).unwrap();
        list[0]["functions"][1]["healthy"].clone()
    };
    assert_eq!(health(), json!(true), "a reader is bound");
    for _ in 0..3 {
        assert_eq!(ping(s.pod("frontend-0"), &b), Some(61), "through fw-1 and the queue");
    }
    assert_eq!(tcp_fetch(s.pod("frontend-0"), &format!("{b}:8080")), "allowed");
    assert_eq!(tcp_fetch(s.pod("frontend-0"), &format!("{b}:9090")), "", "the reader's drop verdict holds");
    let other = s.ip("other-0", true);
    assert_eq!(ping(s.pod("other-0"), &b), Some(63), "not the chain's: not queued");
    let seen = reader.finish();
    let (requests, replies) = (seen[&(a.clone(), b.clone())], seen[&(b.clone(), a.clone())]);
    // 3 echo requests and at least 3 TCP segments each way: every packet once
    assert!(requests >= 6 && replies >= 6, "{seen:?}");
    assert!(!seen.contains_key(&(other, b.clone())), "{seen:?}");
    let icmp_only = Reader::start(&s.node.ns, 3, 9090);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(61));
    let once = icmp_only.finish();
    assert_eq!(
        once,
        HashMap::from([((a.clone(), b.clone()), 1), ((b.clone(), a.clone()), 1)]),
        "one echo: once each way"
    );

    // no reader: Closed drops, Open lets it pass
    assert_eq!(health(), json!(false));
    assert_eq!(ping(s.pod("frontend-0"), &b), None, "fail-closed");
    s.apply(&spec("Open"));
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(61), "fail-open: the queue is bypassed");
}

/// A host behind the node (an IDS, a VM): a namespace on a veth of the node
/// named `link`, `node_addr`/24 on the node's side, `addr`/24 inside, which
/// counts at ingress the packets from frontend-0 to payments-0 ("requests")
/// and back ("replies").
fn host_behind(s: &Steer, link: &str, node_addr: &str, addr: &str) -> Netns {
    let host = Netns::new(s.tag);
    let node = &s.node.ns;
    sh("ip", &["-n", &node.name, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", &host.name]);
    node.ip(&["addr", "add", &format!("{node_addr}/24"), "dev", link]);
    node.ip(&["link", "set", link, "up"]);
    host.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
    host.ip(&["link", "set", "eth0", "up"]);
    let (a, b) = (s.ip("frontend-0", true), s.ip("payments-0", true));
    let script = format!(
        "table netdev seen {{\n chain in {{\n type filter hook ingress device eth0 priority 0;\n \
         ip saddr {a} ip daddr {b} counter comment \"requests\"\n ip saddr {b} ip daddr {a} counter comment \"replies\"\n }}\n}}\n"
    );
    let file = s.node.dir.path(&format!("{link}.nft"));
    std::fs::write(&file, script).unwrap();
    let out = host.exec("nft", &["-f", &file]);
    assert!(out.status.success(), "{}", text(&out));
    host
}

/// The packets a [`host_behind`] counted as `what` ("requests", "replies").
fn counted(host: &Netns, what: &str) -> u64 {
    let out = host.exec("nft", &["list", "chain", "netdev", "seen", "in"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = listed.lines().find(|l| l.contains(what)).unwrap_or_default().to_string();
    line.split("packets ").nth(1).and_then(|n| n.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn a_mirror_gets_copies_of_both_directions_and_traffic_does_not_need_it() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stm");
    // the IDS: a host on 198.51.100.0/24 (TEST-NET-2) behind the node
    let ids = host_behind(&s, "wvt-ids-n", "198.51.100.1", "198.51.100.9");
    let copies = |what: &str| counted(&ids, what);
    let b = s.ip("payments-0", true);
    // two route functions, and the mirror after them
    s.apply(&with_function(
        chain("guard", &FUNCTIONS, "Closed", ""),
        "{name: ids, mode: mirror, address: 198.51.100.9}",
    ));
    for _ in 0..2 {
        assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "the traffic itself through fw-1 and fw-2");
    }
    assert_eq!((copies("requests"), copies("replies")), (2, 2), "one copy of each packet, both directions");
    assert_eq!(ping(s.pod("other-0"), &b), Some(63));
    assert_eq!(copies("requests"), 2, "other pods are not mirrored");
    drop(ids);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "the IDS gone: the traffic is unaffected");
}

/// Whether a datagram `from` sends from a source address it does not own
/// (added to its interface for the test) arrives at `to` in `at`.
fn spoofed_udp_arrives(from: &Netns, src: &str, at: &Netns, to: &str) -> bool {
    from.ip(&["addr", "add", &format!("{src}/32"), "dev", "eth0"]);
    let got = udp_source_seen_from(from, src, at, to);
    from.ip(&["addr", "del", &format!("{src}/32"), "dev", "eth0"]);
    got
}

fn udp_source_seen_from(from: &Netns, src: &str, at: &Netns, to: &str) -> bool {
    static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(7300);
    let to: SocketAddr = SocketAddr::new(to.parse().unwrap(), PORT.fetch_add(1, Ordering::SeqCst));
    let src: SocketAddr = SocketAddr::new(src.parse().unwrap(), 0);
    let listener = at.run(move || std::net::UdpSocket::bind(to).expect("bind"));
    listener.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    from.run(move || {
        let sock = std::net::UdpSocket::bind(src).expect("bind the sender");
        for _ in 0..3 {
            let _ = sock.send_to(b"spoof", to);
        }
    });
    listener.recv_from(&mut [0u8; 16]).is_ok()
}

#[test]
fn a_deleted_chain_leaves_no_exemption_and_no_mark_behind() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stx");
    s.apply(&chain("guard", &["fw-1"], "Closed", ""));
    let b = s.ip("payments-0", true);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(61));
    // a function may send with others' addresses while it is one
    assert!(spoofed_udp_arrives(s.pod("fw-1"), "10.88.0.200", s.pod("payments-0"), &b));
    let out = s.agent(&["chain", "delete", "guard"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!spoofed_udp_arrives(s.pod("fw-1"), "10.88.0.200", s.pod("payments-0"), &b), "not any more");
    for set in ["steer_ports", "steer_hops", "steer_own_v4"] {
        let out = s.node.ns.exec("nft", &["list", "set", "bridge", "weavice", set]);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!listed.contains("elements"), "{set}: {listed}");
    }
    // the chain's connections lost its mark (a chain that gets its number
    // next does not take them), and kept their entries (and any NAT)
    let marked = s.node.ns.exec("conntrack", &["-L", "-m", "32/0x3fe0"]);
    assert!(!String::from_utf8_lossy(&marked.stdout).contains("src="), "{}", text(&marked));
    let a = s.ip("frontend-0", true);
    let kept = s.node.ns.exec("conntrack", &["-L", "-p", "icmp", "-s", &a, "-d", &b]);
    assert!(String::from_utf8_lossy(&kept.stdout).contains("mark=0"), "{}", text(&kept));
}

#[test]
fn pods_added_while_a_chain_is_applied_all_join_it() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stj");
    let pods: Vec<Netns> = (0..24).map(|_| Netns::new("stjp")).collect();
    let spec = chain("guard", &["fw-1"], "Closed", "");
    let node = &s.node;
    std::thread::scope(|scope| {
        let adds: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                scope.spawn(move || {
                    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=frontend-j{i}");
                    node.cnitool("add", "podnet", pod, &[("CNI_ARGS", &args)])
                })
            })
            .collect();
        // the apply lands among the ADDs: some have read no chain, some have no state yet
        std::thread::sleep(Duration::from_millis(30));
        s.apply(&spec);
        for a in adds {
            let out = a.join().unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    });
    assert_eq!(inet_elements(&s.node.ns, "c1_from_v4"), 1 + pods.len(), "every frontend pod joined");
    let b = s.ip("payments-0", true);
    for pod in &pods {
        assert_eq!(ping(pod, &b), Some(61), "{}", pod.name);
    }
}

#[test]
fn an_add_after_a_flushed_ruleset_sets_the_network_and_chains_up_again() {
    if !require_root() {
        return;
    }
    let mut s = Steer::new("stf2");
    s.apply(&chain("guard", &["fw-1"], "Closed", ""));
    assert!(s.node.ns.exec("nft", &["flush", "ruleset"]).status.success());
    s.add("shop", "frontend-9");
    let b = s.ip("payments-0", true);
    assert_eq!(ping(s.pod("frontend-9"), &b), Some(61), "the new pod is checked and steered again");
    assert!(s.node.log().contains("setting it up again"), "{}", s.node.log());
}

#[test]
fn a_second_state_dir_cannot_put_chains_on_the_same_node() {
    if !require_root() {
        return;
    }
    let s = Steer::new("sto2");
    s.apply(&chain("guard", &["fw-1"], "Closed", ""));
    // another network with its own stateDir, in the same node
    let other = TempDir::new("sto2d");
    let mut conf = s.node.conf("1.0.0", "othernet", json!({"bridge": "wv9", "stateDir": other.path("state")}));
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.99.0.0/24"}]]);
    conf["ipam"]["dataDir"] = json!(other.path("ipam"));
    s.node.write_conflist("othernet", "1.0.0", vec![conf]);
    let pods: Vec<Netns> = (0..3).map(|_| Netns::new("sto2p")).collect();
    for (pod, (ns, name)) in pods.iter().zip([("shop", "a-0"), ("shop", "b-0"), ("sec", "f-0")]) {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}");
        let out = s.node.cnitool("add", "othernet", pod, &[("CNI_ARGS", &args)]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let yaml = "apiVersion: weavice.io/v1alpha1\nkind: SecurityFunctionChain\nmetadata: {name: other}\nspec:\n  \
                network: othernet\n  from: {namespace: shop, pods: a-0}\n  to: {namespace: shop, pods: b-0}\n  \
                functions:\n    - {name: f, mode: route, pod: {namespace: sec, name: f-0}}\n";
    std::fs::write(other.path("chain.yaml"), yaml).unwrap();
    let before = rules_and_ip_rules(&s);
    let out = s.node.ns.exec(
        &bin("weavice-agent"),
        &["chain", "apply", "-f", &other.path("chain.yaml"), "--state-dir", &other.path("state")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("another stateDir"), "{}", text(&out));
    assert_eq!(rules_and_ip_rules(&s), before, "nothing changed");
    assert_eq!(ping(s.pod("frontend-0"), &s.ip("payments-0", true)), Some(61), "the first chain still steers");
}

#[test]
fn repair_after_a_function_pods_cut_short_del_does_not_route_to_it() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stk");
    s.apply(&chain("guard", &["fw-1"], "Closed", ""));
    // what a DEL killed after retiring the host veth leaves: the veth under
    // its retired name, down, and the attachment's state
    let peer = s.pod("fw-1").ip(&["-o", "link", "show", "eth0"]);
    let index = peer.split("@if").nth(1).and_then(|i| i.split(':').next()).expect("the peer's index").to_string();
    let port = s
        .node
        .ns
        .ip(&["-o", "link", "show"])
        .lines()
        .find(|l| l.starts_with(&format!("{index}: ")))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|n| n.split('@').next())
        .expect("the port")
        .to_string();
    s.node.ns.ip(&["link", "set", &port, "down"]);
    s.node.ns.ip(&["link", "set", &port, "name", "wx0123456789ab"]);
    let out = s.agent(&["repair"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = default_route(&s, 0x5700_0000u32 + 32 + 1);
    assert!(table.starts_with("blackhole"), "fail-closed, not via the dead pod: {table}");
    let hops = s.node.ns.exec("nft", &["list", "map", "bridge", "weavice", "steer_hops"]);
    assert!(!String::from_utf8_lossy(&hops.stdout).contains(&port), "{}", text(&hops));
}

#[test]
fn a_route_function_outside_weavice_is_reached_through_its_interface() {
    if !require_root() {
        return;
    }
    let s = Steer::new("ste");
    // a "VM" behind the node on 192.0.2.0/24 (TEST-NET-1) that forwards
    let vm = host_behind(&s, "wvt-vm", "192.0.2.1", "192.0.2.2");
    vm.ip(&["route", "add", "default", "via", "192.0.2.1"]);
    for k in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0"] {
        assert!(vm.exec("sysctl", &["-qw", k]).status.success());
    }
    let b = s.ip("payments-0", true);
    let seen = |what: &str| counted(&vm, what);
    // the pod function first, the VM second: requests fw-1 then the VM, replies the other way
    let vm_function = "{name: vm, mode: route, address: 192.0.2.2, interface: wvt-vm}";
    s.apply(&with_function(chain("guard", &["fw-1"], "Closed", ""), vm_function));
    s.reset_seen();
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "two functions");
    assert_eq!((seen("requests"), seen("replies")), (1, 1), "the VM forwarded both ways");
    assert_eq!(s.seen("fw-1"), HashMap::from([(63, 1), (61, 1)]), "fw-1 first for requests, last for replies");
    assert_eq!(ping(s.pod("other-0"), &b), Some(63));
    assert_eq!(seen("requests"), 1, "other pods do not go through the VM");
    let list: Value = serde_json::from_slice(&s.agent(&["chain", "list", "--output", "json"]).stdout).unwrap();
    assert_eq!(list[0]["functions"][1]["healthy"], json!(true), "{list}");
    // its link down: Closed drops
    s.node.ns.ip(&["link", "set", "wvt-vm", "down"]);
    assert_eq!(ping(s.pod("frontend-0"), &b), None);
    let bad = with_function(
        chain("guard", &["fw-1"], "Closed", ""),
        "{name: vm, mode: route, address: 192.0.2.2, interface: nosuch0}",
    );
    std::fs::write(s.node.dir.path("bad.yaml"), bad).unwrap();
    let out = s.agent(&["chain", "apply", "-f", &s.node.dir.path("bad.yaml")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("interface nosuch0 is not on this node"), "{}", text(&out));
    // the bridge or a pod's port is no function's own interface
    let bridge = with_function(
        chain("guard", &["fw-1"], "Closed", ""),
        "{name: vm, mode: route, address: 192.0.2.2, interface: wv0}",
    );
    std::fs::write(s.node.dir.path("bad.yaml"), bridge).unwrap();
    let out = s.agent(&["chain", "apply", "-f", &s.node.dir.path("bad.yaml")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a weavice bridge or one of its ports"), "{}", text(&out));
}

#[test]
fn chains_work_on_other_mark_bits_chosen_while_the_node_has_none() {
    if !require_root() {
        return;
    }
    let s = Steer::new("stb");
    let out = s.agent(&["chain", "marks", "--set", "0x3f800000"]);
    assert!(out.status.success() && text(&out).contains("chains 1-3"), "{}", text(&out));
    s.apply(&chain("guard", &FUNCTIONS, "Closed", ""));
    let b = s.ip("payments-0", true);
    assert_eq!(ping(s.pod("frontend-0"), &b), Some(59), "both functions, in order");
    assert_eq!(s.seen("fw-1"), HashMap::from([(63, 1), (61, 1)]));
    let rules = s.node.ns.ip(&["rule"]);
    assert!(rules.contains("fwmark 0x10000000/0x3f800000"), "{rules}");
    let again = s.agent(&["chain", "marks", "--set", "0x3fff"]);
    assert_eq!(again.status.code(), Some(2), "not with a chain on the node: {}", text(&again));
    for bad in ["0x5fff", "0x00700000", "zz"] {
        let out = s.agent(&["chain", "marks", "--set", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
    }
}
