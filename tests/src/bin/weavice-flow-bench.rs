//! weavice-flow-bench: what recording flows costs (issue 10), in one node
//! namespace with two pods added by direct invocation and `weavice-agent run`
//! recording their connections:
//! 1. new TCP connections from pod A to a server in pod B that accepts and
//!    closes (it closes first: no client port waits in TIME_WAIT), at 1,000/s,
//!    10,000/s and as fast as two client threads go, each rate on its own
//!    server port: connections made, the `new` and `end` records of that
//!    port, the events the kernel dropped (`lost` records), the daemon's CPU
//!    and peak RSS, and how many of the same connections `conntrack -E`,
//!    run alongside, saw;
//! 2. the time to append one pod record (what each ADD pays), in process.
//!
//! Usage (root): weavice-flow-bench [--seconds S]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use weavice_tests::{bin, percentile, Netns, Node, TempDir};

const CLIENTS: u64 = 2;
const FIRST_PORT: u16 = 9101;

/// What a panic leaves to undo: release builds abort, no Drop runs then.
#[derive(PartialEq)]
enum Leftover {
    Pid(u32),
    Netns(String),
    Dir(PathBuf),
}

static LEFTOVERS: Mutex<Vec<Leftover>> = Mutex::new(Vec::new());

fn leftovers() -> std::sync::MutexGuard<'static, Vec<Leftover>> {
    LEFTOVERS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn clean_up_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        for l in std::mem::take(&mut *leftovers()).iter().rev() {
            match l {
                // SAFETY: kill(2) on a child of ours not yet waited for.
                Leftover::Pid(pid) => _ = unsafe { libc::kill(*pid as i32, libc::SIGKILL) },
                Leftover::Netns(name) => _ = Command::new("ip").args(["netns", "del", name]).status(),
                Leftover::Dir(dir) => _ = std::fs::remove_dir_all(dir),
            }
        }
    }));
}

fn netns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    leftovers().push(Leftover::Netns(ns.name.clone()));
    ns
}

/// A program in the node namespace (`ip netns exec` execs it: the pid is its own).
struct Proc(Child);

impl Proc {
    fn spawn(ns: &Netns, cmd: &str, args: &[&str], stdout: Stdio) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, cmd])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
        leftovers().push(Leftover::Pid(child.id()));
        Proc(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM; its exit status.
    fn stop(mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        let status = self.0.wait().expect("wait for a child");
        leftovers().retain(|l| *l != Leftover::Pid(self.pid()));
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = ns.path();
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on our own descriptor, for this thread only.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        f()
    })
}

/// ADDs pod `name` (Kubernetes namespace `bench`); its IPv4 address.
fn add(node: &Node, conf: &Value, pod: &Netns, name: &str) -> IpAddr {
    let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}");
    let r = node.cni_with_args("ADD", conf, name, &pod.path(), "eth0", &args);
    assert!(r.ok, "ADD {name}: {}{}", r.stdout, r.stderr);
    let ips = r.json["ips"].as_array().cloned().unwrap_or_default();
    let v4 = ips.iter().filter_map(|i| i["address"].as_str()?.split('/').next()?.parse().ok()).find(IpAddr::is_ipv4);
    v4.unwrap_or_else(|| panic!("ADD {name} gave no IPv4 address: {}", r.stdout))
}

/// A server on `addr` in `pod` that accepts and closes, until [`Server::stop`].
struct Server {
    listener: TcpListener,
    thread: JoinHandle<()>,
}

impl Server {
    fn start(pod: &Netns, addr: SocketAddr) -> Server {
        let listener = pod.run(move || TcpListener::bind(addr).expect("bind the server"));
        let accepting = listener.try_clone().expect("clone the listener");
        let thread = std::thread::spawn(move || loop {
            match accepting.accept() {
                Ok((conn, _)) => drop(conn),
                // shut down: the bench is over
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                Err(_) => {}
            }
        });
        Server { listener, thread }
    }

    fn stop(self) {
        // SAFETY: shutdown(2) on our own socket; it wakes the blocked accept.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        self.thread.join().expect("the server thread");
    }
}

/// Connections from `pod` to `to` for `seconds` at `rate` a second (None:
/// as fast as they go): (made, failed, wall time).
fn clients(pod: &Netns, to: SocketAddr, rate: Option<u64>, seconds: u64) -> (u64, u64, Duration) {
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|k| {
            in_netns(pod, move || {
                let (mut made, mut failed) = (0, 0);
                for i in 0u64.. {
                    // the i-th connection of client k is due at its slot of the schedule
                    let due = rate.map_or_else(Instant::now, |r| {
                        start + Duration::from_nanos((i * CLIENTS + k) * 1_000_000_000 / r)
                    });
                    if due >= end {
                        break;
                    }
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    match TcpStream::connect(to) {
                        Ok(mut conn) => {
                            made += 1;
                            // the server closes first; then this end
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                            let _ = conn.read(&mut [0u8; 1]);
                        }
                        Err(_) => failed += 1,
                    }
                }
                (made, failed)
            })
        })
        .collect();
    let (mut made, mut failed) = (0, 0);
    for t in threads {
        let (m, f) = t.join().expect("a client thread");
        made += m;
        failed += f;
    }
    (made, failed, start.elapsed())
}

/// The flow and lost records of the journal, counted as they are read.
struct Tally {
    follower: journal::read::Follower,
    /// Destination port → (`new` records, `end` records).
    flows: HashMap<u16, (u64, u64)>,
    lost: u64,
}

impl Tally {
    fn poll(&mut self) {
        let (flows, lost) = (&mut self.flows, &mut self.lost);
        self.follower.poll(&mut |line| {
            let Ok(r) = serde_json::from_slice::<Value>(line) else { return };
            if r["kind"] == "lost" {
                *lost += r["num_events_lost"].as_u64().unwrap_or(0);
            }
            let Some(port) = r["l4"]["TCP"]["destination_port"].as_u64() else { return };
            let counts = flows.entry(port as u16).or_default();
            match r["event"].as_str() {
                Some("new") => counts.0 += 1,
                Some("end") => counts.1 += 1,
                _ => {}
            }
        });
    }
}

/// `conntrack -E` in the node namespace, its NEW events counted by original destination port.
struct ConntrackEvents {
    proc: Proc,
    seen: Arc<Mutex<HashMap<u16, u64>>>,
    reader: JoinHandle<()>,
}

impl ConntrackEvents {
    fn start(node: &Netns) -> ConntrackEvents {
        let mut proc = Proc::spawn(node, "conntrack", &["-E", "-b", "8388608", "-e", "NEW"], Stdio::piped());
        let out = proc.0.stdout.take().expect("conntrack's stdout");
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let counts = seen.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let port = line.split_whitespace().find_map(|w| w.strip_prefix("dport=")?.parse().ok());
                if let Some(port) = port {
                    *counts.lock().unwrap_or_else(PoisonError::into_inner).entry(port).or_insert(0u64) += 1;
                }
            }
        });
        ConntrackEvents { proc, seen, reader }
    }

    fn seen(&self, port: u16) -> u64 {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(&port).copied().unwrap_or(0)
    }

    fn stop(self) {
        let _ = self.proc.stop();
        self.reader.join().expect("the conntrack -E reader");
    }
}

/// utime + stime of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon's /proc/PID/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat's comm").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// VmHWM of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's /proc/PID/status");
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
    kb.expect("no VmHWM in the daemon's /proc/PID/status: has it exited?") as f64 / 1024.0
}

fn sysctl(ns: &Netns, path: &'static str) -> u64 {
    let text = ns.run(move || std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}")));
    text.trim().parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Microseconds to append one typical pod record, `n` times: (p50, p95).
fn pod_record_append(n: usize) -> (f64, f64) {
    let dir = TempDir::new("flbj");
    leftovers().push(Leftover::Dir(dir.0.clone()));
    let state = dir.path("state");
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let record = |lost_before| journal::PodRecord {
            v: journal::SCHEMA,
            time: journal::time::now(),
            kind: "pod".into(),
            event: journal::PodEvent::Add,
            node: journal::node_name(),
            network: "benchnet".into(),
            container_id: format!("{i:064x}"),
            ifname: "eth0".into(),
            netns: format!("/var/run/netns/cni-4b1d2e6f-0c3a-6d7e-9f80-{i:012x}"),
            pod: Some(journal::Endpoint {
                namespace: "shop".into(),
                pod_name: format!("frontend-7d9c8b6f5-{i}"),
                uid: Some(format!("0f1e2d3c-4b5a-6978-8796-{i:012x}")),
            }),
            ips: vec![format!("10.88.{}.{}", i / 250, i % 250 + 2), format!("fd88::{:x}", i + 2)],
            mac: "0a:58:0a:58:00:07".into(),
            host_veth: format!("wv{i:08x}"),
            port_mappings: vec![],
            lost_before,
        };
        journal::Journal::new(&state).append(record).expect("append a pod record");
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    leftovers().retain(|l| *l != Leftover::Dir(dir.0.clone()));
    (percentile(&mut times, 0.5), percentile(&mut times, 0.95))
}

struct Run {
    rate: Option<u64>,
    made: u64,
    failed: u64,
    wall: Duration,
    new: u64,
    end: u64,
    lost: u64,
    cpu: f64,
    rss: f64,
    seen: u64,
    conntrack_count: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut seconds = 10;
    for w in args.windows(2) {
        if w[0] == "--seconds" {
            seconds = w[1].parse().expect("--seconds S");
        }
    }
    clean_up_on_panic();
    let (append_p50, append_p95) = pod_record_append(2000);

    let node = Node { ns: netns("flb"), dir: TempDir::new("flb") };
    leftovers().push(Leftover::Dir(node.dir.0.clone()));
    let conf = node.conf("1.0.0", "benchnet", json!({"logLevel": "info"}));
    let (a, b) = (netns("flba"), netns("flbb"));
    add(&node, &conf, &a, "client-a");
    let b_ip = add(&node, &conf, &b, "server-b");

    let (state, log) = (node.dir.path("state"), node.dir.path("agent.log"));
    let agent_args = ["run", "--state-dir", &state, "--log-file", &log, "--journal-max-files", "10000"];
    let mut daemon = Proc::spawn(&node.ns, &bin("weavice-agent"), &agent_args, Stdio::null());
    let started = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("ready:") {
        let exited = daemon.0.try_wait().expect("the daemon's status");
        assert!(exited.is_none() && started.elapsed() < Duration::from_secs(30), "the daemon is not ready: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = daemon.pid();
    let journal_dir = Path::new(&state).join("journal");
    let mut tally =
        Tally { follower: journal::read::Follower::from_start(&journal_dir), flows: HashMap::new(), lost: 0 };
    let conntrack = ConntrackEvents::start(&node.ns);
    std::thread::sleep(Duration::from_millis(500));
    tally.poll();

    let mut runs = Vec::new();
    for (i, rate) in [Some(1_000), Some(10_000), None].into_iter().enumerate() {
        let port = FIRST_PORT + i as u16;
        let server = Server::start(&b, SocketAddr::new(b_ip, port));
        let (lost_before, cpu_before) = (tally.lost, cpu_seconds(pid));
        let (made, failed, wall) = clients(&a, SocketAddr::new(b_ip, port), rate, seconds);
        let conntrack_count = sysctl(&node.ns, "/proc/sys/net/netfilter/nf_conntrack_count");
        // the daemon writes every 100 ms and counts drops every second
        std::thread::sleep(Duration::from_millis(1500));
        let cpu = (cpu_seconds(pid) - cpu_before) / wall.as_secs_f64() * 100.0;
        server.stop();
        tally.poll();
        let (new, end) = tally.flows.get(&port).copied().unwrap_or_default();
        let seen = conntrack.seen(port);
        let lost = tally.lost - lost_before;
        runs.push(Run { rate, made, failed, wall, new, end, lost, cpu, rss: peak_rss_mib(pid), seen, conntrack_count });
    }
    let status = daemon.stop();
    assert!(status.success(), "the daemon exited with {status} on SIGTERM: {log}");
    conntrack.stop();

    println!("## Flow records (weavice-flow-bench)");
    println!("\n### New TCP connections pod A to pod B, {seconds} s per rate ({CLIENTS} client threads)\n");
    println!(
        "| target /s | made | achieved /s | `new` records | `end` records | lost events | recorded | every miss counted \
         | daemon CPU (% of one core) | daemon peak RSS | `conntrack -E` saw |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let target = r.rate.map_or("as fast as possible".to_string(), |r| r.to_string());
        let counted = r.made.saturating_sub(r.new) <= r.lost;
        println!(
            "| {target} | {} | {:.0} | {} | {} | {} | {:.2} % | {} | {:.1} % | {:.1} MiB | {:.2} % |",
            r.made,
            r.made as f64 / r.wall.as_secs_f64(),
            r.new,
            r.end,
            r.lost,
            r.new as f64 * 100.0 / r.made.max(1) as f64,
            if counted { "yes" } else { "no" },
            r.cpu,
            r.rss,
            r.seen as f64 * 100.0 / r.made.max(1) as f64,
        );
    }
    let max = sysctl(&node.ns, "/proc/sys/net/netfilter/nf_conntrack_max");
    let peak = runs.iter().map(|r| r.conntrack_count).max().unwrap_or(0);
    let failed: Vec<String> = runs.iter().map(|r| r.failed.to_string()).collect();
    println!(
        "\nCPU: the daemon's utime+stime from the run's start to 1.5 s after its end, over the run's wall time. \
         Connections that failed: {}. Conntrack entries in the node namespace at the end of a run: at most {peak} \
         of nf_conntrack_max {max}{}.",
        failed.join(", "),
        if peak * 10 >= max * 9 { " (near the limit: connections may have been refused)" } else { "" }
    );
    println!("\n### Appending one pod record (what each ADD pays; 2000 appends, in process)\n");
    println!("| p50 | p95 |");
    println!("|---|---|");
    println!("| {append_p50:.1} µs | {append_p95:.1} µs |");
    leftovers().clear();
}
