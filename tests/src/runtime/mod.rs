//! Container runtimes (podman, containerd) inside a test node. Runtimes make
//! their pods' network namespaces themselves and run the plugin in their own
//! network namespace, so each runs in the node's, from a private mount
//! namespace in which /run, /var/lib (the CNI cache) and /sys are its own (the
//! host's runtime state, cgroups and netns mounts stay untouched) and a PID
//! namespace that ends everything started there at once.

pub mod containerd;
pub mod podman;

use crate::{bin, checked, sh, Node, TempDir};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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

/// A test node with a runtime's view of the machine. Its holder is the init
/// of a PID namespace of its own: every process started in the node
/// (runtimes, shims, conmon, the containers in their nested namespaces) goes
/// with it when the kernel kills that namespace, on drop or when the test
/// process dies (`--kill-child`).
pub struct RuntimeNode {
    pub node: Node,
    /// `unshare`, whose child is the holder.
    unshare: Child,
    /// The holder's PID as this process sees it.
    init: u32,
}

impl RuntimeNode {
    pub fn new(tag: &str) -> Self {
        let node = Node::new(tag);
        let park = node.dir.path("cgroup-park");
        fs::create_dir_all(&park).expect("mkdir cgroup-park");
        let mut unshare = Command::new("nsenter");
        unshare
            .arg(format!("--net={}", node.ns.path()))
            .args(["unshare", "--mount", "--propagation", "slave", "--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["sh", "-c", HOLDER, "holder", &park])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl in the child before exec; unshare dies with the test.
        unsafe { unshare.pre_exec(die_with_parent) };
        let mut unshare = unshare.spawn().expect("start the runtime node's holder");
        let mut line = [0u8; 6];
        let ready = std::io::Read::read_exact(unshare.stdout.as_mut().expect("stdout"), &mut line).is_ok();
        let id = unshare.id();
        let children = fs::read_to_string(format!("/proc/{id}/task/{id}/children")).unwrap_or_default();
        match (ready && &line == b"ready\n", children.split_whitespace().next().and_then(|c| c.parse().ok())) {
            (true, Some(init)) => RuntimeNode { node, unshare, init },
            _ => {
                let _ = unshare.kill();
                let out = unshare.wait_with_output().expect("holder output");
                panic!("the runtime node's namespaces: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }

    /// `program` run in the node's network, mount and PID namespaces.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init.to_string(), "-n", "-m", "-p", "--", program]);
        cmd
    }

    /// Writes a conflist of weavice on network `net` as a runtime reads it
    /// (the portMappings capability declared, or no `-p` reaches it); its
    /// directory.
    pub fn write_conflist(&self, net: &str) -> String {
        let conf = self.node.conf("1.0.0", net, json!({"capabilities": {"portMappings": true}}));
        self.node.write_conflist(net, "1.0.0", vec![conf])
    }

    /// Runs `program args`, panicking with its output when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect("nsenter");
        checked(program, args, out)
    }
}

impl Drop for RuntimeNode {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the init of the PID namespace this node made:
        // the kernel kills the rest of it, and unshare's wait returns after.
        unsafe { libc::kill(self.init as i32, libc::SIGKILL) };
        let _ = self.unshare.wait();
    }
}

fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(2) on the calling (child) process only.
    match unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// What the test containers' httpd serves.
pub const PAGE: &str = "hello from a weavice pod";

/// A root filesystem from busybox-static (no registry here): sh, httpd, nc
/// and sleep, and /www/index.html holding [`PAGE`]. Returns its tar.
pub fn busybox_rootfs(dir: &TempDir) -> String {
    let busybox = "/bin/busybox";
    let elf = fs::read(busybox).unwrap_or_default();
    assert!(!elf.is_empty() && !dynamic(&elf), "{busybox} is missing or dynamic: hack/deps.sh installs busybox-static");
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

/// Whether an ELF executable names an interpreter (PT_INTERP): the image
/// has no libc.
fn dynamic(elf: &[u8]) -> bool {
    let word =
        |at: usize, n: usize| elf.get(at..at + n).map(|b| b.iter().rev().fold(0usize, |v, x| v << 8 | *x as usize));
    let (Some(phoff), Some(size), Some(count)) = (word(0x20, 8), word(0x36, 2), word(0x38, 2)) else { return true };
    (0..count).any(|i| word(phoff + i * size, 4) == Some(3))
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
        "architecture": oci_arch(), "os": "linux", "config": {"Cmd": cmd},
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

/// This machine's architecture as OCI names it.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A directory of links to weavice, weavice-ipam and the reference plugins
/// a runtime's conflist may name: runtimes take one plugin directory.
pub fn plugin_dir(dir: &TempDir) -> String {
    let d = dir.path("cni-bin");
    fs::create_dir_all(&d).expect("mkdir cni-bin");
    let reference =
        ["loopback", "bridge", "host-local", "portmap"].map(|p| format!("{}/{p}", crate::REFERENCE_PLUGINS));
    for p in [bin("weavice"), bin("weavice-ipam")].into_iter().chain(reference) {
        let name = Path::new(&p).file_name().expect("plugin name").to_owned();
        std::os::unix::fs::symlink(&p, Path::new(&d).join(name)).expect("link plugin");
    }
    d
}
