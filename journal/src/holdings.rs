//! Which pod held an address when: holdings built from pod records. An
//! address is reused by later pods, so a flow is joined by its start time.
//! The daemon's are bounded (per address, the open holding and the last few
//! ended ones); the policy tool, which joins a whole journal's flows after
//! reading its pod records, keeps every holding.

use crate::read::fixed_kind;
use crate::record::{Endpoint, PodEvent, PodRecord};
use std::collections::HashMap;
use std::net::IpAddr;

/// Ended holdings kept per address, for flows that outlive their pod.
const ENDED_KEPT: usize = 4;

struct Holding {
    node: String,
    /// Record times (RFC 3339, nine digits: they compare as text); "" for
    /// a pod held since before anything recorded.
    from: String,
    until: Option<String>,
    container_id: String,
    pod: Option<Endpoint>,
}

pub struct Holdings {
    by_ip: HashMap<IpAddr, Vec<Holding>>,
    ended_kept: usize,
}

impl Default for Holdings {
    fn default() -> Self {
        Holdings { by_ip: HashMap::new(), ended_kept: ENDED_KEPT }
    }
}

/// Who held an address: the pod (when the runtime named it) on its node.
pub struct Holder<'a> {
    pub node: &'a str,
    pub pod: Option<&'a Endpoint>,
}

impl Holdings {
    /// Holdings that keep every ended one.
    pub fn keeping_all() -> Holdings {
        Holdings { by_ip: HashMap::new(), ended_kept: usize::MAX }
    }

    /// Takes in a pod record (in time order).
    pub fn apply(&mut self, r: &PodRecord) {
        for ip in r.ips.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
            let holdings = self.by_ip.entry(ip).or_default();
            // one address, one holder: whatever held it has let it go
            for h in holdings.iter_mut().filter(|h| h.until.is_none()) {
                if r.event == PodEvent::Add || h.container_id == r.container_id {
                    h.until = Some(r.time.clone());
                }
            }
            // a DEL whose ADD rotated away: held until now, since the last holding ended
            let known = holdings.iter().any(|h| h.container_id == r.container_id);
            if r.event == PodEvent::Del && !known {
                let from = holdings.iter().filter_map(|h| h.until.clone()).max().unwrap_or_default();
                holdings.push(Holding {
                    node: r.node.clone(),
                    from,
                    until: Some(r.time.clone()),
                    container_id: r.container_id.clone(),
                    pod: r.pod.clone(),
                });
            }
            if r.event == PodEvent::Add {
                holdings.push(Holding {
                    node: r.node.clone(),
                    from: r.time.clone(),
                    until: None,
                    container_id: r.container_id.clone(),
                    pod: r.pod.clone(),
                });
            }
            let ended = holdings.iter().filter(|h| h.until.is_some()).count();
            if ended > self.ended_kept {
                let mut drop = ended - self.ended_kept;
                holdings.retain(|h| {
                    let old = h.until.is_some() && drop > 0;
                    drop -= usize::from(old);
                    !old
                });
            }
        }
    }

    /// A pod that holds `ip` now, known otherwise than by a record (its ADD
    /// record gone with a rotated file): held since the last holding of the
    /// address ended. Nothing changes if its holding is known.
    pub fn seed(&mut self, ip: IpAddr, node: &str, container_id: &str, pod: Option<Endpoint>) {
        let holdings = self.by_ip.entry(ip).or_default();
        if holdings.iter().any(|h| h.until.is_none() && h.container_id == container_id) {
            return;
        }
        let from = holdings.iter().filter_map(|h| h.until.clone()).max().unwrap_or_default();
        holdings.push(Holding {
            node: node.to_string(),
            from,
            until: None,
            container_id: container_id.to_string(),
            pod,
        });
    }

    /// The pod that held `ip` at `time` (a record time).
    pub fn at(&self, ip: IpAddr, time: &str) -> Option<&Endpoint> {
        self.holder(ip, time).and_then(|h| h.pod)
    }

    /// Whether any pod held `ip` at any time.
    pub fn knows(&self, ip: IpAddr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// Who held `ip` at `time`, named or not.
    pub fn holder(&self, ip: IpAddr, time: &str) -> Option<Holder<'_>> {
        let holdings = self.by_ip.get(&ip)?;
        holdings
            .iter()
            .rev()
            .find(|h| h.from.as_str() <= time && h.until.as_deref().is_none_or(|u| time <= u))
            .map(|h| Holder { node: &h.node, pod: h.pod.as_ref() })
    }
}

/// Whether a journal line may be a pod record, without parsing it (see
/// [`fixed_kind`]); a line of another layout is searched.
pub fn is_pod_line(line: &[u8]) -> bool {
    match fixed_kind(line) {
        Some(kind) => kind == b"pod",
        None => line.windows(12).any(|w| w == br#""kind":"pod""#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: PodEvent, time: &str, id: &str, name: &str) -> PodRecord {
        PodRecord {
            v: 1,
            time: time.into(),
            kind: "pod".into(),
            event,
            node: "n".into(),
            network: "net".into(),
            container_id: id.into(),
            ifname: "eth0".into(),
            netns: "/x".into(),
            pod: Some(Endpoint { namespace: "shop".into(), pod_name: name.into(), uid: None }),
            ips: vec!["10.22.0.5".into()],
            mac: String::new(),
            host_veth: String::new(),
            port_mappings: vec![],
            lost_before: 0,
        }
    }

    #[test]
    fn pod_lines_are_found_by_their_kind() {
        let pod =
            serde_json::to_string(&record(PodEvent::Add, "2026-11-28T10:00:00.000000000Z", "a", "api-1")).unwrap();
        assert!(is_pod_line(pod.as_bytes()));
        let flow = r#"{"v":1,"time":"2026-11-28T10:00:00.000000000Z","kind":"flow","node":"pod"}"#;
        assert!(!is_pod_line(flow.as_bytes()));
        assert!(is_pod_line(br#"{"kind":"pod","v":1}"#), "another writer's order");
    }

    #[test]
    fn a_reused_address_is_joined_by_time() {
        let mut pods = Holdings::default();
        pods.apply(&record(PodEvent::Add, "2026-11-28T10:00:00.000000000Z", "a", "api-1"));
        pods.apply(&record(PodEvent::Del, "2026-11-28T10:05:00.000000000Z", "a", "api-1"));
        pods.apply(&record(PodEvent::Add, "2026-11-28T10:06:00.000000000Z", "b", "api-2"));
        let ip = "10.22.0.5".parse().unwrap();
        let name = |t: &str| pods.at(ip, t).map(|e| e.pod_name.clone());
        assert_eq!(name("2026-11-28T10:01:00.000000000Z").as_deref(), Some("api-1"));
        assert_eq!(name("2026-11-28T10:05:30.000000000Z"), None, "between the two holdings");
        assert_eq!(name("2026-11-28T10:07:00.000000000Z").as_deref(), Some("api-2"));
        assert_eq!(name("2026-11-28T09:00:00.000000000Z"), None);
    }

    #[test]
    fn a_del_whose_add_rotated_away_still_ends_a_holding() {
        let mut pods = Holdings::keeping_all();
        pods.apply(&record(PodEvent::Del, "2026-11-28T10:05:00.000000000Z", "a", "x-old"));
        pods.apply(&record(PodEvent::Add, "2026-11-28T10:06:00.000000000Z", "b", "y-new"));
        let ip = "10.22.0.5".parse().unwrap();
        let name = |t: &str| pods.at(ip, t).map(|e| e.pod_name.clone());
        assert_eq!(name("2026-11-28T10:01:00.000000000Z").as_deref(), Some("x-old"));
        assert_eq!(name("2026-11-28T10:07:00.000000000Z").as_deref(), Some("y-new"));
    }
}
