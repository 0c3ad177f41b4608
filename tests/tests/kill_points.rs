//! Issue 14's kill-point measurement: weavice is SIGKILLed at random points of
//! ADD and of DEL, with and without hostPorts, and then one cleanup runs, DEL
//! alone or GC alone. Whatever the attachment still holds afterwards is a leak:
//! host veths (wv*, wb*, retired wx*), IPAM reservations and index files, saved
//! state, host-port claims, hostport/hairpin map elements, anti-spoofing set
//! elements, processes left in the node. A live pod added first must come out whole, and no address may go
//! to two pods.
//!
//! WEAVICE_KILL_POINTS: points per scenario (default 100). WEAVICE_KILL_SEED:
//! the base seed (decimal or 0x hex); scenario k draws its delays from seed + k
//! (xorshift64*, printed as "seed BASE+k") as fractions of the kill window T.
//! T follows how fast the plugin runs (it shrinks when the plugin exited before
//! its kill, grows when the kill landed), so a rerun with the same seed draws
//! the same fractions; the delays and where they land still vary with timing.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weavice_tests::leftovers::{held_for_pods, Thing};
use weavice_tests::*;

const NET: &str = "kpnet";
const SEED: u64 = 0x5eed_0014_0000_0000;

/// xorshift64*: uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A number from the environment, decimal or 0x hex.
fn env_or(name: &str, default: u64) -> u64 {
    let v = std::env::var(name).unwrap_or_default();
    v.strip_prefix("0x").map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok()).unwrap_or(default)
}

/// weavice started in the node as Node::invoke does (`ip netns exec` execs,
/// so the child is the plugin), its config written and stdin closed.
fn spawn(node: &Node, verb: &str, conf: &Value, id: &str, netns: &str) -> Child {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node.ns.name, &bin("weavice")])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_PATH", cni_path())
        .envs([("CNI_COMMAND", verb), ("CNI_CONTAINERID", id), ("CNI_NETNS", netns), ("CNI_IFNAME", "eth0")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weavice");
    child.stdin.take().expect("stdin").write_all(conf.to_string().as_bytes()).expect("write stdin");
    child
}

/// Everything on the node that belongs to some attachment, and processes
/// left in it.
fn inventory(node: &Node) -> BTreeSet<Thing> {
    let mut out = held_for_pods(node, NET);
    // processes in the node namespace (none of ours runs now)
    let ns = format!("net:[{}]", std::fs::metadata(node.ns.path()).map(|m| m.ino()).unwrap_or(0));
    let in_node = |p: &Path| std::fs::read_link(p.join("ns/net")).is_ok_and(|l| l == Path::new(&ns));
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if pid.parse::<u32>().is_ok() && in_node(&p.path()) {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.insert(("process", format!("{pid} {}", comm.trim())));
        }
    }
    out
}

/// The inventory once DEL's background child (it deletes the retired veth
/// after DEL answers) is done: new wx veths and processes get a second to go.
fn settled(node: &Node, before: &BTreeSet<Thing>) -> BTreeSet<Thing> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = inventory(node);
        let busy = now.difference(before).any(|(k, _)| *k == "retired wx veth" || *k == "process");
        if !busy || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn addresses(result: &Value) -> Vec<String> {
    let ips = result["ips"].as_array().into_iter().flatten();
    ips.filter_map(|i| i["address"].as_str()?.split('/').next().map(String::from)).collect()
}

/// One scenario: its table line (and leaking points), and its leak count.
fn scenario(k: u64, ports: bool, kill: &str, cleanup: &str, points: usize) -> (String, usize) {
    let node = Node::new("kp");
    let mapped = |port: u16| match ports {
        true => json!({"runtimeConfig": {"portMappings": [
            {"hostPort": port, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": port, "containerPort": 53, "protocol": "udp"}]}}),
        false => json!({}),
    };
    // every point maps the same host ports: a claim or DNAT left behind fails the next ADD
    let conf = node.conf("1.1.0", NET, mapped(9000));
    let live_conf = node.conf("1.1.0", NET, mapped(8000));
    let gc = node.conf("1.1.0", NET, json!({"cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]}));
    let run_gc = || node.invoke("weavice", &[("CNI_COMMAND", "GC")], gc.to_string().as_bytes());
    let live = Netns::new("kpl");
    let r = node.cni("ADD", &live_conf, "live", &live.path(), "eth0");
    assert!(r.ok, "live pod: {}", r.stdout);
    let live_ips = addresses(&r.json);

    // T: the p95 of 20 unkilled runs of the verb (stdin written to exit), so one
    // slow outlier on a busy machine does not stretch it; kills come at uniform
    // delays in [0, T)
    let mut times = Vec::new();
    for i in 0..20 {
        let pod = Netns::new("kpc");
        for verb in ["ADD", "DEL"] {
            let mut child = spawn(&node, verb, &conf, &format!("cal{i}"), &pod.path());
            let t = Instant::now();
            assert!(child.wait().expect("wait").success(), "calibration {verb} {i} failed");
            if verb == kill {
                times.push(t.elapsed());
            }
        }
    }
    times.sort();
    let calibrated = times[times.len() * 95 / 100 - 1];
    let mut t = calibrated;
    let whole = settled(&node, &BTreeSet::new());
    let count = |kind: &str| whole.iter().filter(|(k, _)| *k == kind).count();
    assert_eq!((count("reservation"), count("state file")), (2, 1), "only the live pod: {whole:?}");

    let base = env_or("WEAVICE_KILL_SEED", SEED);
    let mut rng = Rng(base.wrapping_add(k) | 1);
    let (mut baseline, mut by_kind) = (whole.clone(), BTreeMap::<&str, usize>::new());
    let (mut leaky, mut finished, mut details) = (0, 0, String::new());
    // a kill that came after the plugin exited is no kill point: run until
    // `points` kills landed
    let mut i = 0;
    while i - finished < points && i < points * 5 {
        i += 1;
        let delay = t.mul_f64(rng.unit());
        let pod = Netns::new("kpp");
        let id = format!("kp{k}-{i}");
        let mut left: Vec<Thing> = Vec::new();
        if kill == "DEL" {
            let r = node.cni("ADD", &conf, &id, &pod.path(), "eth0");
            if !r.ok {
                left.push(("ADD before the kill failed", r.stdout.trim().to_string()));
            }
        }
        let mut child = spawn(&node, kill, &conf, &id, &pod.path());
        std::thread::sleep(delay);
        // SAFETY: the child is not reaped yet, so its PID is still ours.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        // T follows the machine's pace: a calibration on a busy moment would
        // otherwise make most later runs exit before their kill. Settles where
        // about one run in six exits first, so the last steps get kills too.
        if child.wait().expect("wait").code().is_some() {
            finished += 1;
            t = t.mul_f64(0.9).max(calibrated / 10);
        } else {
            t = t.mul_f64(1.02).min(calibrated * 4);
        }
        let r = if cleanup == "DEL" { node.cni("DEL", &conf, &id, &pod.path(), "eth0") } else { run_gc() };
        if !r.ok {
            left.push(("cleanup failed", r.stdout.trim().to_string()));
        }
        left.extend(settled(&node, &baseline).difference(&baseline).cloned());
        if !left.is_empty() {
            leaky += 1;
            for kind in left.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>() {
                *by_kind.entry(kind).or_default() += 1;
            }
            let what: Vec<String> = left.iter().map(|(k, w)| format!("{k} {w}")).collect();
            details += &format!("    point {i}, delay {} us: {}\n", delay.as_micros(), what.join("; "));
            // cleared the other way, so later points start clean; what stays is counted once
            if cleanup == "GC" {
                node.cni("DEL", &conf, &id, &pod.path(), "eth0");
            }
            run_gc();
            baseline = settled(&node, &baseline);
        }
    }

    // the live pod is whole, a new pod gets addresses of its own, each reservation names one holder
    let mut problems = Vec::new();
    let now = settled(&node, &baseline);
    problems.extend(whole.difference(&now).map(|(k, w)| format!("live pod lost its {k} {w}")));
    let check = node.cni("CHECK", &live_conf, "live", &live.path(), "eth0");
    if !check.ok {
        problems.push(format!("live pod fails CHECK: {}", check.stdout.trim()));
    }
    let next = Netns::new("kpn");
    let r = node.cni("ADD", &conf, "next", &next.path(), "eth0");
    let next_ips = addresses(&r.json);
    if !r.ok {
        problems.push(format!("a new pod's ADD failed: {}", r.stdout.trim()));
    }
    problems.extend(next_ips.iter().filter(|ip| live_ips.contains(ip)).map(|ip| format!("{ip} handed out twice")));
    for (ip, holder) in live_ips.iter().map(|ip| (ip, "live")).chain(next_ips.iter().map(|ip| (ip, "next"))) {
        let held = std::fs::read_to_string(node.dir.path(&format!("ipam/{NET}/{ip}"))).unwrap_or_default();
        if held != format!("{holder}\r\neth0") {
            problems.push(format!("reservation {ip} names {held:?}, not {holder}"));
        }
    }
    node.cni("DEL", &conf, "next", &next.path(), "eth0");

    if i - finished < points {
        problems.push(format!("only {} of {i} kills landed before the plugin exited", i - finished));
    }
    let name = format!("kill during {kill}, {}, cleanup {cleanup}", if ports { "hostPorts" } else { "no hostPorts" });
    let mut line = format!(
        "{name:<44} {} points, {leaky} leaks (T = {} us, at the end {} us, {i} runs, {finished} exited before the kill, seed {base:#x}+{k})\n",
        i - finished,
        calibrated.as_micros(),
        t.as_micros()
    );
    for (kind, n) in &by_kind {
        line += &format!("    {kind}: {n}/{}\n", i - finished);
    }
    line += &details;
    for p in &problems {
        line += &format!("    at the end: {p}\n");
    }
    (line, leaky + problems.len())
}

fn run(ports: bool, first: u64) {
    if !require_root() {
        return;
    }
    let points = env_or("WEAVICE_KILL_POINTS", 100) as usize;
    // sleeps of this thread end on time, not up to 50 us late
    // SAFETY: prctl on the calling thread only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1) };
    let started = Instant::now();
    let (mut table, mut total) = (String::new(), 0);
    let mut k = first;
    for kill in ["ADD", "DEL"] {
        for cleanup in ["DEL", "GC"] {
            let (line, leaks) = scenario(k, ports, kill, cleanup, points);
            table += &line;
            total += leaks;
            k += 1;
        }
    }
    println!("\nkill points ({:.0} s):\n{table}", started.elapsed().as_secs_f64());
    assert_eq!(total, 0, "kill points leaked: see the table above");
}

#[test]
fn killed_adds_and_dels_leave_nothing_after_del_or_gc() {
    run(false, 0);
}

#[test]
fn killed_adds_and_dels_with_host_ports_leave_nothing_after_del_or_gc() {
    run(true, 4);
}
