//! A journal line as the scan reads it: the kind first (at its fixed place
//! in weavice's own lines, without parsing), then only the fields a flow
//! needs, borrowed from the line. A million flows are read in seconds.

use journal::record::{FlowEvent, L4};
use journal::{Endpoint, PodEvent, PodRecord};
use serde::Deserialize;
use std::borrow::Cow;

pub enum Line<'a> {
    Pod(Box<PodRecord>),
    Flow(Box<Flow<'a>>),
    Lost(u64),
    /// A record of a kind this tool does not read.
    Other,
    /// Not a record: torn, garbage, or a record missing its fields.
    Skipped,
}

#[derive(Deserialize)]
pub struct Flow<'a> {
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    pub event: FlowEvent,
    #[serde(borrow)]
    pub node: Cow<'a, str>,
    pub conntrack_id: u32,
    #[serde(rename = "IP", borrow)]
    pub ip: Addresses<'a>,
    pub l4: L4,
    #[serde(default, borrow)]
    pub source: Option<Named<'a>>,
    #[serde(default, borrow)]
    pub destination: Option<Named<'a>>,
    #[serde(default, borrow)]
    pub via: Option<Via<'a>>,
    #[serde(borrow)]
    pub original: Tuple<'a>,
    #[serde(default, borrow)]
    pub first_seen: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub last_seen: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Addresses<'a> {
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub destination: Cow<'a, str>,
}

#[derive(Deserialize)]
pub struct Named<'a> {
    #[serde(borrow)]
    pub namespace: Cow<'a, str>,
    #[serde(borrow)]
    pub pod_name: Cow<'a, str>,
}

#[derive(Deserialize)]
pub struct Via<'a> {
    #[serde(borrow)]
    pub ip: Cow<'a, str>,
    #[serde(default)]
    pub port: u16,
}

#[derive(Deserialize)]
pub struct Tuple<'a> {
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub destination: Cow<'a, str>,
    #[serde(default)]
    pub source_port: u16,
    #[serde(default)]
    pub destination_port: u16,
}

/// A pod record without what the join does not need (its netns, MAC,
/// veth, port mappings): a node with many pods keeps them all.
#[derive(Deserialize)]
struct PodLine {
    v: u32,
    time: String,
    event: PodEvent,
    node: String,
    container_id: String,
    ifname: String,
    #[serde(default)]
    pod: Option<Endpoint>,
    ips: Vec<String>,
}

impl From<PodLine> for PodRecord {
    fn from(p: PodLine) -> PodRecord {
        PodRecord {
            v: p.v,
            time: p.time,
            kind: "pod".into(),
            event: p.event,
            node: p.node,
            network: String::new(),
            container_id: p.container_id,
            ifname: p.ifname,
            netns: String::new(),
            pod: p.pod,
            ips: p.ips,
            mac: String::new(),
            host_veth: String::new(),
            port_mappings: Vec::new(),
            lost_before: 0,
        }
    }
}

#[derive(Deserialize)]
struct Lost {
    num_events_lost: u64,
}

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// The kind of a line: at its fixed place in weavice's own lines; any
/// other writer's order is parsed.
fn kind(line: &[u8]) -> Option<Cow<'_, str>> {
    match journal::read::fixed_kind(line) {
        Some(kind) => std::str::from_utf8(kind).ok().map(Cow::Borrowed),
        None => serde_json::from_slice::<Kind>(line).ok().map(|k| k.kind),
    }
}

/// What `line` is. With `pods_only`, flow lines are not parsed (`Other`).
pub fn parse(line: &[u8], pods_only: bool) -> Line<'_> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Other;
    }
    let Some(kind) = kind(line) else { return Line::Skipped };
    match &*kind {
        "pod" => serde_json::from_slice::<PodLine>(line).map_or(Line::Skipped, |r| Line::Pod(Box::new(r.into()))),
        _ if pods_only => Line::Other,
        "flow" => serde_json::from_slice(line).map_or(Line::Skipped, |f| Line::Flow(Box::new(f))),
        "lost" => serde_json::from_slice::<Lost>(line).map_or(Line::Skipped, |l| Line::Lost(l.num_events_lost)),
        _ => Line::Other,
    }
}
