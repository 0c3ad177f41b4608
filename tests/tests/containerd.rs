//! containerd 1.6 (Debian) with its CRI plugin configured for weavice, driven
//! over CRI v1 as a kubelet drives it (tests/runtimes/cri.py): two pod
//! sandboxes reach each other, a hostPort (which containerd sends as
//! `HostPort`, `ContainerPort`, ...) answers from outside, and StopPodSandbox
//! plus RemovePodSandbox (a second DEL, with an empty netns) leave nothing.

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use weavice_tests::leftovers::held_for_pods;
use weavice_tests::runtime::{self, busybox_rootfs, http_get, oci_archive, plugin_dir, RuntimeNode, PAGE};
use weavice_tests::*;

const NET: &str = "ctdnet";
const IMAGE: &str = "localhost/wvbox:1";

/// The CRI client's interpreter (hack/deps.sh makes the venv) and script.
fn cri_client() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/venv/bin/python");
    assert!(python.exists(), "{} is missing: run hack/test.sh (hack/deps.sh makes it)", python.display());
    (python.to_string_lossy().into_owned(), root.join("runtimes/cri.py").to_string_lossy().into_owned())
}

/// containerd on the node's own root, state and socket; it goes with the
/// node's PID namespace.
struct Containerd<'a> {
    rt: &'a RuntimeNode,
    daemon: Child,
    sock: String,
}

impl<'a> Containerd<'a> {
    fn start(rt: &'a RuntimeNode) -> Self {
        let dir = &rt.node.dir;
        let net_d = rt.write_conflist(NET);
        let wrapper = dir.path("crun-without-cgroups");
        fs::write(&wrapper, "#!/bin/sh\nexec /usr/bin/crun --cgroup-manager=disabled \"$@\"\n").expect("write wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        let sock = dir.path("containerd.sock");
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        // the opt plugin would create /opt/containerd; the snapshotters not
        // used here only warn
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[{cri}]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_cgroup = true
  disable_apparmor = true
  [{cri}.containerd]
    snapshotter = "native"
    default_runtime_name = "crun"
    [{cri}.containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.crun.options]
        BinaryName = "{wrapper}"
  [{cri}.cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{net_d}"
    max_conf_num = 1
"#,
            root = dir.path("containerd-root"),
            state = dir.path("containerd-state"),
            bin_dir = plugin_dir(dir),
        );
        let path = dir.path("containerd.toml");
        fs::write(&path, config).expect("write containerd.toml");
        let log = fs::File::create(dir.path("containerd.log")).expect("containerd.log");
        let daemon = rt
            .command("containerd")
            .args(["--config", &path])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let ctd = Containerd { rt, daemon, sock };
        let up = || {
            ctd.rt.command("ctr").args(["--address", &ctd.sock, "version"]).output().is_ok_and(|o| o.status.success())
        };
        assert!(
            eventually(up),
            "containerd did not come up: {}",
            fs::read_to_string(dir.path("containerd.log")).unwrap_or_default()
        );
        ctd
    }

    fn import(&self, archive: &str) {
        let args = ["--address", &self.sock, "-n", "k8s.io", "images", "import", "--snapshotter", "native", archive];
        self.rt.run("ctr", &args);
    }

    /// One call of the CRI client; its stdout.
    fn cri(&self, args: &[&str]) -> String {
        let (python, script) = cri_client();
        let out = self.rt.command(&python).arg(&script).arg(&self.sock).args(args).output().expect("run cri.py");
        checked("cri.py", args, out)
    }

    /// RunPodSandbox; the sandbox's id and IPv4 address.
    fn run_pod(&self, name: &str, ports: &[&str]) -> (String, String) {
        let pod: Value = serde_json::from_str(&self.cri(&[&["run-pod", name, "default"], ports].concat())).unwrap();
        let v4 = pod["ips"].as_array().unwrap().iter().filter_map(|i| i.as_str()).find(|i| i.contains('.'));
        (pod["id"].as_str().unwrap().to_string(), v4.expect("an IPv4 address").to_string())
    }

    /// CreateContainer + StartContainer in pod `pod`; the container's id.
    fn start_container(&self, pod: &str, pod_name: &str, name: &str, cmd: &[&str]) -> String {
        let out: Value =
            serde_json::from_str(&self.cri(&[&["start", pod, pod_name, "default", name, IMAGE], cmd].concat()))
                .unwrap();
        out["id"].as_str().unwrap().to_string()
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn containerd_cri_sandboxes_talk_map_host_ports_and_leave_nothing_after_remove() {
    if !require_root() || !runtime::kernel_ready("containerd") {
        return;
    }
    let rt = RuntimeNode::new("ctd");
    let outside = Netns::new("ctdo");
    attach_outside(&rt.node.ns, &outside);
    let ctd = Containerd::start(&rt);
    let rootfs = busybox_rootfs(&rt.node.dir);
    ctd.import(&oci_archive(&rt.node.dir, &rootfs, IMAGE, &["/bin/sleep", "86400"]));

    let (web, web_ip) = ctd.run_pod("web", &["8080:80"]);
    ctd.start_container(&web, "web", "httpd", &["/bin/httpd", "-f", "-p", "80", "-h", "/www"]);
    let (client, client_ip) = ctd.run_pod("client", &[]);
    let shell = ctd.start_container(&client, "client", "shell", &["/bin/sleep", "600"]);
    assert!(web_ip.starts_with("10.88.0.") && client_ip.starts_with("10.88.0."), "{web_ip} {client_ip}");
    assert_ne!(web_ip, client_ip);

    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {web_ip} 80");
    let page = ctd.cri(&["exec", &shell, "sh", "-c", &get]);
    assert!(page.contains(PAGE), "client sandbox to web: {page:?}");
    let from_outside = http_get(&outside, "203.0.113.1:8080");
    assert!(from_outside.contains(PAGE), "outside to hostPort 8080: {from_outside:?}\n{}", rt.node.log());

    // the kubelet's pod names reached the journal
    let journal = fs::read_to_string(rt.node.dir.path("state/journal/journal.jsonl")).unwrap_or_default();
    for name in ["web", "client"] {
        let named = format!(r#""pod":{{"namespace":"default","pod_name":"{name}","uid":""#);
        assert!(journal.contains(&named), "{name} is not in the journal:\n{journal}");
    }
    let held = held_for_pods(&rt.node, NET);
    assert_eq!(held.iter().filter(|(k, _)| *k == "wv veth").count(), 2, "two sandboxes, two host veths: {held:?}");

    for pod in [&web, &client] {
        ctd.cri(&["stop-pod", pod]);
        ctd.cri(&["remove-pod", pod]);
    }
    assert_eq!(ctd.cri(&["pods"]).trim(), "[]");
    let left = held_for_pods(&rt.node, NET);
    assert!(left.is_empty(), "StopPodSandbox and RemovePodSandbox left {left:?}\n{}", rt.node.log());
    // RemovePodSandbox's DEL came with no netns, and found nothing to do
    let second_dels = rt.node.log().lines().filter(|l| l.contains(" DEL ") && l.contains("netns=\"\"")).count();
    assert!(second_dels >= 2, "no DEL without a netns:\n{}", rt.node.log());
    assert_eq!(http_get(&outside, "203.0.113.1:8080"), "", "8080 still answers after removal");
}
