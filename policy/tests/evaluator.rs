//! The evaluator's truth tables: namespaces x, y, z with pods a, b, c
//! (labels `ns`, `pod`; container ports serve-80-tcp, serve-81-tcp,
//! serve-80-udp), one policy set per rule of the API reference and the
//! upstream netpol e2e scenarios, and the verdict expected for every
//! (source, destination, protocol, port), written as the rule says it.
//! Then the API reference's own example, and policies the API server would
//! reject.

use policy::netpol::evaluate::{evaluate, End, Namespaces, Pod};
use policy::netpol::model::{parse, NetworkPolicy, Protocol};
use std::net::IpAddr;

struct World {
    pods: Vec<(Pod, IpAddr)>,
    namespaces: Namespaces,
}

fn world() -> World {
    let mut pods = Vec::new();
    let mut namespaces = Namespaces::default();
    for (i, ns) in ["x", "y", "z"].iter().enumerate() {
        namespaces.0.insert(
            ns.to_string(),
            [("ns".to_string(), ns.to_string()), ("kubernetes.io/metadata.name".to_string(), ns.to_string())].into(),
        );
        for (j, name) in ["a", "b", "c"].iter().enumerate() {
            let pod = Pod {
                namespace: ns.to_string(),
                name: name.to_string(),
                labels: [("pod".to_string(), name.to_string()), ("ns".to_string(), ns.to_string())].into(),
                ports: vec![
                    ("serve-80-tcp".into(), 80, Protocol::TCP),
                    ("serve-81-tcp".into(), 81, Protocol::TCP),
                    ("serve-80-udp".into(), 80, Protocol::UDP),
                ],
                host_ip: Some("192.168.0.1".parse().unwrap()),
            };
            pods.push((pod, format!("10.0.{i}.{}", j + 1).parse().unwrap()));
        }
    }
    World { pods, namespaces }
}

fn policies(yaml: &str) -> Vec<NetworkPolicy> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.iter().map(|d| parse(d, "test").unwrap()).collect()
}

/// Who, in the truth table: namespace and pod name.
type Id<'a> = (&'a str, &'a str);

/// Checks every (source, destination, protocol, port) against `expected`.
fn table(name: &str, yaml: &str, expected: impl Fn(Id, Id, Protocol, u16) -> bool) {
    let w = world();
    let ps = policies(yaml);
    let mut wrong = Vec::new();
    for (from, from_ip) in &w.pods {
        for (to, to_ip) in &w.pods {
            for (proto, port) in [(Protocol::TCP, 80), (Protocol::TCP, 81), (Protocol::UDP, 80)] {
                let v = evaluate(&ps, &w.namespaces, End::Pod(from, *from_ip), End::Pod(to, *to_ip), proto, port);
                let same = from.namespace == to.namespace && from.name == to.name;
                let want = same || expected((&from.namespace, &from.name), (&to.namespace, &to.name), proto, port);
                if v.allowed != want {
                    wrong.push(format!(
                        "{}/{} -> {}/{} {proto} {port}: {} (want {want}) {:?}",
                        from.namespace, from.name, to.namespace, to.name, v.allowed, v.reasons
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{name}: {} wrong:\n{}", wrong.len(), wrong.join("\n"));
}

const DENY_INGRESS_X: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}
";

#[test]
fn no_policy_allows_everything() {
    table("none", "", |_, _, _, _| true);
}

#[test]
fn an_empty_pod_selector_isolates_the_whole_namespace() {
    table("deny ingress x", DENY_INGRESS_X, |_, to, _, _| to.0 != "x");
}

#[test]
fn a_peer_with_only_a_pod_selector_means_the_policys_namespace() {
    let p = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{podSelector: {}}]}]
";
    table("same namespace", p, |from, to, _, _| to != ("x", "a") || from.0 == "x");
}

#[test]
fn namespace_and_pod_selectors_in_one_peer_are_and_in_two_peers_or() {
    let and = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: \"y\"}}, podSelector: {matchLabels: {pod: b}}}]}]
";
    table("and", and, |from, to, _, _| to != ("x", "a") || from == ("y", "b"));
    let or = and.replace("}, podSelector: {matchLabels: {pod: b}}}", "}}, {podSelector: {matchLabels: {pod: b}}}");
    table("or", &or, |from, to, _, _| to != ("x", "a") || from.0 == "y" || from == ("x", "b"));
    let all_namespaces = and.replace("{matchLabels: {ns: \"y\"}}", "{}");
    table("any namespace", &all_namespaces, |from, to, _, _| to != ("x", "a") || from.1 == "b");
}

#[test]
fn ports_protocols_named_ports_and_ranges() {
    let base = |ports: &str| {
        format!(
            "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p, namespace: x}}
spec:
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress: [{{ports: [{ports}]}}]
"
        )
    };
    table("port 80", &base("{port: 80}"), |_, to, proto, port| {
        to != ("x", "a") || (proto == Protocol::TCP && port == 80)
    });
    table("named", &base("{port: serve-81-tcp}"), |_, to, proto, port| {
        to != ("x", "a") || (proto == Protocol::TCP && port == 81)
    });
    table("named udp", &base("{port: serve-80-udp, protocol: UDP}"), |_, to, proto, port| {
        to != ("x", "a") || (proto == Protocol::UDP && port == 80)
    });
    table("range", &base("{port: 80, endPort: 81}"), |_, to, proto, _| to != ("x", "a") || proto == Protocol::TCP);
    table("protocol only", &base("{protocol: UDP}"), |_, to, proto, _| to != ("x", "a") || proto == Protocol::UDP);
    // a named port no container defines admits nothing
    table("undefined name", &base("{port: nothing}"), |_, to, _, _| to != ("x", "a"));
}

#[test]
fn egress_isolation_needs_egress_in_policy_types() {
    let deny_egress = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
";
    table("deny egress", deny_egress, |from, _, _, _| from != ("x", "a"));
    // `egress: []` makes no Egress policy; the default type is Ingress
    let empty_egress = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {matchLabels: {pod: a}}, egress: []}
";
    table("egress: []", empty_egress, |_, to, _, _| to != ("x", "a"));
    let to_z = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: serve-80-tcp}]}]
";
    // named ports in egress: the destination pod's; without policyTypes an
    // egress section makes it Ingress and Egress, so x/a's ingress is shut
    table("egress to z", to_z, |from, to, proto, port| {
        (from != ("x", "a") || (to.0 == "z" && proto == Protocol::TCP && port == 80)) && to != ("x", "a")
    });
}

#[test]
fn ip_blocks_match_pod_addresses_with_except() {
    let p = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 10.0.1.0/24, except: [10.0.1.2/32]}}]}]
";
    table("ipBlock", p, |from, to, _, _| to != ("x", "a") || (from.0 == "y" && from.1 != "b"));
}

#[test]
fn expressions_and_the_union_of_policies() {
    let p = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p1, namespace: x}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}
  ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a]}]}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p2, namespace: x}
spec:
  podSelector: {matchExpressions: [{key: pod, operator: Exists}]}
  ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: missing, operator: DoesNotExist}]}, podSelector: {matchLabels: {pod: a}}}]}]
";
    // every x pod is isolated (p2); x/a and x/b also admit x's b and c (p1); all admit a from anywhere (p2)
    table("expressions", p, |from, to, _, _| {
        to.0 != "x" || from.1 == "a" || matches!(to.1, "a" | "b") && from.0 == "x"
    });
}

#[test]
fn a_pods_own_node_may_always_connect_to_it() {
    let w = world();
    let ps = policies(DENY_INGRESS_X);
    let (xa, ip) = &w.pods[0];
    let node = End::Address("192.168.0.1".parse().unwrap());
    assert!(evaluate(&ps, &w.namespaces, node, End::Pod(xa, *ip), Protocol::TCP, 80).allowed);
    let other = End::Address("192.168.0.2".parse().unwrap());
    let v = evaluate(&ps, &w.namespaces, other, End::Pod(xa, *ip), Protocol::TCP, 80);
    assert!(!v.allowed && v.ingress.isolated && v.ingress.selected_by == ["x/deny"], "{v:?}");
}

/// The example of the API reference (concepts/services-networking/network-policies).
#[test]
fn the_api_references_example() {
    let p = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
";
    let ps = policies(p);
    let pod = |ns: &str, role: &str| Pod {
        namespace: ns.into(),
        name: role.into(),
        labels: [("role".to_string(), role.to_string())].into(),
        ports: vec![],
        host_ip: None,
    };
    let mut ns = Namespaces::default();
    ns.0.insert("myproject".into(), [("project".to_string(), "myproject".to_string())].into());
    let (db, frontend, other, mine) =
        (pod("default", "db"), pod("default", "frontend"), pod("default", "other"), pod("myproject", "any"));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let check = |from: End, to: End, port: u16| evaluate(&ps, &ns, from, to, Protocol::TCP, port).allowed;
    let db_end = End::Pod(&db, ip("10.1.0.1"));
    assert!(check(End::Pod(&frontend, ip("10.1.0.2")), db_end, 6379));
    assert!(!check(End::Pod(&frontend, ip("10.1.0.2")), db_end, 6380));
    assert!(!check(End::Pod(&other, ip("10.1.0.3")), db_end, 6379));
    assert!(check(End::Pod(&mine, ip("10.2.0.1")), db_end, 6379));
    assert!(check(End::Address(ip("172.17.2.5")), db_end, 6379));
    assert!(!check(End::Address(ip("172.17.1.5")), db_end, 6379));
    assert!(check(db_end, End::Address(ip("10.0.0.5")), 5978));
    assert!(!check(db_end, End::Address(ip("10.0.0.5")), 80));
    assert!(!check(db_end, End::Pod(&other, ip("10.1.0.3")), 5978));
    // frontend is not isolated at all
    assert!(check(End::Pod(&frontend, ip("10.1.0.2")), End::Pod(&other, ip("10.1.0.3")), 1));
}

#[test]
fn what_the_api_server_rejects_is_an_error_naming_the_field() {
    let head = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n";
    for (spec, says) in [
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
            "spec.ingress[0].ports[0].endPort: may not be set with a named port",
        ),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}", "endPort: 80 is below port 90"),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}",
            "ipBlock may not be combined",
        ),
        (
            "spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}",
            "spec.egress[0].to[0].ipBlock.cidr",
        ),
        (
            "spec: {podSelector: {matchExpressions: [{key: a, operator: Like, values: [b]}]}}",
            "spec.podSelector.matchExpressions[0].operator",
        ),
        ("spec: {podSelector: {}, policyTypes: [Sideways]}", "spec.policyTypes[0]"),
        ("spec: {podSelector: {}, ingress: [{ports: [{protocol: ICMP}]}]}", "ports[0].protocol"),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: \"80\"}]}]}", "write a number unquoted"),
        ("spec: {podSelector: {}, ingress: [{from: [{}]}]}", "a peer needs"),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}",
            "not strictly within",
        ),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: -http}]}]}", "is not a port name"),
        ("spec: {podSelector: {}, policyTypes: [Ingress, Ingress]}", "given twice"),
    ] {
        let v: serde_json::Value = serde_saphyr::from_str(&format!("{head}{spec}")).unwrap();
        let e = parse(&v, "f.yaml").unwrap_err();
        assert!(e.contains(says), "{spec}: {e}");
    }
    let v: serde_json::Value = serde_saphyr::from_str("apiVersion: v1\nkind: Pod\nmetadata: {name: p}").unwrap();
    assert!(parse(&v, "f.yaml").unwrap_err().contains("not a NetworkPolicy"));
}
