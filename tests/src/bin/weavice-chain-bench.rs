//! weavice-chain-bench: what a security-function chain costs (issue 9), all
//! in one node namespace with pods added by direct invocation:
//! 1. ADD latency of a pod a chain matches against one it does not,
//!    interleaved in one run, and of a pod before any chain exists;
//! 2. TCP throughput (iperf3) from pod A to pod B straight, through a
//!    one-function route chain, and through a queue function served by an
//!    accept-all reader;
//! 3. time from `chain apply` to the first steered packet, and from a
//!    function pod's DEL to its failure policy taking effect (Open: the
//!    packets go straight; Closed: they stop), seen by a receiver in B that
//!    reads each datagram's TTL (61 through the function, 63 straight).
//!
//! Usage (root): weavice-chain-bench [--samples N] [--seconds S]

use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::io::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weavice_tests::{bin, cni_path, percentile, Netns, TempDir};

const NET: &str = "benchnet";

struct Node {
    ns: Netns,
    dir: TempDir,
    conf: Value,
}

/// The node's monotonic clock in ns: the same in every namespace.
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Node {
    fn new() -> Node {
        let ns = Netns::new("chb");
        let dir = TempDir::new("chb");
        let conf = json!({
            "cniVersion": "1.0.0", "name": NET, "type": "weavice",
            "stateDir": dir.path("state"), "logFile": dir.path("weavice.log"),
            "ipam": {"type": "weavice-ipam", "dataDir": dir.path("ipam"), "ranges": [[{"subnet": "10.123.0.0/16"}]]}
        });
        Node { ns, dir, conf }
    }

    /// One CNI verb for pod `name` (Kubernetes namespace `k8s_ns`), timed from spawn to exit.
    fn cni(&self, verb: &str, pod: &Netns, k8s_ns: &str, name: &str) -> Duration {
        let start = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, &bin("weavice")])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", name)
            .env("CNI_NETNS", pod.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cni_path())
            .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={k8s_ns};K8S_POD_NAME={name}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn weavice");
        child.stdin.take().unwrap().write_all(self.conf.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{verb} {name}: {}", String::from_utf8_lossy(&out.stdout));
        start.elapsed()
    }

    fn agent(&self, args: &[&str]) {
        let state = self.dir.path("state");
        let mut all = vec!["netns", "exec", &self.ns.name];
        let agent = bin("weavice-agent");
        all.push(&agent);
        all.extend_from_slice(args);
        all.extend(["--state-dir", &state]);
        let out = Command::new("ip").args(&all).output().expect("run weavice-agent");
        assert!(out.status.success(), "weavice-agent {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn apply(&self, policy: &str) {
        self.apply_with(policy, "{name: fw, mode: route, pod: {namespace: sec, name: fw-0}}");
    }

    /// Chain `guard` from frontend-* to payments-* through `function`.
    fn apply_with(&self, policy: &str, function: &str) {
        let yaml = format!(
            "apiVersion: weavice.io/v1alpha1\nkind: SecurityFunctionChain\nmetadata: {{name: guard}}\nspec:\n  \
             network: {NET}\n  from: {{namespace: shop, pods: \"frontend-*\"}}\n  to: {{namespace: shop, pods: \"payments-*\"}}\n  \
             failurePolicy: {policy}\n  functions:\n    - {function}\n"
        );
        let file = self.dir.path("chain.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.agent(&["chain", "apply", "-f", &file]);
    }
}

fn ipv4(pod: &Netns) -> String {
    let out = pod.ip(&["-o", "-4", "addr", "show", "dev", "eth0"]);
    out.split_whitespace().nth(3).and_then(|a| a.split('/').next()).expect("an address").to_string()
}

fn function_pod(node: &Node) -> Netns {
    let fw = Netns::new("chbf");
    node.cni("ADD", &fw, "sec", "fw-0");
    for k in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"] {
        assert!(fw.exec("sysctl", &["-qw", k]).status.success());
    }
    fw
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// ADD p50/p95 of pods that match the chain, that do not, and with no chain
/// applied: each sample of the three in the same round (the chain applied
/// and deleted every round), so the machine's drift hits all three.
fn add_latency(node: &Node, samples: usize) {
    let (mut matching, mut other, mut none) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..samples {
        let (a, b, c) = (Netns::new("chba"), Netns::new("chbb"), Netns::new("chbc"));
        let (ma, ob, nc) = (format!("frontend-{i}"), format!("other-{i}"), format!("frontend-none{i}"));
        node.apply("Closed");
        // alternate which goes first, so neither gets the warmer cache
        if i % 2 == 0 {
            matching.push(ms(node.cni("ADD", &a, "shop", &ma)));
            other.push(ms(node.cni("ADD", &b, "shop", &ob)));
        } else {
            other.push(ms(node.cni("ADD", &b, "shop", &ob)));
            matching.push(ms(node.cni("ADD", &a, "shop", &ma)));
        }
        node.cni("DEL", &a, "shop", &ma);
        node.cni("DEL", &b, "shop", &ob);
        node.agent(&["chain", "delete", "guard"]);
        none.push(ms(node.cni("ADD", &c, "shop", &nc)));
        node.cni("DEL", &c, "shop", &nc);
    }
    println!("\n### ADD latency with a chain ({samples} rounds, direct invocation)\n");
    println!("| pod | ADD p50 | ADD p95 |");
    println!("|---|---|---|");
    let mut rows = [
        ("no chain applied (a frontend pod)", none),
        ("chain applied, pod not matched", other),
        ("chain applied, pod matched (joins its set)", matching),
    ];
    let mut p50s = Vec::new();
    for (what, v) in rows.iter_mut() {
        let (p50, p95) = (percentile(v, 0.5), percentile(v, 0.95));
        p50s.push(p50);
        println!("| {what} | {p50:.2} ms | {p95:.2} ms |");
    }
    println!(
        "\nA matched pod's extra ADD time at p50: {:+.2} ms against one not matched, {:+.2} ms against no chain",
        p50s[2] - p50s[1],
        p50s[2] - p50s[0]
    );
}

/// iperf3 from `from` to `to_ip` for `seconds`: received bits per second.
fn iperf(from: &Netns, to: &Netns, to_ip: &str, seconds: u32) -> f64 {
    let mut server: Child = Command::new("ip")
        .args(["netns", "exec", &to.name, "iperf3", "-s", "-1", "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 (Debian: apt-get install iperf3)");
    std::thread::sleep(Duration::from_millis(300));
    let out = from.exec("iperf3", &["-c", to_ip, "-p", "5201", "-t", &seconds.to_string(), "-J"]);
    let _ = server.wait();
    let v: Value = serde_json::from_slice(&out.stdout).expect("iperf3 -J");
    v["end"]["sum_received"]["bits_per_second"].as_f64().expect("bits_per_second")
}

/// An NFQUEUE reader on the node that accepts every packet (with GSO, so
/// large segments are not cut up for it), for as long as the bench runs.
fn accept_all(node: &Netns, queue: u16) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    in_netns(node, move || {
        let mut q = nfq::Queue::open().expect("open NFQUEUE");
        q.bind(queue).expect("bind the queue");
        q.set_recv_gso(queue, true).expect("GSO");
        ready_tx.send(()).unwrap();
        while let Ok(mut msg) = q.recv() {
            msg.set_verdict(nfq::Verdict::Accept);
            if q.verdict(msg).is_err() {
                break;
            }
        }
    });
    ready_rx.recv().unwrap();
}

fn throughput(node: &Node, a: &Netns, b: &Netns, seconds: u32) {
    let b_ip = ipv4(b);
    let (mut direct, mut routed, mut queued) = (Vec::new(), Vec::new(), Vec::new());
    accept_all(&node.ns, 5);
    // alternate straight and steered runs: the machine's noise hits all
    for _ in 0..3 {
        direct.push(iperf(a, b, &b_ip, seconds) / 1e9);
        node.apply("Closed");
        routed.push(iperf(a, b, &b_ip, seconds) / 1e9);
        node.apply_with("Closed", "{name: ips, mode: queue, queue: 5}");
        queued.push(iperf(a, b, &b_ip, seconds) / 1e9);
        node.agent(&["chain", "delete", "guard"]);
    }
    let (d, r, q) = (percentile(&mut direct, 0.5), percentile(&mut routed, 0.5), percentile(&mut queued, 0.5));
    println!("\n### TCP throughput A to B (iperf3, {seconds} s runs, median of 3)\n");
    println!("| path | Gbit/s | ratio to direct |");
    println!("|---|---|---|");
    println!("| direct (routed through the node) | {d:.2} | 1.00 |");
    println!("| through a one-function route chain | {r:.2} | {:.2} |", r / d);
    println!("| through a queue function (an accept-all nfq reader, GSO on) | {q:.2} | {:.2} |", q / d);
}

/// Datagrams from A to B every 100 us, each carrying its send time; the
/// receiver notes each one's TTL.
struct Probe {
    stop: Arc<AtomicBool>,
    sender: std::thread::JoinHandle<()>,
    receiver: std::thread::JoinHandle<Vec<(u64, u8)>>,
}

fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = ns.path();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on our own descriptor, for this thread only.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        f()
    })
}

/// One datagram and its TTL (IP_RECVTTL), or None after the timeout.
fn recv_with_ttl(sock: &UdpSocket) -> Option<(u64, u8)> {
    let mut buf = [0u8; 64];
    let mut cmsg = [0u8; 64];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr points at buffers that outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: a valid socket and msghdr.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 8 {
        return None;
    }
    let sent = u64::from_be_bytes(buf[..8].try_into().ok()?);
    // SAFETY: walking the control buffer the kernel filled.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: c is a header inside the control buffer.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL {
            // SAFETY: IP_TTL data is an int.
            let ttl = unsafe { *(libc::CMSG_DATA(c) as *const libc::c_int) };
            return Some((sent, ttl as u8));
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    None
}

impl Probe {
    fn start(a: &Netns, b: &Netns) -> Probe {
        let to: SocketAddr = format!("{}:9099", ipv4(b)).parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopped = stop.clone();
        let receiver = in_netns(b, move || {
            let sock = UdpSocket::bind(to).expect("bind");
            let on: libc::c_int = 1;
            // SAFETY: setsockopt with an int option.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_RECVTTL,
                    (&on as *const libc::c_int).cast(),
                    4,
                )
            };
            sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                if let Some(s) = recv_with_ttl(&sock) {
                    seen.push(s);
                }
            }
            seen
        });
        ready_rx.recv().unwrap();
        let stopped = stop.clone();
        let sender = in_netns(a, move || {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
            while !stopped.load(Ordering::Relaxed) {
                let _ = sock.send_to(&now_ns().to_be_bytes(), to);
                std::thread::sleep(Duration::from_micros(100));
            }
        });
        Probe { stop, sender, receiver }
    }

    fn finish(self) -> Vec<(u64, u8)> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.store(true, Ordering::Relaxed);
        self.sender.join().unwrap();
        self.receiver.join().unwrap()
    }
}

/// Milliseconds from `t0` to the send time of the first datagram after it
/// that `arrived_as` accepts.
fn first_after(seen: &[(u64, u8)], t0: u64, arrived_as: impl Fn(u8) -> bool) -> Option<f64> {
    seen.iter()
        .filter(|(sent, ttl)| *sent >= t0 && arrived_as(*ttl))
        .map(|(sent, _)| (sent - t0) as f64 / 1e6)
        .reduce(f64::min)
}

fn reaction_times(node: &Node, a: &Netns, b: &Netns, samples: usize) {
    let (mut to_steered, mut open, mut closed, mut apply_cmd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        let fw = function_pod(node);
        // a router solicits its next hop from its link-local address: let DAD end
        std::thread::sleep(Duration::from_millis(200));
        let probe = Probe::start(a, b);
        std::thread::sleep(Duration::from_millis(100));
        let t0 = now_ns();
        node.apply("Open");
        apply_cmd.push((now_ns() - t0) as f64 / 1e6);
        std::thread::sleep(Duration::from_millis(200));
        let t1 = now_ns();
        node.cni("DEL", &fw, "sec", "fw-0");
        std::thread::sleep(Duration::from_millis(200));
        let seen = probe.finish();
        to_steered.extend(first_after(&seen, t0, |ttl| ttl == 61));
        open.extend(first_after(&seen, t1, |ttl| ttl == 63));

        // Closed: from the DEL until nothing arrives any more
        let fw = function_pod(node);
        std::thread::sleep(Duration::from_millis(200));
        node.apply("Closed");
        let probe = Probe::start(a, b);
        std::thread::sleep(Duration::from_millis(100));
        let t2 = now_ns();
        node.cni("DEL", &fw, "sec", "fw-0");
        std::thread::sleep(Duration::from_millis(200));
        let seen = probe.finish();
        let last = seen.iter().map(|(sent, _)| *sent).max().unwrap_or(t2);
        closed.push(last.saturating_sub(t2) as f64 / 1e6);
        node.agent(&["chain", "delete", "guard"]);
    }
    // a function that stops forwarding (its pod and link stay), found by the daemon's probes
    let mut probed = Vec::new();
    let fw = function_pod(node);
    std::thread::sleep(Duration::from_millis(200));
    node.apply("Open");
    let log = node.dir.path("agent.log");
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", &node.ns.name, &bin("weavice-agent"), "run", "--state-dir", &node.dir.path("state")])
        .args(["--log-file", &log])
        .stderr(Stdio::null())
        .spawn()
        .expect("weavice-agent run");
    let started = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("running") {
        assert!(started.elapsed() < Duration::from_secs(30), "weavice-agent run did not start: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..samples {
        let probe = Probe::start(a, b);
        std::thread::sleep(Duration::from_millis(1500));
        let t0 = now_ns();
        assert!(fw.exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"]).status.success());
        std::thread::sleep(Duration::from_millis(4000));
        let seen = probe.finish();
        probed.extend(first_after(&seen, t0, |ttl| ttl == 63));
        assert!(fw.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).status.success());
        std::thread::sleep(Duration::from_millis(2000));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    node.agent(&["chain", "delete", "guard"]);
    node.cni("DEL", &fw, "sec", "fw-0");

    println!("\n### Reaction times ({samples} runs; datagrams every 100 us, TTL read at the receiver)\n");
    println!("| from | to | p50 | p95 |");
    println!("|---|---|---|---|");
    let row = |from: &str, to: &str, v: &mut Vec<f64>| {
        if v.is_empty() {
            println!("| {from} | {to} | - | - |");
        } else {
            println!("| {from} | {to} | {:.1} ms | {:.1} ms |", percentile(v, 0.5), percentile(v, 0.95));
        }
    };
    row("`chain apply` started", "the command returned", &mut apply_cmd);
    row("`chain apply` started", "first datagram steered (TTL 61)", &mut to_steered);
    row("function pod DEL started (Open)", "first datagram straight again (TTL 63)", &mut open);
    row("function pod DEL started (Closed)", "last datagram delivered", &mut closed);
    row(
        "function stops forwarding (Open, `weavice-agent run` probing each second)",
        "first datagram straight again",
        &mut probed,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut samples = 40;
    let mut seconds = 5;
    for w in args.windows(2) {
        match w[0].as_str() {
            "--samples" => samples = w[1].parse().expect("--samples N"),
            "--seconds" => seconds = w[1].parse().expect("--seconds S"),
            _ => {}
        }
    }
    let node = Node::new();
    let (a, b) = (Netns::new("chba"), Netns::new("chbb"));
    node.cni("ADD", &a, "shop", "frontend-a");
    node.cni("ADD", &b, "shop", "payments-b");
    let fw = function_pod(&node);
    println!("## Security-function chains (weavice-chain-bench)");
    add_latency(&node, samples);
    throughput(&node, &a, &b, seconds);
    node.cni("DEL", &fw, "sec", "fw-0");
    drop(fw);
    reaction_times(&node, &a, &b, samples.min(10));
}
