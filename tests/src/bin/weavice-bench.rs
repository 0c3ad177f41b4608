//! weavice-bench: ADD and DEL latency of weavice against the reference chain
//! (bridge + host-local, ipMasq on both), measured the same way for both in
//! one run, by direct invocation and through cnitool, at several numbers of
//! pods already on the node. Prints medians, p95, rule counts and ratios.
//!
//! With `--hostport`, every pod gets one hostPort: weavice maps it itself,
//! the reference chain becomes bridge + host-local + portmap.
//!
//! Usage (root): weavice-bench [--samples N] [--pods 1,100,250] [--hostport] [--backend auto|nftables|iptables]

use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weavice_tests::{bin, cni_path, cnitool, Netns, TempDir};

#[derive(Clone, Copy, PartialEq)]
enum Plugin {
    Weavice,
    Reference,
}

impl Plugin {
    fn name(self) -> &'static str {
        match self {
            Plugin::Weavice => "weavice",
            Plugin::Reference => "reference",
        }
    }

    fn conf(self, dir: &TempDir, backend: &str) -> Value {
        match self {
            Plugin::Weavice => json!({
                "type": "weavice", "bridge": "wvb0", "ipMasq": true, "firewallBackend": backend,
                "stateDir": dir.path("state"), "logFile": dir.path("weavice.log"),
                "ipam": {"type": "weavice-ipam", "dataDir": dir.path("ipam"), "ranges": [[{"subnet": "10.120.0.0/16"}]]}
            }),
            Plugin::Reference => json!({
                "type": "bridge", "bridge": "cnib0", "isGateway": true, "ipMasq": true,
                "ipam": {"type": "host-local", "dataDir": dir.path("ipam"), "ranges": [[{"subnet": "10.121.0.0/16"}]]}
            }),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Direct,
    Cnitool,
}

/// Switches this (single) thread into `ns`; children spawned now start there.
fn enter(ns: &str) {
    let f = File::open(ns).expect("open netns");
    // SAFETY: setns on our own descriptor; the bench is single-threaded.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
}

struct Bench {
    dir: TempDir,
    network: String,
    conf: Value,
    plugin: Plugin,
    /// One hostPort per pod: weavice maps it itself, the reference chain adds portmap.
    hostport: bool,
}

/// A hostPort unique per pod, derived from its container ID.
fn port_for(id: &str) -> u16 {
    let n: u16 = id.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(0);
    match id {
        _ if id.starts_with("resident") => 20000 + n,
        _ if id.starts_with("probe") => 30000 + n,
        _ => 40000,
    }
}

fn mappings(id: &str) -> Value {
    json!([{"hostPort": port_for(id), "containerPort": 80, "protocol": "tcp"}])
}

/// Runs one plugin binary as a runtime would; its stdout, or None on failure.
fn invoke(plugin: &str, verb: &str, id: &str, pod: &Netns, conf: &Value) -> Option<Vec<u8>> {
    let mut child = Command::new(plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn plugin");
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{plugin} {verb} {id}: {}", String::from_utf8_lossy(&out.stdout));
        return None;
    }
    Some(out.stdout)
}

impl Bench {
    /// One verb, timed from spawn to exit.
    fn run(&self, via: Via, verb: &str, id: &str, pod: &Netns) -> Duration {
        let start = Instant::now();
        let ok = match via {
            Via::Direct => {
                let mut conf = self.conf.clone();
                conf["cniVersion"] = json!("1.0.0");
                conf["name"] = json!(self.network);
                match (self.plugin, self.hostport) {
                    (Plugin::Weavice, hostport) => {
                        if hostport {
                            conf["runtimeConfig"] = json!({"portMappings": mappings(id)});
                        }
                        invoke(&bin("weavice"), verb, id, pod, &conf).is_some()
                    }
                    (Plugin::Reference, false) => invoke("/usr/lib/cni/bridge", verb, id, pod, &conf).is_some(),
                    // the chain by hand: bridge then portmap on ADD, the reverse on DEL
                    (Plugin::Reference, true) => {
                        let mut pm = json!({"cniVersion": "1.0.0", "name": self.network, "type": "portmap",
                                            "runtimeConfig": {"portMappings": mappings(id)}});
                        if verb == "ADD" {
                            invoke("/usr/lib/cni/bridge", verb, id, pod, &conf).is_some_and(|out| {
                                pm["prevResult"] = serde_json::from_slice(&out).unwrap_or_default();
                                invoke("/usr/lib/cni/portmap", verb, id, pod, &pm).is_some()
                            })
                        } else {
                            invoke("/usr/lib/cni/portmap", verb, id, pod, &pm).is_some()
                                && invoke("/usr/lib/cni/bridge", verb, id, pod, &conf).is_some()
                        }
                    }
                }
            }
            Via::Cnitool => {
                let caps =
                    if self.hostport { json!({"portMappings": mappings(id)}).to_string() } else { String::new() };
                let out = Command::new(cnitool())
                    .args([verb.to_lowercase().as_str(), &self.network, &pod.path()])
                    .env("CAP_ARGS", caps)
                    .env("NETCONFPATH", self.dir.path("net.d"))
                    .env("CNI_PATH", cni_path())
                    .env("CNI_CACHE_DIR", self.dir.path("cache"))
                    .env("CNI_CONTAINERID", id)
                    .output()
                    .expect("run cnitool");
                if !out.status.success() {
                    eprintln!("cnitool {verb} {id}: {}", String::from_utf8_lossy(&out.stderr));
                }
                out.status.success()
            }
        };
        assert!(ok, "{} {verb} failed", self.plugin.name());
        start.elapsed()
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx].as_secs_f64() * 1000.0
}

/// Rules in every netfilter table of the current namespace (iptables-nft
/// rules included, since they live in nftables too).
fn rule_count() -> usize {
    let out = Command::new("nft")
        .args(["-a", "list", "ruleset"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .map(str::trim)
        .filter(|l| {
            l.contains("# handle")
                && !l.starts_with("table")
                && !l.starts_with("chain")
                && !l.starts_with("set")
                && !l.starts_with("type")
        })
        .count()
}

struct Row {
    plugin: Plugin,
    via: Via,
    pods: usize,
    add50: f64,
    add95: f64,
    del50: f64,
    del95: f64,
    rules: usize,
}

/// Discarded ADD/DEL pairs before measuring, per chain and way of invoking.
const WARMUP: usize = 3;

/// Pause before each timed operation, so the kernel's deferred work from the
/// previous one, of either chain (RCU callbacks, veth and rule destruction),
/// lands in neither's measurement.
const SETTLE: Duration = Duration::from_millis(100);

/// One chain on its own node namespace, with its resident and probe pods.
struct Setup {
    bench: Bench,
    node: Netns,
    resident: Vec<Netns>,
    probes: Vec<Netns>,
}

impl Setup {
    fn new(plugin: Plugin, pods: usize, samples: usize, hostport: bool, backend: &str) -> Self {
        let node = Netns::new("bench");
        let dir = TempDir::new("bench");
        let network = format!("bench{}", if plugin == Plugin::Weavice { "wv" } else { "ref" });
        let mut conf = plugin.conf(&dir, backend);
        let mut plugins = vec![conf.clone()];
        if hostport {
            match plugin {
                Plugin::Weavice => plugins[0]["capabilities"] = json!({"portMappings": true}),
                Plugin::Reference => plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}})),
            }
            conf = plugins[0].clone();
            conf.as_object_mut().map(|o| o.remove("capabilities"));
        }
        std::fs::create_dir_all(dir.path("net.d")).unwrap();
        let list = json!({"cniVersion": "1.0.0", "name": network, "plugins": plugins});
        std::fs::write(dir.path(&format!("net.d/{network}.conflist")), list.to_string()).unwrap();
        let bench = Bench { dir, network, conf, plugin, hostport };
        let resident: Vec<Netns> = (0..pods).map(|_| Netns::new("res")).collect();
        let probes: Vec<Netns> = (0..samples + WARMUP).map(|_| Netns::new("probe")).collect();
        enter(&node.path());
        for (i, p) in resident.iter().enumerate() {
            bench.run(Via::Direct, "ADD", &format!("resident{i}"), p);
        }
        Setup { bench, node, resident, probes }
    }
}

fn main() {
    let mut samples = 40;
    let mut backend = "auto".to_string();
    let mut levels = vec![1usize, 100, 250];
    let args: Vec<String> = std::env::args().collect();
    for w in args.windows(2) {
        match w[0].as_str() {
            "--samples" => samples = w[1].parse().expect("--samples N"),
            "--pods" => levels = w[1].split(',').map(|s| s.parse().expect("--pods 1,100,250")).collect(),
            "--hostport" => {}
            "--backend" => backend = w[1].clone(),
            _ => {}
        }
    }
    let hostport = args.iter().any(|a| a == "--hostport");
    let home_fd = File::open("/proc/self/ns/net").expect("open own netns");
    let go_home = || {
        // SAFETY: back to where we started; the bench is single-threaded.
        assert_eq!(unsafe { libc::setns(home_fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
    };
    let mut rows = Vec::new();
    for &pods in &levels {
        // Both chains are set up side by side and measured alternately, sample
        // by sample, so drifting machine noise hits both alike.
        let setups: Vec<Setup> = [Plugin::Weavice, Plugin::Reference]
            .into_iter()
            .map(|p| Setup::new(p, pods, samples, hostport, &backend))
            .collect();
        for via in [Via::Direct, Via::Cnitool] {
            let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![(Vec::new(), Vec::new()); setups.len()];
            for i in 0..samples + WARMUP {
                for (s, t) in setups.iter().zip(times.iter_mut()) {
                    enter(&s.node.path());
                    let id = format!("probe{i}");
                    std::thread::sleep(SETTLE);
                    let add = s.bench.run(via, "ADD", &id, &s.probes[i]);
                    std::thread::sleep(SETTLE);
                    let del = s.bench.run(via, "DEL", &id, &s.probes[i]);
                    if i >= WARMUP {
                        t.0.push(add);
                        t.1.push(del);
                    }
                }
            }
            for (s, (mut adds, mut dels)) in setups.iter().zip(times) {
                enter(&s.node.path());
                // the same population as during ADD: one probe pod on top of the residents
                s.bench.run(via, "ADD", "count", &s.probes[0]);
                let rules = rule_count();
                s.bench.run(via, "DEL", "count", &s.probes[0]);
                rows.push(Row {
                    plugin: s.bench.plugin,
                    via,
                    pods,
                    add50: pct(&mut adds, 0.5),
                    add95: pct(&mut adds, 0.95),
                    del50: pct(&mut dels, 0.5),
                    del95: pct(&mut dels, 0.95),
                    rules,
                });
            }
            eprintln!("done: {pods} pods, {}", if via == Via::Direct { "direct" } else { "cnitool" });
        }
        for s in &setups {
            enter(&s.node.path());
            for (i, p) in s.resident.iter().enumerate() {
                s.bench.run(Via::Direct, "DEL", &format!("resident{i}"), p);
            }
        }
        go_home();
    }
    let reference = if hostport { "bridge + host-local + portmap" } else { "bridge + host-local" };
    println!("reference = {reference}; one hostPort per pod: {hostport}; weavice firewallBackend: {backend}\n");
    print_tables(&rows, &levels, samples);
}

fn print_tables(rows: &[Row], levels: &[usize], samples: usize) {
    println!("{samples} ADD+DEL pairs per row after {WARMUP} discarded, sequential, {} ms pause before each operation, the two chains alternating sample by sample; times in ms, wall clock from spawn to exit.\n", SETTLE.as_millis());
    println!("| plugin | via | pods on node | ADD p50 | ADD p95 | DEL p50 | DEL p95 | rules |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let via = if r.via == Via::Direct { "direct" } else { "cnitool" };
        println!(
            "| {} | {via} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.plugin.name(),
            r.pods,
            r.add50,
            r.add95,
            r.del50,
            r.del95,
            r.rules
        );
    }
    println!("\nRatios reference / weavice (higher is better for weavice):\n");
    println!("| via | pods on node | ADD p50 | DEL p50 | ADD p95 |");
    println!("|---|---|---|---|---|");
    for via in [Via::Direct, Via::Cnitool] {
        for &pods in levels {
            let find = |p| rows.iter().find(|r| r.via == via && r.pods == pods && r.plugin == p);
            if let (Some(w), Some(f)) = (find(Plugin::Weavice), find(Plugin::Reference)) {
                let name = if via == Via::Direct { "direct" } else { "cnitool" };
                println!(
                    "| {name} | {pods} | {:.1}x | {:.1}x | {:.1}x |",
                    f.add50 / w.add50,
                    f.del50 / w.del50,
                    f.add95 / w.add95
                );
            }
        }
    }
    let (lo, hi) = (levels.iter().min().copied().unwrap_or(1), levels.iter().max().copied().unwrap_or(1));
    println!("\nFlatness: ADD p95 at {hi} pods / ADD p95 at {lo} pod(s):\n");
    println!("| plugin | via | ratio |");
    println!("|---|---|---|");
    for plugin in [Plugin::Weavice, Plugin::Reference] {
        for via in [Via::Direct, Via::Cnitool] {
            let find = |n| rows.iter().find(|r| r.via == via && r.pods == n && r.plugin == plugin);
            if let (Some(a), Some(b)) = (find(lo), find(hi)) {
                let name = if via == Via::Direct { "direct" } else { "cnitool" };
                println!("| {} | {name} | {:.2} |", plugin.name(), b.add95 / a.add95);
            }
        }
    }
}
