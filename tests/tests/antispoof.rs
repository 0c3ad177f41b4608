//! Anti-spoofing (issue 15): a pod speaks only as itself. Pods are added with
//! cnitool; each check runs with `antiSpoofing` on (the default), where the
//! spoof must fail, and off, where the same spoof must work (so the test
//! could fail: the forged packets are good ones).

use serde_json::{json, Value};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use weavice_tests::*;

const NET: &str = "spoofnet";

/// A node with a network and pods added through cnitool.
struct Cluster {
    node: Node,
    pods: Vec<Netns>,
    results: Vec<Value>,
}

impl Cluster {
    fn new(tag: &str, extra: Value, pods: usize) -> Cluster {
        Cluster::with_ranges(tag, extra, pods, None)
    }

    /// `ranges`: IPAM's range sets instead of the fixture's.
    fn with_ranges(tag: &str, extra: Value, pods: usize, ranges: Option<Value>) -> Cluster {
        let node = Node::new(tag);
        let mut conf = node.conf("1.0.0", NET, extra);
        if let Some(r) = ranges {
            conf["ipam"]["ranges"] = r;
        }
        node.write_conflist(NET, "1.0.0", vec![conf]);
        let mut c = Cluster { node, pods: Vec::new(), results: Vec::new() };
        for i in 0..pods {
            let pod = Netns::new(&format!("{tag}{i}"));
            let out = c.node.cnitool("add", NET, &pod, &[]);
            assert!(out.status.success(), "cnitool add: {}", String::from_utf8_lossy(&out.stderr));
            c.results.push(serde_json::from_slice(&out.stdout).expect("result JSON"));
            c.pods.push(pod);
        }
        c
    }

    /// Pod `i`'s addresses of one family, as IPAM gave them.
    fn ips(&self, i: usize, v4: bool) -> Vec<IpAddr> {
        let ips = self.results[i]["ips"].as_array().cloned().unwrap_or_default();
        let addrs = ips.iter().filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok());
        addrs.filter(|a: &IpAddr| a.is_ipv4() == v4).collect()
    }

    fn ip(&self, i: usize, v4: bool) -> IpAddr {
        self.ips(i, v4)[0]
    }

    /// (host port, pod MAC) of pod `i`: the interface outside the pod that is
    /// not the bridge, and the one inside.
    fn port_and_mac(&self, i: usize) -> (String, String) {
        let ifs = self.results[i]["interfaces"].as_array().cloned().unwrap_or_default();
        let field = |sandbox: bool, key: &str| {
            ifs.iter()
                .filter(|f| f.get("sandbox").is_some() == sandbox)
                .filter_map(|f| f[key].as_str())
                .find(|v| sandbox || *v != "wv0")
                .unwrap_or_default()
                .to_string()
        };
        (field(false, "name"), field(true, "mac"))
    }

    /// Packets the antispoof rule containing `rule` dropped (0 without the chain).
    fn dropped(&self, rule: &str) -> u64 {
        let out = self.node.ns.exec("nft", &["list", "chain", "bridge", "weavice", "antispoof"]);
        let chain = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = chain.lines().find(|l| l.contains(rule)).unwrap_or_default();
        line.split("packets ")
            .nth(1)
            .and_then(|n| n.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A port no listener of this test binary used before.
fn next_port() -> u16 {
    static PORT: AtomicU16 = AtomicU16::new(7100);
    PORT.fetch_add(1, Ordering::SeqCst)
}

/// Sends one datagram from `from`, with source address `src`, to address
/// `to` in `at` (a port of its own each time); whether it arrived, and from where.
fn udp_from(from: &Netns, src: IpAddr, at: &Netns, to: IpAddr) -> Option<IpAddr> {
    let to = SocketAddr::new(to, next_port());
    let listener = at.run(move || UdpSocket::bind(to).expect("bind listener"));
    listener.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
    from.run(move || {
        let s = UdpSocket::bind(SocketAddr::new(src, 0)).expect("bind sender");
        for _ in 0..3 {
            let _ = s.send_to(b"spoof", to);
        }
    });
    let mut buf = [0u8; 16];
    listener.recv_from(&mut buf).ok().map(|(_, from)| from.ip())
}

/// A pod sending from another pod's address gets nothing through, to a
/// third pod or to the outside, and its packets are counted as dropped; from
/// its own addresses (a second IPv4 one from IPAM too) everything works.
#[test]
fn a_pod_cannot_send_from_another_pods_address() {
    if !require_root() {
        return;
    }
    // the iptables backend checks identities in nf_tables' bridge family too
    // (with one IPv4 range: its masquerade rule excludes only a range's own
    // destinations, so a second range's traffic to the first would be masqueraded)
    for (anti_spoofing, backend) in [(true, "nftables"), (false, "nftables"), (true, "iptables")] {
        let v4_ranges = if backend == "nftables" { 2 } else { 1 };
        let mut ranges = vec![json!([{"subnet": "10.88.0.0/24"}]), json!([{"subnet": "fd88::/64"}])];
        if v4_ranges == 2 {
            ranges.insert(1, json!([{"subnet": "10.89.0.0/24"}]));
        }
        let ranges = Value::Array(ranges);
        let extra = json!({"antiSpoofing": anti_spoofing, "firewallBackend": backend});
        let c = Cluster::with_ranges("sp", extra, 3, Some(ranges));
        let outside = Netns::new("spo");
        attach_outside(&c.node.ns, &outside);
        let (p1, p3) = (&c.pods[0], &c.pods[2]);
        let on = if anti_spoofing { format!("on ({backend})") } else { "off".into() };

        // its own addresses, both IPv4 ones and the IPv6 one
        assert_eq!(c.ips(0, true).len(), v4_ranges, "{on}: an IPv4 address from each range");
        for src in [c.ips(0, true), c.ips(0, false)].concat() {
            assert_eq!(udp_from(p1, src, p3, c.ip(2, src.is_ipv4())), Some(src), "{on}: from its own {src}");
        }

        // another pod's, put on its own interface
        for v4 in [true, false] {
            let stolen = c.ip(1, v4);
            let prefix = if v4 { "32" } else { "128" };
            p1.ip(&["addr", "add", &format!("{stolen}/{prefix}"), "dev", "eth0", "nodad"]);
            let outside_addr: IpAddr = if v4 { "203.0.113.2" } else { "2001:db8:113::2" }.parse().unwrap();
            let to_pod = udp_from(p1, stolen, p3, c.ip(2, v4));
            let to_outside = udp_from(p1, stolen, &outside, outside_addr);
            let rule = if v4 { "ip saddr != 0.0.0.0" } else { "ip6 saddr != {" };
            if anti_spoofing {
                assert_eq!((to_pod, to_outside), (None, None), "{on}: from {stolen}, nothing gets through");
                assert!(c.dropped(rule) >= 6, "{on}: counted as dropped: {}", c.dropped(rule));
            } else {
                assert_eq!(to_pod, Some(stolen), "{on}: the spoof works with antiSpoofing off");
                assert!(to_outside.is_some(), "{on}: to the outside too");
            }
        }
    }
}

/// An Ethernet frame sent as is from `ns`'s eth0.
fn send_frame(ns: &Netns, frame: Vec<u8>) {
    ns.run(move || {
        // SAFETY: plain socket calls on a descriptor this thread owns.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "packet socket");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            libc::close(fd);
            assert_eq!(sent, frame.len() as isize, "frame sent");
        }
    });
}

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// A gratuitous ARP reply: `mac` claims `ip`.
fn arp_claim(mac: &[u8], ip: IpAddr) -> Vec<u8> {
    let IpAddr::V4(ip) = ip else { panic!("IPv4") };
    let mut f = vec![0xff; 6];
    f.extend(mac);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend(mac);
    f.extend(ip.octets());
    f.extend([0xff; 6]);
    f.extend(ip.octets());
    f
}

/// The Internet checksum of `parts`, one after another.
fn checksum(parts: &[&[u8]]) -> u16 {
    let bytes = parts.concat();
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv6 frame: `payload` of protocol `next` from `src` to `dst`, its
/// checksum (at `sum_at` in the payload) filled in.
fn ipv6_frame(
    to_mac: &[u8],
    mac: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    mut payload: Vec<u8>,
    sum_at: usize,
) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let sum = checksum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, next], &payload]);
    payload[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut f = [to_mac, mac, &[0x86, 0xdd, 0x60, 0, 0, 0]].concat();
    f.extend((payload.len() as u16).to_be_bytes());
    f.extend([next, 255]);
    f.extend(src.octets());
    f.extend(dst.octets());
    f.extend(payload);
    f
}

/// An unsolicited neighbour advertisement (override set) to all nodes, sent
/// from `mac` and `src`: `lladdr` (its link-layer address option) claims `target`.
fn neighbour_claim(mac: &[u8], src: &str, lladdr: &[u8], target: IpAddr) -> Vec<u8> {
    let IpAddr::V6(target) = target else { panic!("IPv6") };
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend(target.octets());
    icmp.extend([2, 1]);
    icmp.extend(lladdr);
    ipv6_frame(&[0x33, 0x33, 0, 0, 0, 1], mac, src.parse().unwrap(), "ff02::1".parse().unwrap(), 58, icmp, 2)
}

/// A UDP datagram to `port` in a frame to `to_mac`.
fn udp_frame(to_mac: &[u8], mac: &[u8], src: IpAddr, dst: IpAddr, port: u16) -> Vec<u8> {
    let p = port.to_be_bytes();
    let udp = [&[p[0], p[1], p[0], p[1], 0, 13, 0, 0][..], b"spoof"].concat();
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_frame(to_mac, mac, s, d, 17, udp, 6),
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            // IPv4 header (total length 33, TTL 64, UDP), UDP without a checksum
            let mut ip = vec![0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0];
            ip.extend(s.octets());
            ip.extend(d.octets());
            let sum = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            [to_mac, mac, &[0x08, 0x00], &ip, &udp].concat()
        }
        _ => panic!("one family"),
    }
}

/// Whether a datagram that `send` sends to the port it is given arrives at
/// `at` on `addr`.
fn arrives(at: &Netns, addr: IpAddr, send: impl FnOnce(u16)) -> bool {
    let port = next_port();
    let listener = at.run(move || UdpSocket::bind(SocketAddr::new(addr, port)).expect("bind listener"));
    listener.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
    send(port);
    listener.recv_from(&mut [0u8; 16]).is_ok()
}

/// The node's neighbour entry for `ip` on the bridge: its MAC.
fn neighbour(node: &Node, ip: IpAddr) -> String {
    let out = node.ns.ip(&["neigh", "show", &ip.to_string(), "dev", "wv0"]);
    out.split("lladdr ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_default().to_string()
}

/// ARP replies and neighbour advertisements claiming another pod's address,
/// or a pod's own address for another pod's MAC, do not change the node's
/// neighbour entries; the node's traffic to that pod still reaches it. IPv6
/// link-local traffic to the node works.
#[test]
fn arp_and_neighbour_advertisements_cannot_claim_another_pods_address() {
    if !require_root() {
        return;
    }
    for anti_spoofing in [true, false] {
        let c = Cluster::new("nd", json!({"antiSpoofing": anti_spoofing}), 2);
        let on = if anti_spoofing { "on" } else { "off" };
        let (p1, p2) = (&c.pods[0], &c.pods[1]);
        let (_, mac1) = c.port_and_mac(0);
        let (_, mac2) = c.port_and_mac(1);
        for v4 in [true, false] {
            let victim = c.ip(1, v4);
            assert!(ping(&c.node.ns, &victim.to_string()).is_some(), "{on}: the node reaches {victim}");
            assert_eq!(neighbour(&c.node, victim), mac2, "{on}: learnt");
            // past the kernel's locktime, in which it ignores a second answer
            std::thread::sleep(Duration::from_millis(1100));
            for _ in 0..3 {
                let mac = mac_bytes(&mac1);
                let frame =
                    if v4 { arp_claim(&mac, victim) } else { neighbour_claim(&mac, "fe80::5eed", &mac, victim) };
                send_frame(p1, frame);
            }
            std::thread::sleep(Duration::from_millis(200));
            if anti_spoofing {
                assert_eq!(neighbour(&c.node, victim), mac2, "{on}: {victim} still at its pod's MAC");
                assert!(ping(&c.node.ns, &victim.to_string()).is_some(), "{on}: and reached there");
            } else {
                assert_eq!(neighbour(&c.node, victim), mac1, "{on}: the claim works with antiSpoofing off");
            }
        }
        // p1 advertises its own address with p2's MAC as the link-layer
        // address: the node would send p1's traffic to p2
        let own = c.ip(0, false);
        assert!(ping(&c.node.ns, &own.to_string()).is_some(), "{on}: the node reaches {own}");
        std::thread::sleep(Duration::from_millis(1100));
        for src in ["fe80::5eed", "::"] {
            send_frame(p1, neighbour_claim(&mac_bytes(&mac1), src, &mac_bytes(&mac2), own));
        }
        std::thread::sleep(Duration::from_millis(200));
        let expected = if anti_spoofing { &mac1 } else { &mac2 };
        assert_eq!(&neighbour(&c.node, own), expected, "{on}: {own}'s entry after an option naming {mac2}");
        // IPv6 link-local, which NDP and DHCP-free setups use: pod to node and back
        let bridge_ll = c.node.ns.ip(&["-6", "-o", "addr", "show", "dev", "wv0", "scope", "link"]);
        let ll = bridge_ll.split("inet6 ").nth(1).and_then(|r| r.split('/').next()).expect("bridge link-local");
        assert!(ping(p2, &format!("{ll}%eth0")).is_some(), "{on}: link-local to the node");
    }
}

/// Two ways past the bridge's prerouting hook get nothing through: frames to
/// the reserved group addresses (01:80:c2:00:00:0x reach the node through the
/// input hook only) from another pod's address, and IPv6 with a link-local
/// source routed to another pod (the kernel checks that only across interfaces).
#[test]
fn group_addressed_frames_and_routed_link_local_sources_get_nothing_through() {
    if !require_root() {
        return;
    }
    for anti_spoofing in [true, false] {
        let c = Cluster::new("grp", json!({"antiSpoofing": anti_spoofing}), 2);
        let on = if anti_spoofing { "on" } else { "off" };
        let (p1, p2) = (&c.pods[0], &c.pods[1]);
        let (_, mac1) = c.port_and_mac(0);
        let mac1 = mac_bytes(&mac1);
        let bridge_mac = mac_bytes(c.results[0]["interfaces"][0]["mac"].as_str().unwrap());
        let gateway: IpAddr = "10.88.0.1".parse().unwrap();

        let group = [0x01, 0x80, 0xc2, 0, 0, 0x02];
        let stolen = c.ip(1, true);
        let got = arrives(&c.node.ns, gateway, |port| send_frame(p1, udp_frame(&group, &mac1, stolen, gateway, port)));
        assert_eq!(got, !anti_spoofing, "{on}: to a group address, from {stolen}");

        let victim = c.ip(1, false);
        let own = c.ip(0, false);
        let got = arrives(p2, victim, |port| send_frame(p1, udp_frame(&bridge_mac, &mac1, own, victim, port)));
        assert!(got, "{on}: routed from its own address");
        let link_local: IpAddr = "fe80::dead".parse().unwrap();
        let got = arrives(p2, victim, |port| send_frame(p1, udp_frame(&bridge_mac, &mac1, link_local, victim, port)));
        assert!(!got, "{on}: from a link-local source, not routed to another pod");
    }
}

/// A runtime asking for another pod's MAC, or the bridge's, is refused (7).
#[test]
fn a_requested_mac_that_is_taken_is_refused() {
    if !require_root() {
        return;
    }
    let c = Cluster::new("rqmac", json!({}), 1);
    let (_, taken) = c.port_and_mac(0);
    let bridge_mac = c.results[0]["interfaces"][0]["mac"].as_str().unwrap().to_string();
    let conf = c.node.conf("1.0.0", NET, json!({}));
    for mac in [taken, bridge_mac] {
        let pod = Netns::new("rqm");
        let r = c.node.cni_with_args("ADD", &conf, "rq", &pod.path(), "eth0", &format!("IgnoreUnknown=1;MAC={mac}"));
        assert_eq!(r.json["code"], 7, "{mac}: {}", r.stdout);
        assert!(r.json["msg"].as_str().unwrap().contains(&mac), "{}", r.stdout);
        assert_eq!(pod.links(), ["lo"], "nothing made");
    }
}

/// A pod that takes another pod's MAC cannot take its traffic: the bridge
/// keeps that MAC on the other pod's port, which still gets its packets.
#[test]
fn a_pod_with_another_pods_mac_cannot_take_its_traffic() {
    if !require_root() {
        return;
    }
    for anti_spoofing in [true, false] {
        let c = Cluster::new("mac", json!({"antiSpoofing": anti_spoofing, "podToPod": "bridged"}), 3);
        let on = if anti_spoofing { "on" } else { "off" };
        let (p1, p3) = (&c.pods[0], &c.pods[2]);
        let (port1, _) = c.port_and_mac(0);
        let (port2, mac2) = c.port_and_mac(1);
        let victim = c.ip(1, true).to_string();
        assert!(ping(p3, &victim).is_some(), "{on}: p3 reaches p2");
        p1.ip(&["link", "set", "eth0", "address", &mac2]);
        // frames from the stolen MAC (the bridge would learn it on p1's port),
        // among them LLDP, which the bridge learns from without a netfilter hook
        let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e];
        lldp.extend(mac_bytes(&mac2));
        lldp.extend([0x88, 0xcc]);
        lldp.resize(60, 0);
        for _ in 0..3 {
            send_frame(p1, lldp.clone());
            let _ = p1.exec("ping", &["-c", "1", "-W", "1", &c.ip(2, true).to_string()]);
        }
        let fdb = c.node.ns.exec("bridge", &["fdb", "show", "br", "wv0"]);
        let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
        let on_port = |port: &str| fdb.lines().any(|l| l.starts_with(&mac2) && l.contains(&format!("dev {port} ")));
        if anti_spoofing {
            assert!(!on_port(&port1) && on_port(&port2), "{on}: {mac2} stays on {port2}: {fdb}");
            assert!(ping(p3, &victim).is_some(), "{on}: p2 still gets its traffic");
            assert!(c.dropped("ether saddr") > 0, "{on}: the frames were dropped");
        } else {
            assert!(on_port(&port1), "{on}: the bridge learns the stolen MAC on {port1}: {fdb}");
        }
    }
}

/// CHECK names a missing element of the pod's identity, and repair puts it back.
#[test]
fn check_reports_a_missing_identity_and_repair_restores_it() {
    if !require_root() {
        return;
    }
    for backend in ["nftables", "iptables"] {
        check_and_repair(backend);
    }
}

fn check_and_repair(backend: &str) {
    let c = Cluster::new("idck", json!({"firewallBackend": backend}), 1);
    assert!(c.node.cnitool("check", NET, &c.pods[0], &[]).status.success(), "{backend}: intact");
    let (port, mac) = c.port_and_mac(0);
    let element = format!("{{ \"{port}\" . {mac} }}");
    assert!(c.node.ns.exec("nft", &["delete", "element", "bridge", "weavice", "pod_macs", &element]).status.success());
    let check = c.node.cnitool("check", NET, &c.pods[0], &[]);
    let err = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && err.contains("pod_macs") && err.contains(&port), "{backend}: {err}");
    let repair = c.node.ns.exec(&bin("weavice-agent"), &["repair", "--state-dir", &c.node.dir.path("state")]);
    assert!(repair.status.success(), "{}", String::from_utf8_lossy(&repair.stderr));
    assert!(c.node.cnitool("check", NET, &c.pods[0], &[]).status.success(), "restored");
}
