//! Flow capture, the daemon's second thread: every conntrack announcement of
//! the node's namespace (NEW, UPDATE, DESTROY) for a connection that touches
//! a pod range becomes journal records: `new` when it is made, `end` with its
//! counters when it is gone, `open` with its counters so far when the
//! daemon lists the table (at start, after lost announcements, at stop).
//! A TCP connection ends when an UPDATE says it closed, with its counters
//! asked for then (conntrack keeps its entry in TIME_WAIT two minutes more;
//! its DESTROY is not recorded again). Announcements the kernel dropped are
//! counted from the socket's drop counter into `lost` records; after a drop
//! a listing finds what is still open. Memory: one id per open connection,
//! at most the conntrack table's size.

mod pods;
mod record;
mod scope;
mod writer;

use datapath::conntrack::events::{self, tcp_closed, Event, Events, Flow, Received};
use datapath::Result;
use journal::rotate::Limits;
use journal::{FlowEvent, Journal};
use pods::Pods;
use scope::Scope;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use writer::Writer;

/// Measured here: with the default buffer a burst of 100k flows lost 5,319
/// announcements; with 8 MiB none.
const RCVBUF: usize = 8 << 20;
/// The longest wait for announcements: how soon a stop is seen.
const WAIT: Duration = Duration::from_millis(100);
/// How often ranges, pods and the drop counter are looked at again.
const TICK: Duration = Duration::from_secs(1);
/// How long announcements gather between two reads when few came: the
/// 8 MiB buffer holds about 8,000, a tenth of a second at 10k connections a
/// second.
const GATHER: Duration = Duration::from_millis(10);
/// How long the stop drains announcements already queued.
const DRAIN: Duration = Duration::from_millis(500);

pub struct Options {
    pub state_dir: String,
    pub limits: Limits,
}

struct Capture {
    scope: Scope,
    pods: Pods,
    writer: Writer,
    /// Open connections in scope.
    open: HashSet<u32>,
    /// TCP connections recorded as ended at their close, until their DESTROY.
    closed: HashSet<u32>,
    /// Those of the batch at hand, to be written.
    closing: Vec<Flow>,
    capacity: usize,
}

/// Captures until `stop`; says on `ready` once subscribed and writing.
pub fn capture(
    opts: &Options,
    stop: &AtomicBool,
    ready: mpsc::Sender<std::result::Result<String, String>>,
) -> Result<()> {
    let mut events = match events::enable_accounting().and_then(|()| Events::subscribe(RCVBUF, WAIT)) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return Err(e);
        }
    };
    let journal = Journal::new(&opts.state_dir).with_limits(opts.limits);
    let path = journal.path();
    let mut c = Capture {
        scope: Scope::load(&opts.state_dir),
        pods: Pods::load(&opts.state_dir, journal.dir()),
        writer: Writer::new(journal, opts.limits.max_bytes, journal::node_name()),
        open: HashSet::new(),
        closed: HashSet::new(),
        closing: Vec::new(),
        capacity: table_size(),
    };
    // what is open already (made while no daemon ran)
    c.listing(false);
    c.writer.flush();
    let _ = ready.send(Ok(format!("subscribed to conntrack events, writing {}", path.display())));
    let mut dropped = events.drops().unwrap_or(0);
    let mut ticked = Instant::now();
    let mut scope_stamp = scope::Stamp::new(&opts.state_dir);
    while !stop.load(Ordering::Relaxed) {
        match events.recv()? {
            Received::Flows { flows, more } => {
                // a network's first pod: its ranges count from its first flow
                if scope_stamp.changed() {
                    c.scope = Scope::load(&opts.state_dir);
                }
                c.on_events(&mut events, flows);
                // let announcements gather: a wakeup per few of them cost a
                // fifth of the thread's time at 10k connections a second
                if !more {
                    std::thread::sleep(GATHER);
                }
            }
            Received::Idle => {}
            Received::Overrun => {
                c.count_drops(&events, &mut dropped);
                c.listing(true);
            }
        }
        if ticked.elapsed() >= TICK {
            ticked = Instant::now();
            c.scope = Scope::load(&opts.state_dir);
            c.pods.refresh();
            c.count_drops(&events, &mut dropped);
        }
        if c.writer.due() {
            c.writer.flush();
        }
    }
    // what was announced before the stop, then what is still open
    let draining = Instant::now();
    while draining.elapsed() < DRAIN {
        match events.recv()? {
            Received::Flows { flows, .. } => c.on_events(&mut events, flows),
            Received::Idle => break,
            Received::Overrun => c.count_drops(&events, &mut dropped),
        }
    }
    c.count_drops(&events, &mut dropped);
    c.listing(false);
    c.writer.flush();
    log::info!("flows: {} record(s) written since start", c.writer.written);
    Ok(())
}

/// The conntrack table's size: the most connections open at once.
fn table_size() -> usize {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(262_144)
}

impl Capture {
    /// Handles a batch of announcements: closed TCP connections are ended
    /// together, their counters asked for in one request.
    fn on_events(&mut self, events: &mut Events, flows: Vec<(Event, Flow)>) {
        if flows.is_empty() {
            return;
        }
        // a pod's ADD (and its predecessor's DEL, when it reuses an
        // address) is in the journal before its first packet
        self.pods.refresh();
        for (event, flow) in flows {
            self.on_event(event, flow);
        }
        let closing = std::mem::take(&mut self.closing);
        for (flow, now) in closing.iter().zip(events.get(&closing)) {
            let mut now = now.unwrap_or_else(|| flow.clone());
            now.tcp_state = flow.tcp_state;
            self.write(FlowEvent::End, &now);
        }
    }

    fn on_event(&mut self, event: Event, flow: Flow) {
        if !self.scope.keeps(&flow) {
            return;
        }
        match event {
            Event::New => {
                self.track(flow.id);
                self.write(FlowEvent::New, &flow);
            }
            Event::Closed if !self.closed.contains(&flow.id) => {
                self.open.remove(&flow.id);
                if self.closed.len() < self.capacity {
                    self.closed.insert(flow.id);
                }
                self.closing.push(flow);
            }
            // a second close (TIME_WAIT, then CLOSE): recorded at the first
            Event::Closed => {}
            Event::Destroy => {
                self.open.remove(&flow.id);
                if !self.closed.remove(&flow.id) {
                    self.write(FlowEvent::End, &flow);
                }
            }
        }
    }

    fn track(&mut self, id: u32) {
        if self.open.len() < self.capacity {
            self.open.insert(id);
        }
    }

    fn write(&mut self, event: FlowEvent, flow: &Flow) {
        let now = journal::time::now();
        let Some(mut r) = record::of(event, flow, self.writer.node(), &self.pods, &now) else { return };
        // a pod made since the batch began: its ADD record is in the journal
        let unnamed = |ip: &str, e: &Option<journal::Endpoint>| {
            e.is_none() && ip.parse().is_ok_and(|ip| self.scope.is_pod_address(ip))
        };
        if unnamed(&r.ip.source, &r.source) || unnamed(&r.ip.destination, &r.destination) {
            self.pods.refresh();
            r = record::of(event, flow, self.writer.node(), &self.pods, &now).unwrap_or(r);
        }
        self.writer.push(&r);
    }

    /// An `open` record for every connection in scope the table holds
    /// (with `unknown_only`, those this capture did not know of: their NEW
    /// was dropped), an `end` record for a TCP connection found closed; the
    /// ones it knew and the table no longer has ended with their DESTROY
    /// dropped (counted). A listing that fails is logged: the events go on.
    fn listing(&mut self, unknown_only: bool) {
        let mut listed = HashSet::new();
        let mut found = Vec::new();
        let listing = events::list(&mut |flow| {
            if self.scope.keeps(&flow) {
                listed.insert(flow.id);
                let skip = self.closed.contains(&flow.id) || (unknown_only && self.open.contains(&flow.id));
                if !skip {
                    found.push(flow);
                }
            }
        });
        if let Err(e) = listing {
            log::error!("flows: {e}; open connections not written");
            return;
        }
        self.open.retain(|id| listed.contains(id));
        self.closed.retain(|id| listed.contains(id));
        for flow in found {
            if flow.tcp_state.is_some_and(tcp_closed) {
                self.open.remove(&flow.id);
                self.closed.insert(flow.id);
                self.write(FlowEvent::End, &flow);
            } else {
                self.track(flow.id);
                self.write(FlowEvent::Open, &flow);
            }
        }
    }

    fn count_drops(&mut self, events: &Events, counted: &mut u64) {
        if let Some(now) = events.drops() {
            if now > *counted {
                self.writer.lost("CONNTRACK_EVENTS", now - *counted);
                *counted = now;
            }
        }
    }
}
