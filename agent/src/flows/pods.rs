//! The daemon's view of which pod held an address when (the journal's
//! [`Holdings`]), kept current by following the journal as the plugin
//! appends pod records, and seeded with the pods the state dir has now
//! (their ADD may be in a file retention removed).

use datapath::attachment::Attachment;
use datapath::network;
use journal::holdings::{is_pod_line, Holdings};
use journal::read::{self, Follower};
use journal::{Endpoint, PodRecord};
use std::net::IpAddr;
use std::path::Path;

pub struct Pods {
    holdings: Holdings,
    follower: Follower,
}

impl Pods {
    pub fn load(state_dir: &str, journal_dir: &Path) -> Pods {
        let mut pods = Pods { holdings: Holdings::default(), follower: Follower::from_start(journal_dir) };
        pods.refresh();
        let node = journal::node_name();
        for (name, _) in network::recorded(state_dir).unwrap_or_default() {
            for a in Attachment::list(state_dir, &name).into_iter().flatten() {
                let pod = a.pod.clone().map(|p| Endpoint { namespace: p.namespace, pod_name: p.name, uid: p.uid });
                for ip in a.pod_ips() {
                    pods.holdings.seed(ip, &node, &a.container_id, pod.clone());
                }
            }
        }
        pods
    }

    /// Takes in the pod records appended since the last refresh.
    pub fn refresh(&mut self) {
        let holdings = &mut self.holdings;
        self.follower.poll(&mut |line| {
            // most lines are flows: only pod records are parsed
            if is_pod_line(line) {
                if let read::Line::Record(r) = read::line::<PodRecord>(line, "pod") {
                    holdings.apply(&r);
                }
            }
        });
    }

    /// The pod that held `ip` at `time` (a record time).
    pub fn at(&self, ip: IpAddr, time: &str) -> Option<&Endpoint> {
        self.holdings.at(ip, time)
    }
}
