//! What a pod's network costs inside real runtimes, against the reference
//! plugins in the same run: podman `run -d -p 8080:80` and `rm -f`, and
//! containerd's RunPodSandbox (one hostPort), StopPodSandbox and
//! RemovePodSandbox, each runtime in a node of its own (tests/src/runtime/)
//! once on a weavice conflist and once on bridge + host-local + portmap.
//! The runtime's own work is in both; the difference is the plugins'.
//! Prints medians, p95 and reference / weavice.
//!
//! Usage: weavice-runtime-bench [--samples N]   (hack/bench.sh --runtimes; root)

use serde_json::{json, Value};
use std::time::Instant;
use weavice_tests::runtime::containerd::Containerd;
use weavice_tests::runtime::podman::Podman;
use weavice_tests::runtime::{busybox_rootfs, oci_archive, RuntimeNode};
use weavice_tests::{percentile, require_root};

const NET: &str = "benchnet";
const IMAGE: &str = "localhost/wvbox:1";
/// Pods before the measured ones: the first ADD makes the bridge and rules.
const WARMUP: usize = 2;

#[derive(Clone, Copy, PartialEq)]
enum Plugins {
    Weavice,
    Reference,
}

/// The network's conflist in `rt`; its directory.
fn conflist(rt: &RuntimeNode, plugins: Plugins) -> String {
    match plugins {
        Plugins::Weavice => rt.write_conflist(NET),
        Plugins::Reference => rt.node.write_conflist(
            NET,
            "1.0.0",
            vec![
                json!({"type": "bridge", "bridge": "cnib0", "isGateway": true, "ipMasq": true,
                    "ipam": {"type": "host-local", "dataDir": rt.node.dir.path("ipam"),
                        "ranges": [[{"subnet": "10.88.0.0/24"}]]}}),
                json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            ],
        ),
    }
}

/// Milliseconds of each step, `samples` pods in turn.
type Steps = Vec<(&'static str, Vec<f64>)>;

fn podman(plugins: Plugins, samples: usize) -> Steps {
    let rt = RuntimeNode::new("rbp");
    let podman = Podman::new(&rt, &conflist(&rt, plugins));
    podman.run(&["import", "--change", r#"CMD ["/bin/sleep", "600"]"#, &busybox_rootfs(&rt.node.dir), IMAGE]);
    let (mut run, mut rm) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + samples {
        let name = format!("b{i}");
        let t = Instant::now();
        podman.run(&["run", "-d", "--cgroups=disabled", "--network", NET, "-p", "8080:80", "--name", &name, IMAGE]);
        let ran = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        podman.run(&["rm", "-f", "-t", "0", &name]);
        if i >= WARMUP {
            run.push(ran);
            rm.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    vec![("podman run -d -p", run), ("podman rm -f", rm)]
}

fn containerd(plugins: Plugins, samples: usize) -> Steps {
    let rt = RuntimeNode::new("rbc");
    let ctd = Containerd::start(&rt, &conflist(&rt, plugins), IMAGE);
    ctd.import(&oci_archive(&rt.node.dir, &busybox_rootfs(&rt.node.dir), IMAGE, &["/bin/sleep", "86400"]));
    let n = (WARMUP + samples).to_string();
    let times: Value = serde_json::from_str(&ctd.cri(&["bench", &n, "8080:80"])).expect("cri.py bench output");
    let step = |key: &str| -> Vec<f64> {
        times[key].as_array().into_iter().flatten().skip(WARMUP).filter_map(Value::as_f64).collect()
    };
    vec![
        ("RunPodSandbox (hostPort)", step("run")),
        ("StopPodSandbox", step("stop")),
        ("RemovePodSandbox", step("remove")),
    ]
}

fn main() {
    if !require_root() {
        std::process::exit(1);
    }
    let args: Vec<String> = std::env::args().collect();
    let samples = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20usize)
        .max(1);
    println!("{samples} pods per runtime and plugin set, after {WARMUP} unmeasured; reference = bridge + host-local + portmap\n");
    println!(
        "| runtime step | weavice p50 | weavice p95 | reference p50 | reference p95 | reference / weavice (p50) |"
    );
    println!("|---|---|---|---|---|---|");
    for measure in [podman as fn(Plugins, usize) -> Steps, containerd] {
        let ours = measure(Plugins::Weavice, samples);
        let theirs = measure(Plugins::Reference, samples);
        for ((step, mut w), (_, mut r)) in ours.into_iter().zip(theirs) {
            let (w50, w95, r50, r95) =
                (percentile(&mut w, 0.5), percentile(&mut w, 0.95), percentile(&mut r, 0.5), percentile(&mut r, 0.95));
            println!("| {step} | {w50:.1} ms | {w95:.1} ms | {r50:.1} ms | {r95:.1} ms | {:.2} |", r50 / w50);
        }
    }
}
