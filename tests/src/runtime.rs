//! Container runtimes (podman, containerd) inside a test node. Runtimes make
//! their pods' network namespaces themselves and run the plugin in their own
//! network namespace, so each runs in the node's, from a private mount
//! namespace in which /run, /var/lib (the CNI cache) and /sys are its own: the
//! host's runtime state, cgroups and netns mounts stay untouched.

use crate::{bin, sh, Node, TempDir};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The holder: sets the mount namespace up and keeps it (and the node's
/// network namespace) alive. `$1` is an empty directory to park the cgroup
/// tree in while /sys is remounted for the node's network namespace.
const HOLDER: &str = r#"set -e
umount -l /run/netns 2>/dev/null || true
mount --rbind /sys/fs/cgroup "$1"
mount -t sysfs sysfs /sys
mount --move "$1" /sys/fs/cgroup
if [ -d /sys/fs/cgroup/unified ]; then mount -t tmpfs tmpfs /sys/fs/cgroup/unified; fi
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
echo ready
exec sleep infinity"#;

/// Whether this kernel has what a container runtime needs here: the
/// namespaces it creates for each container. Prints the one line saying what
/// is missing (the test is then skipped).
pub fn kernel_ready(runtime: &str) -> bool {
    let missing: Vec<&str> = ["mnt", "pid", "ipc", "uts", "net"]
        .into_iter()
        .filter(|ns| !Path::new(&format!("/proc/self/ns/{ns}")).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: {runtime} needs {} namespaces, which this kernel lacks", missing.join(", "));
    }
    missing.is_empty()
}

/// A test node with a runtime's view of the machine; every process started in
/// its mount namespace (runtimes, shims, containers) is killed on drop.
pub struct RuntimeNode {
    pub node: Node,
    holder: Child,
}

impl RuntimeNode {
    pub fn new(tag: &str) -> Self {
        let node = Node::new(tag);
        let park = node.dir.path("cgroup-park");
        fs::create_dir_all(&park).expect("mkdir cgroup-park");
        let mut holder = Command::new("nsenter");
        holder
            .args([&format!("--net={}", node.ns.path()), "unshare", "--mount", "--propagation", "slave"])
            .args(["sh", "-c", HOLDER, "holder", &park])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl in the child before exec; the holder dies with the test.
        unsafe { holder.pre_exec(die_with_parent) };
        let mut holder = holder.spawn().expect("start the runtime node's holder");
        let mut line = [0u8; 6];
        let ready = std::io::Read::read_exact(holder.stdout.as_mut().expect("stdout"), &mut line).is_ok();
        if !ready || &line != b"ready\n" {
            let _ = holder.kill();
            let out = holder.wait_with_output().expect("holder output");
            panic!("the runtime node's mount namespace: {}", String::from_utf8_lossy(&out.stderr));
        }
        RuntimeNode { node, holder }
    }

    /// `program` run in the node's network and mount namespaces.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-n", "-m", "--", program]);
        // SAFETY: as in new: daemons started here die with the test.
        unsafe { cmd.pre_exec(die_with_parent) };
        cmd
    }

    /// Runs `program args`, panicking with its output when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect("nsenter");
        check(program, args, out)
    }

    fn mount_ns(&self) -> Option<std::path::PathBuf> {
        fs::read_link(format!("/proc/{}/ns/mnt", self.holder.id())).ok()
    }
}

impl Drop for RuntimeNode {
    fn drop(&mut self) {
        if let Some(mnt) = self.mount_ns() {
            for p in fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
                if fs::read_link(p.path().join("ns/mnt")).is_ok_and(|m| m == mnt) && pid != self.holder.id() as i32 {
                    // SAFETY: kill(2); the process lives in the mount namespace this test made.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(2) on the calling (child) process only.
    match unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// A command's stdout, or a panic with what it printed.
pub fn check(program: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the test containers' httpd serves.
pub const PAGE: &str = "hello from a weavice pod";

/// A root filesystem from busybox-static (no registry here): sh, httpd, nc
/// and sleep, and /www/index.html holding [`PAGE`]. Returns its tar.
pub fn busybox_rootfs(dir: &TempDir) -> String {
    // busybox-static's: the image has no libc
    let busybox = "/bin/busybox";
    assert!(Path::new(busybox).exists(), "{busybox} is missing: hack/deps.sh installs busybox-static");
    let root = Path::new(&dir.path("rootfs")).to_path_buf();
    fs::create_dir_all(root.join("bin")).expect("mkdir rootfs/bin");
    fs::create_dir_all(root.join("www")).expect("mkdir rootfs/www");
    fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "httpd", "nc", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    fs::write(root.join("www/index.html"), PAGE).expect("write index.html");
    let tar = dir.path("rootfs.tar");
    sh("tar", &["-C", &root.to_string_lossy(), "--owner=0", "--group=0", "-cf", &tar, "."]);
    tar
}

/// An OCI image archive named `name` (for `ctr images import`) from a rootfs
/// tar as its one layer, running `cmd`.
pub fn oci_archive(dir: &TempDir, rootfs_tar: &str, name: &str, cmd: &[&str]) -> String {
    let layout = Path::new(&dir.path("oci")).to_path_buf();
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir blobs");
    let blob = |bytes: &[u8]| {
        let digest = format!("{:x}", Sha256::digest(bytes));
        fs::write(blobs.join(&digest), bytes).expect("write blob");
        json!({"digest": format!("sha256:{digest}"), "size": bytes.len()})
    };
    let layer = blob(&fs::read(rootfs_tar).expect("read rootfs tar"));
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}
    });
    let mut config = blob(config.to_string().as_bytes());
    config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let mut layer = layer;
    layer["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]
    });
    let mut entry = blob(manifest.to_string().as_bytes());
    entry["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    entry["annotations"] = json!({"io.containerd.image.name": name});
    let index = json!({"schemaVersion": 2, "manifests": [entry]});
    fs::write(layout.join("index.json"), index.to_string()).expect("write index.json");
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
    let archive = dir.path("image.tar");
    sh("tar", &["-C", &layout.to_string_lossy(), "-cf", &archive, "oci-layout", "index.json", "blobs"]);
    archive
}

/// A directory of links to weavice, weavice-ipam and the reference loopback:
/// runtimes take one plugin directory.
pub fn plugin_dir(dir: &TempDir) -> String {
    let d = dir.path("cni-bin");
    fs::create_dir_all(&d).expect("mkdir cni-bin");
    for p in [bin("weavice"), bin("weavice-ipam"), format!("{}/loopback", crate::REFERENCE_PLUGINS)] {
        let name = Path::new(&p).file_name().expect("plugin name").to_owned();
        std::os::unix::fs::symlink(&p, Path::new(&d).join(name)).expect("link plugin");
    }
    d
}

/// Sends `GET /` over TCP from `ns` to `to` ("" when nothing answers).
pub fn http_get(ns: &crate::Netns, to: &str) -> String {
    let to: std::net::SocketAddr = to.parse().expect("address");
    ns.run(move || {
        use std::io::{Read, Write};
        let timeout = std::time::Duration::from_secs(3);
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&to, timeout) else { return String::new() };
        s.set_read_timeout(Some(timeout)).ok();
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}
