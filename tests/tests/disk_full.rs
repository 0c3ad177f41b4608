//! A full disk (issue 14): weavice's state and IPAM data on a tiny tmpfs in
//! a private mount namespace, filled so that ENOSPC hits each write of an
//! ADD in turn (host-port claims, reservations, the allocation cursor, the
//! IPAM index, the network marker, the attachment state). Every failed ADD
//! answers the CNI error JSON (I/O code, a message naming the full disk) and
//! leaves nothing half-done; DEL, CHECK and GC work on the full disk; once
//! space is freed ADD works again and no address is ever held twice.
//!
//! The mount namespace is held by a `sleep` started with `unshare`: slave
//! propagation, so the network namespaces the fixtures make later (shared
//! mounts under /run/netns) appear in it, while nothing mounted in it ever
//! reaches the host. It dies with the sleep (Drop).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use weavice_tests::*;

const PAGE: u64 = 4096;
const NET: &str = "dfnet";

/// A tmpfs mounted in a private mount namespace over a directory of the node.
struct Disk {
    holder: Child,
    mnt: String,
    dir: String,
}

impl Disk {
    fn new(node: &Node, size: &str) -> Disk {
        let dir = node.dir.path("disk");
        std::fs::create_dir_all(&dir).expect("mkdir disk");
        let ours = std::fs::read_link("/proc/self/ns/mnt").expect("our mount namespace");
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "slave", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let mnt = format!("/proc/{}/ns/mnt", holder.id());
        let mut disk = Disk { holder, mnt, dir };
        // unshare execs sleep in the same process once the namespace is made
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(&disk.mnt).map_or(true, |n| n == ours) {
            assert!(Instant::now() < deadline, "unshare made no mount namespace");
            assert!(disk.holder.try_wait().expect("poll unshare").is_none(), "unshare exited");
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = disk.sh(&format!("mount -t tmpfs -o size={size},mode=0700 tmpfs {}", disk.dir));
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!host.contains(&disk.dir), "the tmpfs must not be mounted in the host's namespace");
        disk
    }

    /// `sh -c script` inside the mount namespace.
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--mount={}", self.mnt))
            .args(["sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("run nsenter")
    }

    fn out(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.dir)
    }

    /// weavice in the node's network namespace and this mount namespace, the
    /// environment set up as `Node::invoke` does.
    fn invoke(&self, node: &Node, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--mount={}", self.mnt))
            .arg(format!("--net={}", node.ns.path()))
            .arg(bin("weavice"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", cni_path());
        run_plugin(cmd, env, stdin)
    }

    /// Every file on the disk but the filler and the journal (a record of
    /// what happened, kept by design): path relative to it, size.
    fn files(&self) -> BTreeMap<String, u64> {
        self.out(&format!("find {} -type f -printf '%P\\t%s\\n'", self.dir))
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(p, _)| *p != "filler" && !p.starts_with("state/journal/"))
            .map(|(p, s)| (p.to_string(), s.parse().unwrap()))
            .collect()
    }

    fn cat(&self, rel: &str) -> String {
        String::from_utf8_lossy(&self.sh(&format!("cat {}", self.path(rel))).stdout).into_owned()
    }

    fn free_pages(&self) -> u64 {
        let s = self.out(&format!("stat -f -c '%a %S' {}", self.dir));
        let mut it = s.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        let (avail, bsize) = (it.next().unwrap(), it.next().unwrap());
        avail * bsize / PAGE
    }

    /// Fills the disk, then frees exactly `pages` pages of it.
    fn fill_leaving(&self, pages: u64) {
        let filler = self.path("filler");
        // dd stops with ENOSPC, which is the point
        let _ = self.sh(&format!("dd if=/dev/zero of={filler} bs=4k oflag=append conv=notrunc 2>/dev/null"));
        assert_eq!(self.free_pages(), 0, "the disk is full");
        if pages > 0 {
            let size: u64 = self.out(&format!("stat -c %s {filler}")).trim().parse().unwrap();
            assert!(size >= pages * PAGE, "the filler holds only {size} bytes: make the tmpfs bigger");
            self.out(&format!("truncate -s {} {filler}", size - pages * PAGE));
        }
        assert_eq!(self.free_pages(), pages, "free pages after filling");
    }

    fn unfill(&self) {
        self.out(&format!("rm -f {}", self.path("filler")));
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Files that are no state of any pod: lock files (never removed, so no
/// waiter loses one), IPAM's allocation cursors, network markers.
fn network_level(path: &str) -> bool {
    path.ends_with("/lock")
        || path.contains("locks/")
        || path.contains("/last_reserved_ip.")
        || path.starts_with("state/networks/")
}

fn pod_files(files: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    files.iter().filter(|(p, _)| !network_level(p)).map(|(p, s)| (p.clone(), *s)).collect()
}

/// What a call changed in a file listing: (added or grown/shrunk, removed).
fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> (Vec<String>, Vec<String>) {
    let changed = after
        .iter()
        .filter(|(p, s)| before.get(*p) != Some(s))
        .map(|(p, s)| format!("{p} ({s} bytes{})", if *s == 0 { ", empty" } else { "" }))
        .collect();
    let gone = before.keys().filter(|p| !after.contains_key(*p)).cloned().collect();
    (changed, gone)
}

fn lines_diff(before: &str, after: &str) -> String {
    let (b, a): (BTreeSet<&str>, BTreeSet<&str>) = (before.lines().collect(), after.lines().collect());
    let minus: Vec<_> = b.difference(&a).map(|l| format!("- {l}")).collect();
    let plus: Vec<_> = a.difference(&b).map(|l| format!("+ {l}")).collect();
    [minus, plus].concat().join("\n")
}

fn mapped_elements(node: &Node) -> (usize, usize) {
    (inet_elements(&node.ns, "hostport_v4"), inet_elements(&node.ns, "hostport_v6"))
}

/// Links of the node other than lo and the bridge, once retired veths are gone.
fn pod_links(node: &Node, expected: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let links: Vec<String> = node.ns.links().into_iter().filter(|l| l != "lo" && l != "wv0").collect();
        if links.len() == expected || Instant::now() > deadline {
            return links;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addresses(r: &Reply) -> Vec<String> {
    r.json["ips"]
        .as_array()
        .map(|ips| {
            ips.iter().filter_map(|i| i["address"].as_str()).map(|a| a.split('/').next().unwrap().to_string()).collect()
        })
        .unwrap_or_default()
}

/// The IPAM reservations on the disk: address, holder.
fn reservations(disk: &Disk) -> BTreeMap<String, String> {
    disk.files()
        .keys()
        .filter_map(|p| p.strip_prefix(&format!("ipam/{NET}/")))
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .map(|ip| (ip.to_string(), disk.cat(&format!("ipam/{NET}/{ip}")).replace("\r\n", "/")))
        .collect()
}

/// A weavice network whose state and IPAM data live on `disk`.
struct Net<'a> {
    node: &'a Node,
    disk: &'a Disk,
}

impl Net<'_> {
    fn conf(&self, mappings: Value) -> Value {
        let mut extra = json!({
            "stateDir": self.disk.path("state"),
            "ipam": {
                "type": "weavice-ipam",
                "dataDir": self.disk.path("ipam"),
                "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]]
            }
        });
        if !mappings.is_null() {
            merge(&mut extra, json!({"runtimeConfig": {"portMappings": mappings}}));
        }
        // logFile stays in node.dir: readable afterwards, and no space eaten
        self.node.conf("1.1.0", NET, extra)
    }

    fn cni(&self, verb: &str, conf: &Value, id: &str, pod: &Netns) -> Reply {
        let netns = pod.path();
        let env = [("CNI_COMMAND", verb), ("CNI_CONTAINERID", id), ("CNI_NETNS", &netns), ("CNI_IFNAME", "eth0")];
        self.disk.invoke(self.node, &env, conf.to_string().as_bytes())
    }

    fn gc(&self, keep: &[&str]) -> Reply {
        let mut conf = self.conf(Value::Null);
        let valid: Vec<Value> = keep.iter().map(|id| json!({"containerID": id, "ifname": "eth0"})).collect();
        merge(&mut conf, json!({"cni.dev/valid-attachments": valid}));
        self.disk.invoke(self.node, &[("CNI_COMMAND", "GC")], conf.to_string().as_bytes())
    }
}

/// Two mappings, so a full disk can strike between the two claims.
fn two_ports(base: u16) -> Value {
    json!([{"hostPort": base, "containerPort": 80, "protocol": "tcp"}, {"hostPort": base + 1, "containerPort": 53, "protocol": "udp"}])
}

/// What is wrong with the answer to an ADD that met a full disk.
fn enospc_answer(r: &Reply, disk: &Disk) -> Vec<String> {
    let mut bad = Vec::new();
    if r.ok {
        bad.push("exit status 0".into());
    }
    if r.json["cniVersion"].as_str().is_none() {
        bad.push(format!("no CNI error JSON on stdout: {:?}", r.stdout));
        return bad;
    }
    if r.json["code"] != 5 {
        bad.push(format!("code {} (want 5, I/O error)", r.json["code"]));
    }
    let msg = r.json["msg"].as_str().unwrap_or_default();
    if !msg.contains("No space left") {
        bad.push(format!("msg does not say the disk is full: {msg:?}"));
    }
    if !msg.contains(&disk.dir) {
        bad.push(format!("msg does not name the file or directory on the full disk ({}): {msg:?}", disk.dir));
    }
    bad
}

/// Which write a failed ADD's message names (for the report).
fn write_named(r: &Reply) -> String {
    r.json["msg"].as_str().unwrap_or(&r.stdout).to_string()
}

/// A pod is in; the disk fills so that only `n` pages are free; a second pod
/// with two host ports is added (n = 0, 1, 2, ...: ENOSPC at each write in
/// turn, until it fits). Each failed ADD must answer an I/O error and leave
/// nothing: links, netfilter and per-pod files as before. On the full disk CHECK and GC of the
/// live pod keep it, GC removes what the failed ADD left, DEL of both pods
/// works; with space again, GC and everything is gone.
#[test]
fn a_full_disk_fails_add_cleanly_at_every_write_and_del_and_gc_still_clean() {
    if !require_root() {
        return;
    }
    let node = Node::new("df");
    let disk = Disk::new(&node, "256k");
    let net = Net { node: &node, disk: &disk };
    let live_pod = Netns::new("dfl");
    let new_pod = Netns::new("dfn");
    let other_pod = Netns::new("dfo");
    let mut problems: Vec<String> = Vec::new();
    let mut points: Vec<String> = Vec::new();
    let mut fitted = None;

    for n in 0..12u64 {
        let p = |what: String| format!("{n} free pages: {what}");
        let live = format!("live{n}");
        let new = format!("new{n}");
        let other = format!("other{n}");
        let r = net.cni("ADD", &net.conf(json!([{"hostPort": 8080, "containerPort": 80}])), &live, &live_pod);
        assert!(r.ok, "{}", p(format!("ADD {live} with space free: {} {}", r.stdout, r.stderr)));
        let live_ips = addresses(&r);
        assert_eq!(live_ips.len(), 2, "{}", r.stdout);
        let (files, links, rules, elements) =
            (disk.files(), pod_links(&node, 1), firewall_dump(&node.ns), mapped_elements(&node));
        assert_eq!(elements, (1, 1), "{}", p("the live pod's mapping".into()));

        disk.fill_leaving(n);
        let r = net.cni("ADD", &net.conf(two_ports(9000)), &new, &new_pod);
        let added = r.ok;
        if added {
            fitted = Some(n);
            let ips = addresses(&r);
            for ip in &ips {
                if live_ips.contains(ip) {
                    problems.push(p(format!("{new} got {ip}, which {live} holds")));
                }
            }
            assert_eq!(mapped_elements(&node), (3, 3), "{}", p("both pods mapped".into()));
        } else {
            points.push(format!("{n} free pages: {}", write_named(&r)));
            problems.extend(enospc_answer(&r, &disk).into_iter().map(|b| p(format!("ADD answer: {b}"))));
            // nothing of the refused pod in the kernel
            if pod_links(&node, 1) != links {
                problems.push(p(format!("a veth was left: {:?}", node.ns.links())));
            }
            if new_pod.links() != ["lo"] {
                problems.push(p(format!("the pod keeps {:?}", new_pod.links())));
            }
            let now = firewall_dump(&node.ns);
            if now != rules {
                problems.push(p(format!("netfilter changed:\n{}", lines_diff(&rules, &now))));
            }
            let (changed, gone) = diff(&pod_files(&files), &pod_files(&disk.files()));
            if !changed.is_empty() {
                problems.push(p(format!("ADD left files: {changed:?}")));
            }
            if !gone.is_empty() {
                problems.push(p(format!("ADD removed files of the live pod: {gone:?}")));
            }
            // what a half-done ADD would cost: with space again, before any
            // GC or DEL, another pod asks for the same host ports
            disk.unfill();
            let r = net.cni("ADD", &net.conf(two_ports(9000)), &other, &other_pod);
            if r.ok {
                let taken: Vec<_> = addresses(&r).into_iter().filter(|ip| live_ips.contains(ip)).collect();
                if !taken.is_empty() {
                    problems.push(p(format!("{other} got {taken:?}, which {live} holds")));
                }
                if !net.cni("DEL", &net.conf(Value::Null), &other, &other_pod).ok {
                    problems.push(p(format!("DEL {other}")));
                }
                pod_links(&node, 1);
            } else {
                problems.push(p(format!("with space again another pod cannot have the ports: {}", r.stdout)));
            }
        }

        // the disk entirely full from here on
        disk.fill_leaving(0);
        let r = net.cni("CHECK", &net.conf(json!([{"hostPort": 8080, "containerPort": 80}])), &live, &live_pod);
        if !r.ok {
            problems.push(p(format!("CHECK of {live} on the full disk: {}", r.stdout)));
        }
        // the runtime lists the pods it has; the failed one is not among them
        let keep: Vec<&str> = if added { vec![live.as_str(), new.as_str()] } else { vec![live.as_str()] };
        let before_gc = (disk.files(), firewall_dump(&node.ns));
        let r = net.gc(&keep);
        if !r.ok {
            problems.push(p(format!("GC keeping {keep:?} on the full disk failed: {}", r.stdout)));
        }
        let (changed, gone) = diff(&pod_files(&files), &pod_files(&disk.files()));
        if !added && (!changed.is_empty() || !gone.is_empty()) {
            problems.push(p(format!("after GC on the full disk: left {changed:?}, lost {gone:?}")));
        }
        if added && !gone.is_empty() {
            problems.push(p(format!("GC removed files of listed pods: {gone:?}")));
        }
        if !added && firewall_dump(&node.ns) != rules {
            problems.push(p(format!("GC changed netfilter:\n{}", lines_diff(&rules, &firewall_dump(&node.ns)))));
        }
        if added && firewall_dump(&node.ns) != before_gc.1 {
            problems.push(p("GC changed the listed pods' netfilter state".into()));
        }
        let r = net.cni("CHECK", &net.conf(json!([{"hostPort": 8080, "containerPort": 80}])), &live, &live_pod);
        if !r.ok {
            problems.push(p(format!("CHECK of {live} after GC listed it: {}", r.stdout)));
        }

        // DEL of the failed pod (runtimes DEL a sandbox whose ADD failed) and of the live one
        let r = net.cni("DEL", &net.conf(two_ports(9000)), &new, &new_pod);
        if !r.ok {
            problems.push(p(format!("DEL {new} on the full disk: {}", r.stdout)));
        }
        let r = net.cni("DEL", &net.conf(Value::Null), &live, &live_pod);
        if !r.ok {
            problems.push(p(format!("DEL {live} on the full disk: {}", r.stdout)));
        }
        let left = pod_files(&disk.files());
        if !left.is_empty() {
            problems.push(p(format!("after both DELs on the full disk: {left:?}")));
        }
        if mapped_elements(&node) != (0, 0) {
            problems.push(p(format!("mappings after DEL: {:?}", mapped_elements(&node))));
        }
        let links = pod_links(&node, 0);
        if !links.is_empty() {
            problems.push(p(format!("links after DEL: {links:?}")));
        }
        let r = net.gc(&[]);
        if !r.ok {
            problems.push(p(format!("GC of nothing on the full disk: {}", r.stdout)));
        }

        // space again: GC, and the node is clean for the next round
        disk.unfill();
        let r = net.gc(&[]);
        if !r.ok {
            problems.push(p(format!("GC with space free: {}", r.stdout)));
        }
        let left = pod_files(&disk.files());
        if !left.is_empty() {
            problems.push(p(format!("left after DEL and GC: {left:?}")));
            // the next round must start clean to mean anything
            disk.out(&format!(
                "rm -rf {} {} {}",
                disk.path("state/attachments"),
                disk.path("state/hostports"),
                disk.path(&format!("ipam/{NET}/attachments"))
            ));
            for ip in reservations(&disk).keys() {
                disk.out(&format!("rm -f {}", disk.path(&format!("ipam/{NET}/{ip}"))));
            }
        }
        if added {
            break;
        }
    }

    eprintln!("where ENOSPC struck the second ADD:\n  {}", points.join("\n  "));
    let fitted = fitted.expect("the second pod never fitted in 11 pages");
    assert!(fitted >= 5, "the ADD fitted in {fitted} pages: the fill did not reach each write");

    // and the node works as before: a pod with the host ports mapped, reachable
    let r = net.cni("ADD", &net.conf(two_ports(9000)), "after", &new_pod);
    assert!(r.ok, "ADD after the disk was freed: {} {}", r.stdout, r.stderr);
    serve_tcp(&new_pod, "0.0.0.0:80", "after-full");
    assert_eq!(tcp_fetch(&node.ns, "127.0.0.1:9000"), "after-full", "the host port maps to the pod");
    let held = reservations(&disk);
    assert_eq!(held.len(), 2, "one address per family: {held:?}");
    assert!(held.values().all(|h| h == "after/eth0"), "{held:?}");
    assert!(net.cni("DEL", &net.conf(Value::Null), "after", &new_pod).ok);
    assert_eq!(pod_files(&disk.files()), BTreeMap::new());
    assert_eq!(mapped_elements(&node), (0, 0));

    assert!(problems.is_empty(), "{} problems:\n{}\nlog:\n{}", problems.len(), problems.join("\n"), node.log());
}

/// The first ADD of a network on a disk with `n` pages free: the network's
/// own files (marker, cursors) compete for the space too. A failed ADD
/// leaves no pod and nothing of it on disk once GC ran on the still-full
/// disk; with space again the same container ID is added (a runtime's
/// retry) with its ports, and DEL leaves nothing.
#[test]
fn the_first_add_on_a_full_disk_leaves_a_network_that_adds_after_gc() {
    if !require_root() {
        return;
    }
    let mut problems: Vec<String> = Vec::new();
    let mut points: Vec<String> = Vec::new();
    let mut fitted = None;
    for n in 0..14u64 {
        let p = |what: String| format!("{n} free pages: {what}");
        let node = Node::new("df1");
        let disk = Disk::new(&node, "128k");
        let net = Net { node: &node, disk: &disk };
        let pod = Netns::new("df1p");
        disk.fill_leaving(n);
        let r = net.cni("ADD", &net.conf(two_ports(7000)), "first", &pod);
        if r.ok {
            fitted = Some(n);
            assert!(net.cni("DEL", &net.conf(Value::Null), "first", &pod).ok);
            assert_eq!(pod_files(&disk.files()), BTreeMap::new());
            break;
        }
        points.push(format!("{n} free pages: {}", write_named(&r)));
        problems.extend(enospc_answer(&r, &disk).into_iter().map(|b| p(format!("ADD answer: {b}"))));
        let links = pod_links(&node, 0);
        if !links.is_empty() {
            problems.push(p(format!("veth left: {links:?}")));
        }
        if pod.links() != ["lo"] {
            problems.push(p(format!("the pod keeps {:?}", pod.links())));
        }
        if mapped_elements(&node) != (0, 0) {
            problems.push(p(format!("mappings left: {:?}", mapped_elements(&node))));
        }
        let left = pod_files(&disk.files());
        if !left.is_empty() {
            problems.push(p(format!("ADD left files: {left:?}")));
        }

        // a DEL (runtimes DEL after a failed ADD, without runtimeConfig) and GC, disk full
        disk.fill_leaving(0);
        let r = net.cni("DEL", &net.conf(Value::Null), "first", &pod);
        if !r.ok {
            problems.push(p(format!("DEL on the full disk: {}", r.stdout)));
        }
        let after_del = pod_files(&disk.files());
        let r = net.gc(&[]);
        if !r.ok {
            problems.push(p(format!("GC on the full disk: {}", r.stdout)));
        }
        let after_gc = pod_files(&disk.files());
        if !after_gc.is_empty() {
            problems.push(p(format!("left after DEL and GC on the full disk: {after_gc:?}")));
        } else if !after_del.is_empty() {
            eprintln!("{n} free pages: DEL left {after_del:?}, GC removed it");
        }

        // space again: the runtime's retry gets in, ports and all
        disk.unfill();
        let r = net.cni("ADD", &net.conf(two_ports(7000)), "first", &pod);
        if !r.ok {
            problems.push(p(format!("ADD with space again: {}", r.stdout)));
            continue;
        }
        if mapped_elements(&node) != (2, 2) {
            problems.push(p(format!("mappings after the retried ADD: {:?}", mapped_elements(&node))));
        }
        let held = reservations(&disk);
        if held.len() != 2 || !held.values().all(|h| h == "first/eth0") {
            problems.push(p(format!("reservations after the retried ADD: {held:?}")));
        }
        let marker = disk.cat(&format!("state/networks/{NET}.json"));
        if serde_json::from_str::<Value>(&marker).is_err() {
            problems.push(p(format!("the network marker does not read after the retried ADD: {marker:?}")));
        }
        let r = net.cni("DEL", &net.conf(Value::Null), "first", &pod);
        if !r.ok {
            problems.push(p(format!("DEL with space: {}", r.stdout)));
        }
        let left = pod_files(&disk.files());
        if !left.is_empty() || mapped_elements(&node) != (0, 0) || !pod_links(&node, 0).is_empty() {
            problems.push(p(format!("after the last DEL: {left:?} {:?}", mapped_elements(&node))));
        }
    }
    eprintln!("where ENOSPC struck the first ADD:\n  {}", points.join("\n  "));
    let fitted = fitted.expect("the first pod never fitted in 13 pages");
    assert!(fitted >= 7, "the first ADD fitted in {fitted} pages: the fill did not reach each write");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// No filler: pods with host ports go in until the tiny disk is full. The
/// ADD that does not fit fails cleanly; every pod in keeps its own address;
/// DEL of them all on the full disk works and frees the space, so pods go
/// in again.
#[test]
fn pods_go_in_until_the_disk_is_full_and_again_once_they_left() {
    if !require_root() {
        return;
    }
    let node = Node::new("dfn");
    let disk = Disk::new(&node, "64k");
    let net = Net { node: &node, disk: &disk };
    let pods: Vec<Netns> = (0..8).map(|i| Netns::new(&format!("dfn{i}"))).collect();
    let mut problems: Vec<String> = Vec::new();
    let mut held: BTreeMap<String, String> = BTreeMap::new();
    let mut ins = Vec::new();
    let mut refused = None;
    for (i, pod) in pods.iter().enumerate() {
        let id = format!("p{i}");
        let (files, rules) = (disk.files(), firewall_dump(&node.ns));
        let r = net.cni("ADD", &net.conf(two_ports(10000 + 10 * i as u16)), &id, pod);
        if r.ok {
            for ip in addresses(&r) {
                if let Some(other) = held.insert(ip.clone(), id.clone()) {
                    problems.push(format!("{ip} given to {id} and {other}"));
                }
            }
            ins.push(i);
            continue;
        }
        refused = Some(i);
        eprintln!("pod {i} did not fit: {}", write_named(&r));
        problems.extend(enospc_answer(&r, &disk).into_iter().map(|b| format!("ADD {id}: {b}")));
        if pod.links() != ["lo"] || pod_links(&node, ins.len()).len() != ins.len() {
            problems.push(format!("ADD {id} left links: pod {:?}, node {:?}", pod.links(), node.ns.links()));
        }
        let now = firewall_dump(&node.ns);
        if now != rules {
            problems.push(format!("ADD {id} changed netfilter:\n{}", lines_diff(&rules, &now)));
        }
        let (changed, _) = diff(&pod_files(&files), &pod_files(&disk.files()));
        if !changed.is_empty() {
            problems.push(format!("ADD {id} left files: {changed:?}"));
        }
        break;
    }
    let refused = refused.expect("eight pods fitted on a 64k disk: the disk never filled");
    assert!(!ins.is_empty(), "not even one pod fitted on 64k");

    let keep: Vec<String> = ins.iter().map(|i| format!("p{i}")).collect();
    let r = net.gc(&keep.iter().map(String::as_str).collect::<Vec<_>>());
    if !r.ok {
        problems.push(format!("GC keeping the pods in, on the full disk: {}", r.stdout));
    }
    let r = net.cni("DEL", &net.conf(Value::Null), &format!("p{refused}"), &pods[refused]);
    if !r.ok {
        problems.push(format!("DEL of the refused pod on the full disk: {}", r.stdout));
    }
    for &i in &ins {
        let r = net.cni("DEL", &net.conf(Value::Null), &format!("p{i}"), &pods[i]);
        if !r.ok {
            problems.push(format!("DEL p{i} on the full disk: {}", r.stdout));
        }
    }
    let left = pod_files(&disk.files());
    if !left.is_empty() {
        problems.push(format!("left after every DEL: {left:?}"));
    }
    assert_eq!(mapped_elements(&node), (0, 0));
    assert_eq!(pod_links(&node, 0), Vec::<String>::new());
    assert!(net.gc(&[]).ok);

    // the space DEL freed takes as many pods again
    for &i in &ins {
        let r = net.cni("ADD", &net.conf(two_ports(10000 + 10 * i as u16)), &format!("q{i}"), &pods[i]);
        if !r.ok {
            problems.push(format!("ADD q{i} after the DELs: {}", r.stdout));
        }
    }
    for &i in &ins {
        assert!(net.cni("DEL", &net.conf(Value::Null), &format!("q{i}"), &pods[i]).ok);
    }
    assert!(problems.is_empty(), "{} problems:\n{}\nlog:\n{}", problems.len(), problems.join("\n"), node.log());
}
