//! containerd 1.6 (Debian) with its CRI plugin, in a [`RuntimeNode`], driven
//! over CRI v1 as a kubelet drives it by tests/runtimes/cri.py.

use super::{plugin_dir, RuntimeNode};
use crate::{checked, eventually};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};

/// The CRI client's interpreter (hack/deps.sh makes the venv) and script.
fn cri_client() -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/venv/bin/python");
    assert!(python.exists(), "{} is missing: run hack/test.sh (hack/deps.sh makes it)", python.display());
    (python.to_string_lossy().into_owned(), root.join("runtimes/cri.py").to_string_lossy().into_owned())
}

/// containerd on the node's own root, state and socket; it goes with the
/// node's PID namespace.
pub struct Containerd<'a> {
    rt: &'a RuntimeNode,
    daemon: Child,
    sock: String,
    image: String,
}

impl<'a> Containerd<'a> {
    /// containerd whose CNI network is the conflist in `net_d`, its sandbox
    /// image `image` (to be imported).
    pub fn start(rt: &'a RuntimeNode, net_d: &str, image: &str) -> Self {
        let dir = &rt.node.dir;
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
  sandbox_image = "{image}"
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
        let ctd = Containerd { rt, daemon, sock, image: image.to_string() };
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

    /// `ctr images import` of an OCI archive.
    pub fn import(&self, archive: &str) {
        let args = ["--address", &self.sock, "-n", "k8s.io", "images", "import", "--snapshotter", "native", archive];
        self.rt.run("ctr", &args);
    }

    /// One call of the CRI client (tests/runtimes/cri.py); its stdout.
    pub fn cri(&self, args: &[&str]) -> String {
        let (python, script) = cri_client();
        let out = self.rt.command(&python).arg(&script).arg(&self.sock).args(args).output().expect("run cri.py");
        checked("cri.py", args, out)
    }

    /// RunPodSandbox; the sandbox's id and IPv4 address.
    pub fn run_pod(&self, name: &str, ports: &[&str]) -> (String, String) {
        let pod: Value = serde_json::from_str(&self.cri(&[&["run-pod", name, "default"], ports].concat())).unwrap();
        let v4 = pod["ips"].as_array().unwrap().iter().filter_map(|i| i.as_str()).find(|i| i.contains('.'));
        (pod["id"].as_str().unwrap().to_string(), v4.expect("an IPv4 address").to_string())
    }

    /// CreateContainer + StartContainer in pod `pod`; the container's id.
    pub fn start_container(&self, pod: &str, pod_name: &str, name: &str, cmd: &[&str]) -> String {
        let out: Value =
            serde_json::from_str(&self.cri(&[&["start", pod, pod_name, "default", name, &self.image], cmd].concat()))
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
