//! podman 4.3 (Debian) with its CNI backend, in a [`RuntimeNode`].

use super::{plugin_dir, RuntimeNode};
use crate::checked;
use std::fs;

/// podman on the node's own storage, runtime dirs and config (crun without
/// cgroups: runc refuses --cgroups=disabled, and with cgroups podman would make
/// them on the host).
pub struct Podman<'a> {
    rt: &'a RuntimeNode,
    conf: String,
    root: String,
    runroot: String,
}

impl<'a> Podman<'a> {
    /// podman whose CNI networks are the conflists in `net_d`.
    pub fn new(rt: &'a RuntimeNode, net_d: &str) -> Self {
        let dir = &rt.node.dir;
        // podman import stages the image here, not in the host's /var/tmp
        let tmp = dir.path("podman-tmp");
        fs::create_dir_all(&tmp).expect("mkdir podman-tmp");
        // this machine may not raise rlimits (no CAP_SYS_RESOURCE): podman's
        // defaults ask for the maximum, so fixed ones below ours are set
        let conf = format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}\"\n\
             image_copy_tmp_dir = \"{}\"\n\
             runtime = \"crun\"\n\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{net_d}\"\n",
            dir.path("podman-events.log"),
            tmp,
            plugin_dir(dir),
        );
        let path = dir.path("containers.conf");
        fs::write(&path, conf).expect("write containers.conf");
        Podman { rt, conf: path, root: dir.path("podman-root"), runroot: dir.path("podman-run") }
    }

    /// `podman ARGS`; its stdout (a panic with its output when it fails).
    pub fn run(&self, args: &[&str]) -> String {
        let mut cmd = self.rt.command("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .args(["--root", &self.root, "--runroot", &self.runroot, "--storage-driver", "vfs"])
            .args(args);
        checked("podman", args, cmd.output().expect("run podman"))
    }

    /// The address of `container` on network `net`.
    pub fn ip(&self, container: &str, net: &str) -> String {
        let format = format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}");
        self.run(&["inspect", container, "--format", &format]).trim().to_string()
    }
}
