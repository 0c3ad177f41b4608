//! podman 4.3 (Debian) with its CNI backend on a weavice conflist: `podman
//! run --network NET -p 8080:80` gives containers addresses, they reach each
//! other, the port mapping answers from outside the node and from the node's
//! 127.0.0.1, and `podman stop` + `podman rm` leave nothing behind.

use std::fs;
use weavice_tests::leftovers::held_for_pods;
use weavice_tests::runtime::{busybox_rootfs, http_get, plugin_dir, RuntimeNode, PAGE};
use weavice_tests::*;

const NET: &str = "pmnet";
const IMAGE: &str = "localhost/wvbox:1";

/// podman on the node's own storage, runtime dirs and config (crun without
/// cgroups: runc refuses --cgroups=disabled, and with cgroups podman would make
/// them on the host).
struct Podman<'a> {
    rt: &'a RuntimeNode,
    conf: String,
    root: String,
    runroot: String,
}

impl<'a> Podman<'a> {
    fn new(rt: &'a RuntimeNode) -> Self {
        let dir = &rt.node.dir;
        let net_d = rt.write_conflist(NET);
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

    fn run(&self, args: &[&str]) -> String {
        let mut cmd = self.rt.command("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .args(["--root", &self.root, "--runroot", &self.runroot, "--storage-driver", "vfs"])
            .args(args);
        checked("podman", args, cmd.output().expect("run podman"))
    }

    fn ip(&self, container: &str) -> String {
        let format = format!("{{{{.NetworkSettings.Networks.{NET}.IPAddress}}}}");
        self.run(&["inspect", container, "--format", &format]).trim().to_string()
    }
}

#[test]
fn podman_containers_get_addresses_talk_map_ports_and_leave_nothing_after_rm() {
    if !require_root() || !runtime::kernel_ready("podman") {
        return;
    }
    let rt = RuntimeNode::new("pm");
    let outside = Netns::new("pmo");
    attach_outside(&rt.node.ns, &outside);
    let podman = Podman::new(&rt);
    let rootfs = busybox_rootfs(&rt.node.dir);
    podman.run(&["import", "--change", r#"CMD ["/bin/sh"]"#, &rootfs, IMAGE]);

    let run = ["run", "-d", "--cgroups=disabled", "--network", NET];
    podman
        .run(&[&run[..], &["--name", "web", "-p", "8080:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]].concat());
    podman.run(&[&run[..], &["--name", "client", IMAGE, "sleep", "600"]].concat());
    let (web, client) = (podman.ip("web"), podman.ip("client"));
    for ip in [&web, &client] {
        assert!(ip.starts_with("10.88.0."), "an address from the weavice network, not {ip:?}");
    }
    assert_ne!(web, client);

    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {web} 80");
    let page = podman.run(&["exec", "client", "sh", "-c", &get]);
    assert!(page.contains(PAGE), "client to web: {page:?}");
    let from_outside = http_get(&outside, "203.0.113.1:8080");
    assert!(from_outside.contains(PAGE), "outside to the node's 8080: {from_outside:?}");
    let from_node = http_get(&rt.node.ns, "127.0.0.1:8080");
    assert!(from_node.contains(PAGE), "the node to 127.0.0.1:8080: {from_node:?}");

    let held = held_for_pods(&rt.node, NET);
    let veths = held.iter().filter(|(k, _)| *k == "wv veth").count();
    assert_eq!(veths, 2, "two containers, two host veths: {held:?}");
    assert!(held.iter().any(|(k, _)| *k == "host-port claim"), "8080 is claimed: {held:?}");

    // httpd as PID 1 ignores SIGTERM: -t 2 bounds the wait
    podman.run(&["stop", "-t", "2", "web", "client"]);
    podman.run(&["rm", "web", "client"]);
    let left = held_for_pods(&rt.node, NET);
    assert!(left.is_empty(), "podman stop and rm left {left:?}\n{}", rt.node.log());
    assert_eq!(http_get(&outside, "203.0.113.1:8080"), "", "8080 still answers after rm");
}
