//! Which connections the journal keeps: those touching a pod range of a
//! network weavice recorded in the state dir. The daemon's own health
//! probes (from a range's network address) are not pods' traffic.

use datapath::attachment::Attachment;
use datapath::conntrack::events::Flow;
use datapath::network;
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scope {
    ranges: Vec<IpNet>,
    /// The node's own addresses in the ranges.
    gateways: Vec<IpAddr>,
}

impl Scope {
    /// The ranges of every recorded network: its gateways' and, for
    /// networks whose addresses another IPAM hands out, its pods'.
    pub fn load(state_dir: &str) -> Scope {
        let (mut ranges, mut gateways) = (Vec::new(), Vec::new());
        for (name, want) in network::recorded(state_dir).unwrap_or_default() {
            ranges.extend(want.gateways.iter().map(IpNet::trunc));
            gateways.extend(want.gateways.iter().map(IpNet::addr));
            for a in Attachment::list(state_dir, &name).into_iter().flatten() {
                ranges.extend(a.ranges.iter().map(IpNet::trunc));
            }
        }
        ranges.sort();
        ranges.dedup();
        Scope { ranges, gateways }
    }

    /// Whether `ip` is a pod's address: in a range, and neither the node's
    /// (node-to-pod traffic, kubelet's probes) nor a range's network address.
    pub fn is_pod_address(&self, ip: IpAddr) -> bool {
        !self.gateways.contains(&ip) && self.ranges.iter().any(|r| r.contains(&ip) && r.network() != ip)
    }

    fn in_range(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.ranges.iter().any(|r| r.contains(&ip)))
    }

    pub fn keeps(&self, f: &Flow) -> bool {
        let probe = f.original.src.is_some_and(|s| self.ranges.iter().any(|r| r.network() == s));
        !probe && [f.original.src, f.original.dst, f.reply.src, f.reply.dst].into_iter().any(|ip| self.in_range(ip))
    }
}

/// When the state dir's networks last changed (a network's marker is
/// written at its first ADD): one stat tells whether to load them again.
pub struct Stamp {
    dir: std::path::PathBuf,
    seen: Option<std::time::SystemTime>,
}

impl Stamp {
    pub fn new(state_dir: &str) -> Stamp {
        let mut s = Stamp { dir: std::path::Path::new(state_dir).join("networks"), seen: None };
        s.changed();
        s
    }

    pub fn changed(&mut self) -> bool {
        let now = std::fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        std::mem::replace(&mut self.seen, now) != now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datapath::conntrack::events::Tuple5;

    fn flow(src: &str, dst: &str, reply_src: &str) -> Flow {
        let ip = |s: &str| Some(s.parse().unwrap());
        Flow {
            original: Tuple5 { src: ip(src), dst: ip(dst), protocol: 6, ..Default::default() },
            reply: Tuple5 { src: ip(reply_src), dst: ip(src), protocol: 6, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn flows_touching_a_range_are_kept_probes_are_not() {
        let scope =
            Scope { ranges: vec!["10.22.0.0/24".parse().unwrap()], gateways: vec!["10.22.0.1".parse().unwrap()] };
        assert!(scope.keeps(&flow("10.22.0.2", "10.22.0.3", "10.22.0.3")));
        // to a Service address DNATed to a pod: the pod is in the reply
        assert!(scope.keeps(&flow("192.168.1.5", "10.96.0.10", "10.22.0.3")));
        assert!(!scope.keeps(&flow("192.168.1.5", "192.168.1.6", "192.168.1.6")));
        assert!(!scope.keeps(&flow("10.22.0.0", "10.22.0.1", "10.22.0.1")), "a health probe");
        assert!(scope.keeps(&flow("10.22.0.1", "10.22.0.5", "10.22.0.5")), "the node to a pod");
        let ip = |s: &str| s.parse().unwrap();
        assert!(scope.is_pod_address(ip("10.22.0.5")));
        assert!(!scope.is_pod_address(ip("10.22.0.1")) && !scope.is_pod_address(ip("10.22.0.0")));
    }
}
