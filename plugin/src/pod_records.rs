//! Pod records in the node journal (`<stateDir>/journal/`): one at every
//! ADD and DEL that completes. A journal that cannot be written never fails
//! the verb: it is logged, and counted in the next record written.

use conf::{CmdArgs, NetConf};
use datapath::attachment::Attachment;
use journal::{Endpoint, Journal, PodEvent, PodRecord, SCHEMA};

/// Appends the record of `event` for the attachment (its saved state when
/// there is one, else what the runtime passed).
pub fn write(net: &NetConf, args: &CmdArgs, event: PodEvent, saved: Option<&Attachment>) {
    let record = |lost_before| {
        let pod = saved.and_then(|a| a.pod.clone()).or_else(|| datapath::attachment::Pod::from_args(&args.args));
        PodRecord {
            v: SCHEMA,
            time: journal::time::now(),
            kind: "pod".into(),
            event,
            node: journal::node_name(),
            network: net.name.clone(),
            container_id: args.container_id.clone(),
            ifname: args.ifname.clone(),
            netns: args.netns.clone(),
            pod: pod.map(|p| Endpoint { namespace: p.namespace, pod_name: p.name, uid: p.uid }),
            ips: saved.map(|a| a.pod_ips().iter().map(ToString::to_string).collect()).unwrap_or_default(),
            mac: saved.map(|a| a.mac.clone()).unwrap_or_default(),
            host_veth: saved.map(|a| a.host_veth.clone()).unwrap_or_default(),
            port_mappings: saved
                .map(|a| a.port_mappings.iter().filter_map(|m| serde_json::to_value(m).ok()).collect())
                .unwrap_or_default(),
            lost_before,
        }
    };
    let defaults = journal::rotate::Limits::default();
    let limits = journal::rotate::Limits {
        max_bytes: net.journal_max_bytes.unwrap_or(defaults.max_bytes),
        max_files: net.journal_max_files.unwrap_or(defaults.max_files),
    };
    let journal = Journal::new(&net.state_dir).with_limits(limits);
    if let Err(e) = journal.append(record) {
        log::warn!(
            "{:?} record of {}/{} not written to {}: {e}",
            event,
            args.container_id,
            args.ifname,
            journal.path().display()
        );
    }
}
