//! podman 4.3 (Debian) with its CNI backend on a weavice conflist: `podman
//! run --network NET -p 8080:80` gives containers addresses, they reach each
//! other, the port mapping answers from outside the node and from the node's
//! 127.0.0.1, and `podman stop` + `podman rm` leave nothing behind.

use weavice_tests::leftovers::held_for_pods;
use weavice_tests::runtime::podman::Podman;
use weavice_tests::runtime::{busybox_rootfs, RuntimeNode, PAGE};
use weavice_tests::*;

const NET: &str = "pmnet";
const IMAGE: &str = "localhost/wvbox:1";

#[test]
fn podman_containers_get_addresses_talk_map_ports_and_leave_nothing_after_rm() {
    if !require_root() || !runtime::kernel_ready("podman") {
        return;
    }
    let rt = RuntimeNode::new("pm");
    let outside = Netns::new("pmo");
    attach_outside(&rt.node.ns, &outside);
    let podman = Podman::new(&rt, &rt.write_conflist(NET));
    let rootfs = busybox_rootfs(&rt.node.dir);
    podman.run(&["import", "--change", r#"CMD ["/bin/sh"]"#, &rootfs, IMAGE]);

    let run = ["run", "-d", "--cgroups=disabled", "--network", NET];
    podman
        .run(&[&run[..], &["--name", "web", "-p", "8080:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"]].concat());
    podman.run(&[&run[..], &["--name", "client", IMAGE, "sleep", "600"]].concat());
    let (web, client) = (podman.ip("web", NET), podman.ip("client", NET));
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
