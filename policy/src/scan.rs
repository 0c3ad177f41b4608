//! Reads journals in two passes, streaming: the pod records first (every
//! node's, merged and put in time order: who held which address when), then
//! the flows, each joined to the pods that held its addresses at its start
//! and added to its connection. Memory grows with pods and connections, not
//! with records.

use crate::cluster::Cluster;
use crate::connections::{Evidence, Key, Peer, Protocol};
use crate::error::{bad, Result};
use crate::flowline::{self, Flow, Line};
use crate::progress::Progress;
use crate::sources::{self, File};
use crate::window::Window;
use journal::holdings::Holdings;
use journal::record::{FlowEvent, L4};
use journal::{PodEvent, PodRecord};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// How long after its end a connection's records may still come again: a
/// restarted daemon lists the table, where closed TCP connections stay in
/// TIME_WAIT for 120 s.
const REPEATS_WITHIN_SECS: i64 = 300;

#[derive(Default)]
pub struct Scan {
    /// Named pods attached in the window, by namespace and name.
    pub pods: BTreeSet<(String, String)>,
    pub connections: HashMap<Key, Evidence>,
    /// Per file, lines that were no record.
    pub skipped: Vec<(PathBuf, usize)>,
    /// Conntrack events or records the daemons said they lost.
    pub lost: u64,
}

/// `cluster` names pods at addresses no journal here recorded (pods on
/// nodes whose journals are not given).
pub fn scan(paths: &[PathBuf], window: &Window, cluster: Option<&Cluster>) -> Result<Scan> {
    let files = sources::files(paths)?;
    let mut progress = Progress::new(files.iter().map(|f| 2 * f.size).sum());
    let mut out = Scan::default();
    let (holdings, nodes) = pods(&files, window, &mut out, &mut progress)?;
    let mut counter = Counter::default();
    let join = Join { window, holdings: &holdings, nodes: &nodes, cluster };
    let (mut records, mut all_skipped) = (0usize, 0usize);
    for f in &files {
        let mut skipped = 0usize;
        sources::each_line(
            &f.path,
            &mut |line| match flowline::parse(line, false) {
                Line::Flow(flow) => {
                    records += 1;
                    if !take(&flow, &join, &mut counter, &mut out) {
                        skipped += 1;
                    }
                }
                Line::Lost(n) => {
                    records += 1;
                    out.lost = out.lost.saturating_add(n);
                }
                Line::Pod(_) => records += 1,
                Line::Other => {}
                Line::Skipped => skipped += 1,
            },
            &mut |n| progress.add(n),
        )?;
        if skipped > 0 {
            out.skipped.push((f.path.clone(), skipped));
        }
        all_skipped += skipped;
    }
    if records == 0 && all_skipped > 0 {
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        return Err(bad(format!(
            "--journal {}: not a weavice journal ({all_skipped} lines, none of them a record)",
            names.join(", ")
        )));
    }
    progress.finish();
    fold_server_side(&mut out.connections, &counter.elsewhere);
    Ok(out)
}

/// Connections recorded on the server's node as well as the client's: a
/// Service's DNAT happened on the client's node, so the server's record has
/// no `via` and made a key of its own. It joins its twin; one the client's
/// node missed (lost events) stays, with its server-side count.
fn fold_server_side(connections: &mut HashMap<Key, Evidence>, elsewhere: &HashMap<Key, u64>) {
    let pair = |k: &Key| -> (Peer, Peer, Protocol, u16) { (k.client.clone(), k.server.clone(), k.protocol, k.port) };
    // the twin: the Service connection (a direct one shares the key already);
    // of several, the first in key order
    let mut counted: HashMap<(Peer, Peer, Protocol, u16), Key> = HashMap::new();
    let mut twins: Vec<&Key> =
        connections.iter().filter(|(k, e)| e.flows > 0 && k.via.is_some()).map(|(k, _)| k).collect();
    twins.sort();
    for k in twins {
        counted.entry(pair(k)).or_insert_with(|| k.clone());
    }
    let uncounted: Vec<Key> = connections.iter().filter(|(_, e)| e.flows == 0).map(|(k, _)| k.clone()).collect();
    for k in uncounted {
        let Some(e) = connections.remove(&k) else { continue };
        match counted.get(&pair(&k)) {
            Some(twin) => {
                if let Some(t) = connections.get_mut(twin) {
                    t.merge(&e);
                }
            }
            None => {
                let flows = elsewhere.get(&k).copied().unwrap_or(0);
                connections.insert(k, Evidence { flows, ..e });
            }
        }
    }
}

/// The first pass: every pod record, merged across nodes and copies. Returns
/// who held each address when, and the nodes whose journals are here.
fn pods(
    files: &[File],
    window: &Window,
    out: &mut Scan,
    progress: &mut Progress,
) -> Result<(Holdings, HashSet<String>)> {
    let mut records: Vec<PodRecord> = Vec::new();
    for f in files {
        sources::each_line(
            &f.path,
            &mut |line| {
                if let Line::Pod(r) = flowline::parse(line, true) {
                    records.push(*r);
                }
            },
            &mut |n| progress.add(n),
        )?;
    }
    // the same record in two copies of one journal counts once
    records.sort_by(|a, b| {
        (&a.time, &a.node, &a.container_id, &a.ifname, a.event == PodEvent::Del).cmp(&(
            &b.time,
            &b.node,
            &b.container_id,
            &b.ifname,
            b.event == PodEvent::Del,
        ))
    });
    records.dedup_by(|a, b| {
        a.time == b.time && a.node == b.node && a.container_id == b.container_id && a.ifname == b.ifname
    });
    let mut holdings = Holdings::keeping_all();
    let mut nodes = HashSet::new();
    for r in &records {
        holdings.apply(r);
        nodes.insert(r.node.clone());
        let Some(p) = r.pod.as_ref() else { continue };
        let key = (p.namespace.clone(), p.pod_name.clone());
        match r.event {
            // attached before the window ends
            PodEvent::Add if window.until.as_deref().is_none_or(|u| r.time.as_str() <= u) => {
                out.pods.insert(key);
            }
            // gone before it starts (records are in time order: a later ADD adds it again)
            PodEvent::Del if window.since.as_deref().is_some_and(|since| r.time.as_str() < since) => {
                out.pods.remove(&key);
            }
            _ => {}
        }
    }
    Ok((holdings, nodes))
}

/// Tells which records are a connection not counted yet. A connection has
/// several records (`new`, `open`, `end`, again after a daemon restart), all
/// on its node with one identity; its node keeps the ones open and the ones
/// ended lately.
#[derive(Default)]
struct Counter {
    nodes: HashMap<String, Seen>,
    /// Connections seen on a server's node, counted on the client's.
    elsewhere: HashMap<Key, u64>,
}

#[derive(Default)]
struct Seen {
    open: HashSet<u64>,
    ended: HashSet<u64>,
    ended_at: VecDeque<(i64, u64)>,
}

impl Counter {
    fn first_record(&mut self, flow: &Flow, end_secs: i64) -> bool {
        let mut h = DefaultHasher::new();
        (flow.conntrack_id, &flow.original.source, &flow.original.destination).hash(&mut h);
        (flow.original.source_port, flow.original.destination_port, protocol(&flow.l4)).hash(&mut h);
        let id = h.finish();
        let seen = match self.nodes.get_mut(&*flow.node) {
            Some(s) => s,
            None => self.nodes.entry(flow.node.to_string()).or_default(),
        };
        match flow.event {
            FlowEvent::New => seen.open.insert(id),
            FlowEvent::Open => !seen.ended.contains(&id) && seen.open.insert(id),
            FlowEvent::End => {
                let first = !seen.open.remove(&id) && !seen.ended.contains(&id);
                if seen.ended.insert(id) {
                    seen.ended_at.push_back((end_secs, id));
                }
                while seen.ended_at.front().is_some_and(|(t, _)| *t < end_secs - REPEATS_WITHIN_SECS) {
                    if let Some((_, old)) = seen.ended_at.pop_front() {
                        seen.ended.remove(&old);
                    }
                }
                first
            }
        }
    }
}

fn protocol(l4: &L4) -> (Protocol, u16) {
    match l4 {
        L4::TCP(p) => (Protocol::TCP, p.destination_port),
        L4::UDP(p) => (Protocol::UDP, p.destination_port),
        L4::SCTP(p) => (Protocol::SCTP, p.destination_port),
        L4::ICMPv4(_) | L4::ICMPv6(_) => (Protocol::ICMP, 0),
        L4::Other { protocol } => (Protocol::Other(*protocol), 0),
    }
}

/// Seconds of a record time (for the repeat window only).
fn secs(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    ((n(0..4) * 12 + n(5..7)) * 31 + n(8..10)) * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// What a flow is joined with.
struct Join<'a> {
    window: &'a Window,
    holdings: &'a Holdings,
    /// The nodes whose journals are here.
    nodes: &'a HashSet<String>,
    cluster: Option<&'a Cluster>,
}

/// Adds a flow record to its connection; false for a record whose values
/// are not what the daemon writes (skipped as no record).
fn take(flow: &Flow, join: &Join, counter: &mut Counter, out: &mut Scan) -> bool {
    let start = flow.first_seen.as_deref().unwrap_or(&flow.time);
    let end = flow.last_seen.as_deref().unwrap_or(&flow.time);
    let (protocol, port) = protocol(&flow.l4);
    let (Ok(client_ip), Ok(server_ip)) = (flow.ip.source.parse::<IpAddr>(), flow.ip.destination.parse::<IpAddr>())
    else {
        return false;
    };
    if ![&*flow.time, start, end].iter().all(|t| is_time(t)) || (protocol.has_ports() && port == 0) {
        return false;
    }
    if !join.window.overlaps(start, end) {
        return true;
    }
    let first = counter.first_record(flow, secs(end));
    let (client, client_node) = peer(flow.source.as_ref(), client_ip, start, &flow.node, join);
    let (server, _) = peer(flow.destination.as_ref(), server_ip, start, &flow.node, join);
    // a connection between nodes is on both nodes' journals: counted on the
    // client's when that journal is here
    let counted_here = match client_node {
        Some(n) if join.nodes.contains(n) => n == &*flow.node,
        _ => true,
    };
    let via = flow.via.as_ref().and_then(|v| Some(SocketAddr::new(v.ip.parse().ok()?, v.port)));
    let key = Key { client, server, protocol, port, via };
    if first && !counted_here {
        *counter.elsewhere.entry(key.clone()).or_default() += 1;
    }
    let e = out.connections.entry(key).or_insert_with(|| Evidence { flows: 0, first: start.into(), last: end.into() });
    e.flows += u64::from(first && counted_here);
    if start < e.first.as_str() {
        e.first = start.to_string();
    }
    if end > e.last.as_str() {
        e.last = end.to_string();
    }
    true
}

/// A record time as the journal writes it: `2026-11-28T10:00:00.000000000Z`.
fn is_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 30
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            29 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A flow's end: the pod that held the address at the flow's start (the
/// merged journals' word, else the daemon's name for it, else the cluster
/// file's for an address no journal here knows), and that pod's node.
fn peer<'a>(
    named: Option<&flowline::Named>,
    ip: IpAddr,
    start: &str,
    record_node: &'a str,
    join: &Join<'a>,
) -> (Peer, Option<&'a str>) {
    if let Some(h) = join.holdings.holder(ip, start) {
        return match (h.pod, named) {
            (Some(p), _) => (Peer::Pod { namespace: p.namespace.clone(), name: p.pod_name.clone(), ip }, Some(h.node)),
            (None, Some(n)) => {
                (Peer::Pod { namespace: n.namespace.to_string(), name: n.pod_name.to_string(), ip }, Some(h.node))
            }
            (None, None) => (Peer::Unnamed { ip }, Some(h.node)),
        };
    }
    if let Some(n) = named {
        return (Peer::Pod { namespace: n.namespace.to_string(), name: n.pod_name.to_string(), ip }, Some(record_node));
    }
    match join.cluster.and_then(|c| c.pod_at(ip)).filter(|_| !join.holdings.knows(ip)) {
        Some((ns, name)) => (Peer::Pod { namespace: ns.to_string(), name: name.to_string(), ip }, None),
        None => (Peer::Outside { ip }, None),
    }
}
