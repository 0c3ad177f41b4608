//! A pod's forwards as nat rules (iptables has no DNAT maps): a DNAT rule
//! per forward in `WEAVICE-HOSTPORTS`, a masquerade rule per hairpin
//! address in `WEAVICE-MASQ`, each in its family's tool.

use super::rules::XtRule;
use super::skeleton::{HOSTPORTS, MASQ};
use crate::firewall::{PodRules, PortForward};
use ipnet::IpNet;
use std::net::IpAddr;

fn target(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn dnat(f: &PortForward) -> XtRule {
    let p = f.protocol;
    let dst = f.host_ip.map(|h| format!("-d {} ", IpNet::from(h))).unwrap_or_default();
    let to = target(f.pod_ip, f.pod_port);
    XtRule::new("nat", HOSTPORTS, &format!("{dst}-p {p} -m {p} --dport {} -j DNAT --to-destination {to}", f.host_port))
}

fn hairpin(ip: IpAddr) -> XtRule {
    let host = IpNet::from(ip);
    XtRule::new("nat", MASQ, &format!("-s {host} -d {host} -m conntrack --ctstate DNAT -j MASQUERADE"))
}

/// Whether a saved nat rule forwards to `ip` or masquerades its hairpin
/// traffic (for an attachment whose state is lost).
pub fn concerns(rule: &XtRule, ip: IpAddr) -> bool {
    let to = |args: &[String]| {
        args.windows(2).any(|w| {
            w[0] == "--to-destination"
                && w[1].rsplit_once(':').is_some_and(|(a, _)| a.trim_matches(['[', ']']) == ip.to_string())
        })
    };
    (rule.chain == HOSTPORTS && to(&rule.args)) || *rule == hairpin(ip)
}

/// The rules of each family: (v4, rules) for IPv4, then IPv6.
pub fn rules_by_family(f: &PodRules) -> [(bool, Vec<XtRule>); 2] {
    let all: Vec<(bool, XtRule)> = f
        .forwards
        .iter()
        .map(|fw| (fw.pod_ip.is_ipv4(), dnat(fw)))
        .chain(f.hairpin.iter().map(|ip| (ip.is_ipv4(), hairpin(*ip))))
        .collect();
    [true, false].map(|v4| (v4, all.iter().filter(|(f, _)| *f == v4).map(|(_, r)| r.clone()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::pod::tests::sample;

    #[test]
    fn forward_rules_look_as_iptables_save_prints_them() {
        let [(_, v4), (_, v6)] = rules_by_family(&sample());
        let v4: Vec<String> = v4.iter().map(XtRule::append).collect();
        assert_eq!(v4[0], "-A WEAVICE-HOSTPORTS -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80");
        assert_eq!(
            v4[1],
            "-A WEAVICE-HOSTPORTS -d 192.0.2.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.5:5353"
        );
        assert_eq!(v4[2], "-A WEAVICE-MASQ -s 10.0.0.5/32 -d 10.0.0.5/32 -m conntrack --ctstate DNAT -j MASQUERADE");
        assert_eq!(
            v6[0].append(),
            "-A WEAVICE-HOSTPORTS -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::5]:80"
        );
        let (pod, other): (IpAddr, IpAddr) = ("fd00::5".parse().unwrap(), "fd00::6".parse().unwrap());
        assert!(v6.iter().all(|r| concerns(r, pod)) && !v6.iter().any(|r| concerns(r, other)));
    }
}
