//! A conntrack flow as a journal record: `IP` and `l4` the connection as it
//! really ran (initiator before source NAT, endpoint after destination NAT:
//! the reply tuple's source), `via` the address it was made to when that
//! differs (a Service), both tuples as conntrack has them, and the pods on
//! both sides as they were when the connection started.

use super::pods::Pods;
use datapath::conntrack::events::{tcp_state_name, Flow, Tuple5};
use journal::record::{Icmp, Ip, Ports, Tuple, Via, L4};
use journal::{FlowEvent, FlowRecord, SCHEMA};
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

fn time_of(ns: u64) -> String {
    journal::time::rfc3339(UNIX_EPOCH + Duration::from_nanos(ns))
}

fn text(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

fn tuple(t: &Tuple5) -> Tuple {
    Tuple { source: text(t.src), destination: text(t.dst), source_port: t.sport, destination_port: t.dport }
}

fn l4(f: &Flow) -> L4 {
    let ports = Ports { source_port: f.original.sport, destination_port: f.reply.sport };
    let (kind, code) = f.original.icmp.unwrap_or_default();
    match f.original.protocol {
        6 => L4::TCP(ports),
        17 => L4::UDP(ports),
        132 => L4::SCTP(ports),
        1 => L4::ICMPv4(Icmp { kind, code }),
        58 => L4::ICMPv6(Icmp { kind, code }),
        protocol => L4::Other { protocol },
    }
}

/// The record of `flow` as `event` saw it at `now`; `None` for an entry
/// without addresses (nothing to record).
pub fn of(event: FlowEvent, flow: &Flow, node: &str, pods: &Pods, now: &str) -> Option<FlowRecord> {
    let (source, endpoint) = (flow.original.src?, flow.reply.src?);
    let started = flow.start.map(time_of);
    // the pods as they were when the connection began
    let at = started.as_deref().unwrap_or(now);
    let translated = flow.original.dst != Some(endpoint) || flow.original.dport != flow.reply.sport;
    let has_ports = matches!(flow.original.protocol, 6 | 17 | 132);
    let counters = flow.counters.filter(|_| event != FlowEvent::New);
    Some(FlowRecord {
        v: SCHEMA,
        time: now.to_string(),
        kind: "flow".into(),
        event,
        node: node.to_string(),
        conntrack_id: flow.id,
        ip: Ip {
            source: source.to_string(),
            destination: endpoint.to_string(),
            ip_version: if source.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        },
        l4: l4(flow),
        source: pods.at(source, at).cloned(),
        destination: pods.at(endpoint, at).cloned(),
        via: translated
            .then(|| Via { ip: text(flow.original.dst), port: if has_ports { flow.original.dport } else { 0 } }),
        is_reply: false,
        original: tuple(&flow.original),
        reply: tuple(&flow.reply),
        first_seen: started,
        // an entry still there (TIME_WAIT) has no stop time yet
        last_seen: (event == FlowEvent::End).then(|| flow.stop.map_or_else(|| now.to_string(), time_of)),
        packets: counters.map(|c| c.0.packets),
        bytes: counters.map(|c| c.0.bytes),
        reply_packets: counters.map(|c| c.1.packets),
        reply_bytes: counters.map(|c| c.1.bytes),
        tcp_state: flow.tcp_state.filter(|_| flow.original.protocol == 6).map(|s| tcp_state_name(s).into()),
    })
}
