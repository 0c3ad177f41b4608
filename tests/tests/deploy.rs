//! deploy/ (issue 13): the manifests read into the Kubernetes API's types
//! (k8s-openapi) with nothing left over (an unknown or misspelt field is an
//! error: no API server runs here to refuse it), RBAC that reads Nodes and
//! nothing more, container args the binary accepts; and `weavice-agent
//! install`, which the init container runs: plugins and a conflist that
//! cnitool uses, the podCIDR from the Node object through the API, and a
//! conflist directory it cannot write yet retried until it can.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::{json, Value};
use std::process::Command;
use weavice_tests::kube_api::{write_kubeconfig, NodeApi};
use weavice_tests::*;

fn manifests() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/weavice.yaml");
    serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The paths in `a` that `b` lacks or holds otherwise.
fn lost(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                lost(v, y.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                lost(v, w, &format!("{at}[{i}]"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} became {b}")),
    }
}

/// Reads `v` as `T` and back: what does not survive is no field of `T`.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", v["kind"]));
    let mut out = Vec::new();
    lost(v, &serde_json::to_value(&typed).unwrap(), "", &mut out);
    assert!(out.is_empty(), "{} has fields the API does not know: {out:?}", v["kind"]);
    typed
}

#[test]
fn the_manifests_are_the_apis_types_with_the_rbac_they_need_and_args_the_binary_takes() {
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"]);
    strict::<ServiceAccount>(&docs[0]);
    let role = strict::<ClusterRole>(&docs[1]);
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1, "nothing more than Nodes");
    assert_eq!(rules[0].resources.as_deref(), Some(&["nodes".to_string()][..]));
    assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
    strict::<ClusterRoleBinding>(&docs[2]);
    let ds = strict::<DaemonSet>(&docs[3]);
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("weavice"));
    let caps = pod.containers[0].security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_ADMIN".to_string(), "NET_RAW".to_string()][..]),
        "no privileged container"
    );

    // every container's subcommand and flags are the binary's own
    for c in pod.init_containers.unwrap().iter().chain(&pod.containers) {
        let args = c.args.clone().unwrap();
        let help = Command::new(bin("weavice-agent")).args([&args[0], "--help"]).output().unwrap();
        assert!(help.status.success(), "{}: {args:?}", c.name);
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in args.iter().filter(|a| a.starts_with("--")) {
            assert!(help.contains(flag.as_str()), "{}: {flag} is no flag of `weavice-agent {}`", c.name, args[0]);
        }
    }
    let dockerfile =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY weavice weavice-ipam weavice-agent /usr/local/bin/"), "{dockerfile}");
}

/// A child killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `weavice-agent install` in `node`'s namespace; waits for it to end.
fn install(node: &Node, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", &node.ns.name, &bin("weavice-agent"), "install"])
        .args(["--cni-bin-dir", &node.dir.path("bin"), "--cni-conf-dir", &node.dir.path("net.d")])
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn install_puts_the_plugins_and_a_working_conflist_in_place() {
    if !require_root() {
        return;
    }
    let node = Node::new("ins");
    std::fs::create_dir_all(node.dir.path("bin")).unwrap();
    std::fs::create_dir_all(node.dir.path("net.d")).unwrap();
    let out = install(&node, &["--pod-cidr", "10.44.1.0/24"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    for p in ["weavice", "weavice-ipam"] {
        let meta = std::fs::metadata(node.dir.path(&format!("bin/{p}"))).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(meta.len(), std::fs::metadata(bin(p)).unwrap().len());
    }
    // the conflist works as written (only the state dirs moved into the test's)
    let mut conflist: Value =
        serde_json::from_str(&std::fs::read_to_string(node.dir.path("net.d/10-weavice.conflist")).unwrap()).unwrap();
    assert_eq!(conflist["plugins"][0]["ipam"]["ranges"], json!([[{"subnet": "10.44.1.0/24"}]]));
    merge(
        &mut conflist["plugins"][0],
        json!({"stateDir": node.dir.path("state"), "logFile": node.dir.path("weavice.log"),
            "ipam": {"type": "weavice-ipam", "dataDir": node.dir.path("ipam"), "ranges": [[{"subnet": "10.44.1.0/24"}]]}}),
    );
    node.write_conflist("weavice", "1.0.0", vec![conflist["plugins"][0].clone()]);
    let pod = Netns::new("insp");
    let added = node.cnitool("add", "weavice", &pod, &[]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(String::from_utf8_lossy(&added.stdout).contains("10.44.1."), "{}", String::from_utf8_lossy(&added.stdout));
}

#[test]
fn install_takes_the_pod_cidr_from_the_node_object_and_retries_until_it_can() {
    if !require_root() {
        return;
    }
    let node = Node::new("ink");
    std::fs::create_dir_all(node.dir.path("bin")).unwrap();
    // a conflist directory that cannot be written yet: a file in its place
    std::fs::write(node.dir.path("net.d"), "not a directory").unwrap();
    let listener = node.ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let api = NodeApi::serve(listener);
    let kubeconfig = node.dir.path("kubeconfig");
    write_kubeconfig(&kubeconfig, port);
    // the node has no podCIDR yet either
    api.set(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.70.1"}]}}));
    let log = node.dir.path("install.log");
    let child = Killed(
        Command::new("ip")
            .args(["netns", "exec", &node.ns.name, &bin("weavice-agent"), "install", "--node-name", "node-1"])
            .args(["--cni-bin-dir", &node.dir.path("bin"), "--cni-conf-dir", &node.dir.path("net.d")])
            .env("KUBECONFIG", &kubeconfig)
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let said = |what: &str| std::fs::read_to_string(&log).unwrap_or_default().contains(what);
    assert!(eventually(|| said("node node-1 has no podCIDR")), "{}", std::fs::read_to_string(&log).unwrap_or_default());
    api.set(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.45.1.0/24", "podCIDRs": ["10.45.1.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.70.1"}]}}));
    assert!(
        eventually(|| said("net.d")),
        "the directory is named: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::fs::remove_file(node.dir.path("net.d")).unwrap();
    std::fs::create_dir(node.dir.path("net.d")).unwrap();
    let mut child = child;
    assert!(child.0.wait().unwrap().success());
    let conflist = std::fs::read_to_string(node.dir.path("net.d/10-weavice.conflist")).unwrap();
    assert!(conflist.contains("10.45.1.0/24"), "{conflist}");
}
