//! `weavice-agent run`: the node daemon. At start it sets up every recorded
//! network that is not (after a reboot: its NAT rules are what make the
//! namespace track connections) and installs every stored chain again; a
//! second thread records flows into the journal (flows/); then, each
//! interval, the main thread probes
//! every route function of every chain through the function itself
//! (probe.rs), and with `--nodes`, follows the node list (nodes.rs: routes
//! to the other nodes' pods). A function that misses [`MISSES`] probes in a row, or whose
//! link is down, is down: it goes into the health file and its chain's
//! tables are routed as if its pod were gone (failure policy). One probe
//! coming back makes it up again. One thread, a fixed amount of state per
//! function, asleep between rounds; SIGTERM or SIGINT ends it after the
//! current round, with the health file cleared and the chains routed by
//! their pods alone (without the daemon, nothing probes).

use crate::flows;
use crate::nodes;
use crate::notify::notify;
use crate::probe::{Prober, Target};
use datapath::attachment::Attachment;
use datapath::chains::{health, install, route_functions, store, ChainPod};
use datapath::link;
use datapath::netlink::RouteSocket;
use datapath::network;
use datapath::{DatapathError, Result};
use ipam::filelock::{FileLock, LockError};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Probes missed in a row before a function is down: with one round a
/// second and a half-second wait, a failure is acted on within 3 seconds.
const MISSES: u32 = 2;
const WAIT: Duration = Duration::from_millis(500);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// (chain, function) → probes missed in a row.
type Misses = BTreeMap<(String, String), u32>;

pub fn run(
    state_dir: &str,
    interval: Duration,
    limits: journal::rotate::Limits,
    nodes_from: Option<(nodes::From, String)>,
) -> Result<()> {
    let handler = on_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
    let _one = one_daemon(state_dir)?;
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    for (name, want) in network::recorded(state_dir)? {
        network::ensure(&mut nl, state_dir, &name, &want, false)?;
    }
    install::sync(&mut nl, state_dir)?;
    log::info!("running: {} chain(s) installed from {state_dir}", store::list(state_dir)?.len());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let opts = flows::Options { state_dir: state_dir.to_string(), limits };
    let capture = std::thread::Builder::new()
        .name("flows".into())
        .spawn(move || {
            let captured = flows::capture(&opts, &STOP, ready_tx);
            if let Err(e) = &captured {
                // no flows recorded is no daemon: stop, for the supervisor to restart it
                log::error!("flows: {e}; stopping");
                STOP.store(true, Ordering::Relaxed);
            }
            captured
        })
        .map_err(DatapathError::io("start the flow capture thread"))?;
    match ready.recv() {
        Ok(Ok(what)) => {
            log::info!("ready: {what}");
            notify("READY=1");
        }
        Ok(Err(e)) => return Err(DatapathError::io("record flows")(std::io::Error::other(e))),
        Err(_) => return Err(DatapathError::io("record flows")(std::io::Error::other("the capture thread ended"))),
    }
    let mut nodes = match nodes_from.map(|(from, me)| nodes::Source::start(from, me, state_dir, &STOP)).transpose() {
        Ok(n) => n,
        Err(e) => return Err(DatapathError::io("start following the node list")(e)),
    };
    let mut misses = Misses::new();
    let mut probers: BTreeMap<String, Prober> = BTreeMap::new();
    let mut seq = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        let started = Instant::now();
        seq += 1;
        if let Err(e) = round(&mut nl, state_dir, seq, &mut misses, &mut probers) {
            log::error!("probe round: {e}");
        }
        if let Some(n) = nodes.as_mut() {
            n.poll(&mut nl);
        }
        while !STOP.load(Ordering::Relaxed) && started.elapsed() < interval {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    notify("STOPPING=1");
    log::info!("stopping: the chains are routed by their pods alone again");
    set_down(&mut nl, state_dir, health::Down::new())?;
    let captured = match capture.join() {
        Ok(captured) => captured,
        Err(_) => Err(DatapathError::io("record flows")(std::io::Error::other("the capture thread panicked"))),
    };
    log::info!("stopped");
    captured
}

/// Holds `<stateDir>/agent.lock` while the daemon runs: a second daemon on
/// the same state dir would write every flow twice.
fn one_daemon(state_dir: &str) -> Result<FileLock> {
    let path = std::path::Path::new(state_dir).join("agent.lock");
    FileLock::acquire(&path, Duration::ZERO).map_err(|e| match e {
        LockError::Timeout { .. } => {
            let why = std::io::Error::other(format!("another weavice-agent run holds {}", path.display()));
            DatapathError::io("start")(why)
        }
        e => e.into(),
    })
}

/// The address of `net` the node holds on its bridge and the range's
/// network address, IPv4.
fn gateway(want: &network::Wanted) -> Option<(Ipv4Addr, Ipv4Addr)> {
    want.gateways.iter().find_map(|g| match (g.addr(), g.network()) {
        (IpAddr::V4(a), IpAddr::V4(n)) => Some((a, n)),
        _ => None,
    })
}

fn round(
    nl: &mut RouteSocket,
    state_dir: &str,
    seq: u64,
    misses: &mut Misses,
    probers: &mut BTreeMap<String, Prober>,
) -> Result<()> {
    let chains = store::list(state_dir)?;
    let networks = network::recorded(state_dir)?;
    let mut down = health::Down::new();
    let mut seen = Vec::new();
    for a in &chains {
        let net = &a.chain.spec.network;
        let Some((_, want)) = networks.iter().find(|(n, _)| n == net) else { continue };
        let Some((gw, source)) = gateway(want) else { continue };
        let Some(br) = nl.link().get(&want.bridge)? else { continue };
        let mac: [u8; 6] = br.mac.as_slice().try_into().unwrap_or_default();
        // a bridge made again (repair) has another index and MAC
        if !probers.get(net).is_some_and(|p| p.is_for(br.index, &mac)) {
            match Prober::new(br.index, mac, gw, source) {
                Ok(p) => {
                    probers.insert(net.clone(), p);
                }
                Err(e) => {
                    log::warn!("network {net}: cannot probe ({e})");
                    continue;
                }
            }
        }
        let attachments: Vec<Attachment> = Attachment::list(state_dir, net).into_iter().flatten().collect();
        let mut targets = Vec::new();
        for (i, f) in route_functions(a).into_iter().enumerate() {
            let key = (a.chain.name().to_string(), f.name.clone());
            seen.push(key.clone());
            // outside weavice: down with its interface (it is not probed)
            if let Some(ifname) = &f.interface {
                let up = nl.link().get(ifname)?.is_some_and(|l| l.up);
                misses.insert(key, if up { 0 } else { MISSES });
                continue;
            }
            let named = |x: &&Attachment| ChainPod::of(x).name.is_some_and(|n| Some(&n) == f.pod.as_ref());
            // no pod: routed as gone already, nothing to probe
            let Some(pod) = attachments.iter().find(named) else { continue };
            let link_up = nl.link().get(&pod.host_veth)?.is_some_and(|l| l.up);
            let mac = link::parse_mac(&pod.mac).and_then(|m| m.try_into().ok());
            match (link_up, mac) {
                (true, Some(mac)) => targets.push((key, Target { mac, token: token(a.id, i, seq) })),
                _ => {
                    misses.insert(key, MISSES);
                }
            }
        }
        if let Some(prober) = probers.get(net) {
            let wanted: Vec<Target> = targets.iter().map(|(_, t)| t.clone()).collect();
            for ((key, _), back) in targets.into_iter().zip(prober.probe(&wanted, WAIT)) {
                let n = misses.entry(key).or_default();
                *n = if back { 0 } else { *n + 1 };
            }
        }
    }
    // functions of chains that are gone are forgotten: the state stays bounded
    misses.retain(|k, _| seen.contains(k));
    for ((chain, function), n) in misses.iter() {
        if *n >= MISSES {
            down.entry(chain.clone()).or_default().insert(function.clone());
        }
    }
    let before = health::load(state_dir);
    if down != before {
        let listed = |d: &health::Down| -> Vec<(String, String)> {
            d.iter().flat_map(|(c, fs)| fs.iter().map(move |f| (c.clone(), f.clone()))).collect()
        };
        let (now, was) = (listed(&down), listed(&before));
        for (chain, function) in now.iter().filter(|x| !was.contains(x)) {
            log::warn!("chain {chain}: function {function} is down ({MISSES} probes missed, or its link); failure policy applied");
        }
        for (chain, function) in was.iter().filter(|x| !now.contains(x)) {
            log::warn!("chain {chain}: function {function} forwards again");
        }
        set_down(nl, state_dir, down)?;
    }
    Ok(())
}

/// A probe's token: the chain's number, the function's position and the
/// round, so a late answer to an earlier round is not taken for this one.
fn token(id: u16, position: usize, seq: u64) -> u64 {
    (u64::from(id) << 48) | ((position as u64 & 0xff) << 40) | (seq & 0xff_ffff_ffff)
}

/// Saves `down` and routes every chain's tables by it.
fn set_down(nl: &mut RouteSocket, state_dir: &str, down: health::Down) -> Result<()> {
    install::set_down(nl, state_dir, &down)
}
