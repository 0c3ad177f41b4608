//! Fixtures for weavice's integration tests: throwaway network namespaces,
//! plugin invocation inside a test "node", cnitool, and traffic checks.
//!
//! Every test makes its own node namespace (lo up), pod namespaces and state
//! directory with unique names; `Drop` removes them on success and failure.

pub mod kube_api;
pub mod leftovers;
pub mod netpol;
pub mod runtime;

use serde_json::{json, Value};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("wvt-{tag}-{}-{n}", std::process::id())
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    checked(cmd, args, out)
}

/// A finished command's stdout, or a panic with what it printed.
pub fn checked(cmd: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: integration tests need root");
    }
    root
}

/// A named network namespace under /run/netns, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = unique(tag);
        sh("ip", &["netns", "add", &name]);
        sh("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip netns exec NAME cmd args...`
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.name, cmd]).args(args).output().expect("run ip netns exec")
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// Names of the links in this namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let fd = fs::File::open(&path).expect("open netns");
            use std::os::unix::io::AsRawFd;
            // SAFETY: setns on our own descriptor affects only this thread.
            assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique(tag));
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where the release binaries are (hack/test.sh builds them first): the
/// directory this executable was built into; test executables sit in its deps/.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("WEAVICE_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub fn bin(name: &str) -> String {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: run hack/test.sh (or cargo build --release) first", p.display());
    p.to_string_lossy().into_owned()
}

pub fn cnitool() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cnitool");
    assert!(p.exists(), "{} is missing: run hack/build-cnitool.sh", p.display());
    p.to_string_lossy().into_owned()
}

pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// CNI_PATH holding weavice's binaries and the reference plugins.
pub fn cni_path() -> String {
    format!("{}:{REFERENCE_PLUGINS}", bin_dir().display())
}

/// A test node: its own namespace and state directory.
pub struct Node {
    pub ns: Netns,
    pub dir: TempDir,
}

/// What a plugin printed and how it exited.
#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Node {
    pub fn new(tag: &str) -> Self {
        Node { ns: Netns::new(tag), dir: TempDir::new(tag) }
    }

    /// A node as kube-proxy nodes have it, br_netfilter on (the kernel's
    /// default once the module is loaded): a DNAT from one pod to another on
    /// the same bridge is then forwarded port to port.
    pub fn with_br_netfilter(tag: &str) -> Self {
        let node = Node::new(tag);
        for knob in ["net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"] {
            let set = node.ns.exec("sysctl", &["-qw", knob]);
            assert!(set.status.success(), "br_netfilter is not available: {}", String::from_utf8_lossy(&set.stderr));
        }
        node
    }

    /// A weavice plugin config with this node's state, log and IPAM dirs.
    pub fn conf(&self, version: &str, name: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": name,
            "type": "weavice",
            "stateDir": self.dir.path("state"),
            "logFile": self.dir.path("weavice.log"),
            "logLevel": "debug",
            "ipam": {
                "type": "weavice-ipam",
                "dataDir": self.dir.path("ipam"),
                "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]]
            }
        });
        merge(&mut c, extra);
        c
    }

    /// Runs plugin `plugin` inside the node namespace, the way a runtime does.
    pub fn invoke(&self, plugin: &str, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.name, &bin_or_reference(plugin)])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", cni_path());
        run_plugin(cmd, env, stdin)
    }

    /// Runs weavice in the node namespace from a private mount namespace in
    /// which `mount` (a fixed shell command) ran first: a node whose tools
    /// differ from this machine's.
    pub fn invoke_after_mount(&self, mount: &str, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
        let script = format!("{mount} && exec nsenter --net={} {}", self.ns.path(), bin("weavice"));
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", cni_path());
        run_plugin(cmd, env, stdin)
    }

    /// One CNI verb of weavice for (container ID, pod namespace path, ifname).
    pub fn cni(&self, verb: &str, conf: &Value, id: &str, netns: &str, ifname: &str) -> Reply {
        self.cni_with_args(verb, conf, id, netns, ifname, "")
    }

    /// The same with `CNI_ARGS` (`IgnoreUnknown=1;IP=10.88.0.7`).
    pub fn cni_with_args(&self, verb: &str, conf: &Value, id: &str, netns: &str, ifname: &str, args: &str) -> Reply {
        let mut env =
            vec![("CNI_COMMAND", verb), ("CNI_CONTAINERID", id), ("CNI_NETNS", netns), ("CNI_IFNAME", ifname)];
        if !args.is_empty() {
            env.push(("CNI_ARGS", args));
        }
        self.invoke("weavice", &env, conf.to_string().as_bytes())
    }

    /// Writes a conflist into this node's config directory, for cnitool.
    pub fn write_conflist(&self, name: &str, version: &str, plugins: Vec<Value>) -> String {
        let dir = self.dir.path("net.d");
        fs::create_dir_all(&dir).expect("mkdir net.d");
        let list = json!({"cniVersion": version, "name": name, "plugins": plugins});
        fs::write(format!("{dir}/10-{name}.conflist"), serde_json::to_vec_pretty(&list).unwrap())
            .expect("write conflist");
        dir
    }

    /// cnitool VERB NETWORK NETNS inside the node namespace.
    pub fn cnitool(&self, verb: &str, network: &str, pod: &Netns, extra_env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.name, &cnitool(), verb, network, &pod.path()])
            .env("NETCONFPATH", self.dir.path("net.d"))
            .env("CNI_PATH", cni_path())
            .env("CNI_CACHE_DIR", self.dir.path("cache"));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cnitool")
    }

    /// `cnitool add NETWORK` for a pod named `namespace/name`, as a kubelet
    /// names it (`K8S_POD_*` in CNI_ARGS); its IPv4 address.
    pub fn add_k8s_pod(&self, network: &str, pod: &Netns, namespace: &str, name: &str) -> String {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}");
        let out = self.cnitool("add", network, pod, &[("CNI_ARGS", &args)]);
        let result: Value = serde_json::from_str(&checked("cnitool add", &[network, namespace, name], out)).unwrap();
        let ips = result["ips"].as_array().unwrap();
        let v4 = ips.iter().map(|i| i["address"].as_str().unwrap()).find(|a| a.contains('.')).unwrap();
        v4.split('/').next().unwrap().to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path("weavice.log")).unwrap_or_default()
    }
}

fn bin_or_reference(plugin: &str) -> String {
    let own = bin_dir().join(plugin);
    if own.exists() {
        own.to_string_lossy().into_owned()
    } else {
        format!("{REFERENCE_PLUGINS}/{plugin}")
    }
}

/// Runs a prepared plugin command with `env` added and `stdin` fed in.
pub fn run_plugin(mut cmd: Command, env: &[(&str, &str)], stdin: &[u8]) -> Reply {
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn plugin");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("wait plugin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Reply {
        ok: out.status.success(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Shallow-merges `extra`'s keys into `base`.
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// One ICMP echo; returns the reply TTL, or None when nothing came back.
pub fn ping(from: &Netns, to: &str) -> Option<u32> {
    for _ in 0..3 {
        let out = from.exec("ping", &["-c", "1", "-W", "1", to]);
        if out.status.success() {
            let s = String::from_utf8_lossy(&out.stdout);
            return s.split("ttl=").nth(1).and_then(|t| t.split_whitespace().next()).and_then(|t| t.parse().ok());
        }
    }
    None
}

/// Sends one UDP datagram from `from` to `to` and returns the source address
/// the receiver in `at` saw (None if nothing arrived).
pub fn udp_source_seen(from: &Netns, at: &Netns, to: SocketAddr) -> Option<SocketAddr> {
    let listener = at.run(move || UdpSocket::bind(to).expect("bind listener"));
    listener.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let bind_any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    from.run(move || {
        let s = UdpSocket::bind(bind_any).expect("bind sender");
        s.send_to(b"weavice", to).expect("send");
    });
    let mut buf = [0u8; 64];
    listener.recv_from(&mut buf).ok().map(|(_, src)| src)
}

/// Connects `outside` to the node with a veth, addresses 203.0.113.1/24 and
/// 2001:db8:113::1/64 on the node, .2 and ::2 outside (TEST-NET ranges).
pub fn attach_outside(node: &Netns, outside: &Netns) {
    let (n, o) = ("wvt-out-n", "wvt-out-o");
    sh("ip", &["-n", &node.name, "link", "add", n, "type", "veth", "peer", "name", o, "netns", &outside.name]);
    node.ip(&["addr", "add", "203.0.113.1/24", "dev", n]);
    node.ip(&["addr", "add", "2001:db8:113::1/64", "dev", n, "nodad"]);
    node.ip(&["link", "set", n, "up"]);
    outside.ip(&["addr", "add", "203.0.113.2/24", "dev", o]);
    outside.ip(&["addr", "add", "2001:db8:113::2/64", "dev", o, "nodad"]);
    outside.ip(&["link", "set", o, "up"]);
}

/// A Service as kube-proxy's nftables mode makes one: `node` DNATs
/// 10.96.0.10:80 to `endpoint`:8080.
pub fn service_dnat(node: &Node, endpoint: &str) {
    let script = format!(
        "table ip svc {{\n chain pre {{\n type nat hook prerouting priority dstnat;\n ip daddr 10.96.0.10 tcp dport 80 dnat to {endpoint}:8080\n }}\n}}\n"
    );
    fs::write(node.dir.path("svc.nft"), script).unwrap();
    let out = node.ns.exec("nft", &["-f", &node.dir.path("svc.nft")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A TCP server in `ns` on `addr` answering every connection with `tag`.
pub fn serve_tcp(ns: &Netns, addr: &str, tag: &'static str) {
    let addr: SocketAddr = addr.parse().unwrap();
    let l = ns.run(move || TcpListener::bind(addr).expect("bind server"));
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(tag.as_bytes());
        }
    });
}

/// Connects from `ns` to `to` and returns what the server said ("" if nothing).
pub fn tcp_fetch(ns: &Netns, to: &str) -> String {
    tcp_exchange(ns, to, b"")
}

/// Sends `GET /` over TCP from `ns` to `to`; the answer ("" if nothing).
pub fn http_get(ns: &Netns, to: &str) -> String {
    tcp_exchange(ns, to, b"GET / HTTP/1.0\r\n\r\n")
}

/// Connects from `ns` to `to`, sends `request` and reads until the server
/// closes (or 2 s pass).
fn tcp_exchange(ns: &Netns, to: &str, request: &'static [u8]) -> String {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else { return String::new() };
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let _ = s.write_all(request);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

/// How many elements set or map `name` of `table inet weavice` holds in `ns`
/// (0 when there is no such table or set), read from the table as data.
pub fn inet_elements(ns: &Netns, name: &str) -> usize {
    let out = ns.exec("nft", &["-j", "list", "table", "inet", "weavice"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let objects = v["nftables"].as_array().cloned().unwrap_or_default();
    let set = objects.iter().filter_map(|o| o.get("map").or(o.get("set"))).find(|s| s["name"] == name);
    set.and_then(|s| s["elem"].as_array()).map_or(0, Vec::len)
}

/// Everything netfilter holds in `ns`: the nft ruleset and both iptables-saves.
pub fn firewall_dump(ns: &Netns) -> String {
    dump(ns, &["-s", "list", "ruleset"])
}

/// The same without nft's set and map elements (`-t`): the per-network
/// rules, which no pod changes (a pod's share is elements).
pub fn rules_dump(ns: &Netns) -> String {
    dump(ns, &["-s", "-t", "list", "ruleset"])
}

fn dump(ns: &Netns, nft_args: &[&str]) -> String {
    let mut out = String::new();
    // nft -s: without counters, which move with traffic
    for (cmd, args) in [("nft", nft_args), ("iptables-save", &[][..]), ("ip6tables-save", &[][..])] {
        let o = ns.exec(cmd, args);
        // iptables-save stamps the time; drop comment lines
        out +=
            &String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    }
    out
}

/// `weavice-agent run` in a node's namespace, on its state dir, logging to
/// `agent.log` in its directory.
pub struct Daemon {
    child: std::process::Child,
    pub log: String,
}

impl Daemon {
    /// Starts it with `extra` arguments and waits for its `ready` line.
    pub fn start(node: &Node, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(node, extra, &[])
    }

    /// As [`start`](Self::start), with `env` set for it.
    pub fn start_with_env(node: &Node, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let (state, log) = (node.dir.path("state"), node.dir.path("agent.log"));
        let before = fs::read_to_string(&log).map(|l| l.matches("ready").count()).unwrap_or(0);
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns.name, &bin("weavice-agent"), "run", "--state-dir", &state])
            .args(["--log-file", &log])
            .args(extra)
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weavice-agent run");
        let d = Daemon { child, log };
        let ready = || fs::read_to_string(&d.log).unwrap_or_default().matches("ready").count() > before;
        assert!(eventually(ready), "the daemon is not ready:\n{}", fs::read_to_string(&d.log).unwrap_or_default());
        d
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid (`ip netns exec` execs the agent).
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM; its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid (`ip netns exec` execs the agent).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for the daemon")
    }
}

impl Drop for Daemon {
    /// Also `kill -9` for a test that wants one.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `p` quantile (0..=1) of `v`, nearest rank; for the benchmarks.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Whether `f` holds within 10 seconds (polled every 200 ms).
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
