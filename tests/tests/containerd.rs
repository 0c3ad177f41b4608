//! containerd 1.6 (Debian) with its CRI plugin configured for weavice, driven
//! over CRI v1 as a kubelet drives it (tests/runtimes/cri.py): two pod
//! sandboxes reach each other, a hostPort (which containerd sends as
//! `HostPort`, `ContainerPort`, ...) answers from outside, and StopPodSandbox
//! plus RemovePodSandbox (a second DEL, with an empty netns) leave nothing.

use std::fs;
use weavice_tests::leftovers::held_for_pods;
use weavice_tests::runtime::containerd::Containerd;
use weavice_tests::runtime::{self, busybox_rootfs, oci_archive, RuntimeNode, PAGE};
use weavice_tests::*;

const NET: &str = "ctdnet";
const IMAGE: &str = "localhost/wvbox:1";

#[test]
fn containerd_cri_sandboxes_talk_map_host_ports_and_leave_nothing_after_remove() {
    if !require_root() || !runtime::kernel_ready("containerd") {
        return;
    }
    let rt = RuntimeNode::new("ctd");
    let outside = Netns::new("ctdo");
    attach_outside(&rt.node.ns, &outside);
    let ctd = Containerd::start(&rt, &rt.write_conflist(NET), IMAGE);
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
