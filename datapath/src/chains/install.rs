//! Installing what the applied chains need (the agent's `chain apply`,
//! `chain delete` and `repair`): nftables rules and sets, the pods' set
//! elements, NFQUEUE rules, ip rules and hop tables, for every chain of the state dir at
//! once, so the node ends up with exactly what the files say.

use super::members::memberships;
use super::{health, hops, pods, store, Applied, ChainPod};
use crate::conntrack;
use crate::firewall::iptables::queue::{self, QueueRule};
use crate::firewall::nftables::steering::{self, PodPort};
use crate::netlink::RouteSocket;
use crate::network;
use crate::{DatapathError, Result};
use conf::chain::{Chain, FailurePolicy, Mode};

/// Stores `chain` and installs it with the rest; None when an identical one
/// was applied already (installed again all the same: that is how a user
/// mends a chain). `conflicts` judges it against the other chains, under the
/// lock, so two applies at once cannot both pass. An error before anything
/// is stored is `Invalid`; one after puts the previous file back and
/// installs that again.
pub fn apply(
    nl: &mut RouteSocket,
    state_dir: &str,
    chain: &Chain,
    conflicts: &dyn Fn(&[Applied]) -> Result<()>,
) -> Result<Option<Applied>> {
    let _one_at_a_time = store::lock(state_dir)?;
    let all = store::list(state_dir)?;
    refuse_foreign(&all, &[])?;
    conflicts(&all.iter().filter(|a| a.chain.name() != chain.name()).cloned().collect::<Vec<_>>())?;
    if chain.spec.functions.iter().any(|f| f.mode == Mode::Queue) && !queue::available() {
        return Err(DatapathError::Invalid(
            "queue functions need iptables (the xt NFQUEUE target; Debian: apt-get install iptables)".into(),
        ));
    }
    let previous = store::load(state_dir, chain.name())?;
    let saved = store::save(state_dir, chain)?;
    if let Err(e) = sync_locked(nl, state_dir, &[]) {
        let restored = match &previous {
            Some(p) => store::save(state_dir, &p.chain).map(drop),
            None => store::remove(state_dir, chain.name()).map(drop),
        };
        let gone: Vec<u16> = match (&previous, &saved) {
            (None, Some(new)) => vec![new.id],
            _ => Vec::new(),
        };
        if let Err(again) = restored.and_then(|()| sync_locked(nl, state_dir, &gone)) {
            log::error!("chain {}: putting the previous state back failed too: {again}", chain.name());
        }
        // stored, then failed on the node: not the spec's fault
        return Err(match e {
            DatapathError::Invalid(why) => DatapathError::Firewall(why),
            other => other,
        });
    }
    Ok(saved)
}

/// Removes chain `name` from the node, with its connections' conntrack
/// entries, then from the state dir (a failure half-way leaves the file, so
/// the delete can be run again); what was applied, if anything.
pub fn delete(nl: &mut RouteSocket, state_dir: &str, name: &str) -> Result<Option<Applied>> {
    let _one_at_a_time = store::lock(state_dir)?;
    let Some(gone) = store::load(state_dir, name)? else { return Ok(None) };
    sync_locked(nl, state_dir, &[gone.id])?;
    // a chain given the same number later must not take these connections
    let cleared = conntrack::clear_mark_where(gone.marks.id_mask(), gone.marks.chain(gone.id))?;
    log::info!("chain {name}: {cleared} connections lost its mark");
    store::remove(state_dir, name)?;
    Ok(Some(gone))
}

/// Saves what the daemon's probes found down and routes every chain's
/// tables by it (the pods whose veth is there, the network's families).
pub fn set_down(nl: &mut RouteSocket, state_dir: &str, down: &health::Down) -> Result<()> {
    let _one_at_a_time = store::lock(state_dir)?;
    health::save(state_dir, down)?;
    let networks = network::recorded(state_dir)?;
    for a in store::list(state_dir)? {
        let Some((net, want)) = networks.iter().find(|(n, _)| *n == a.chain.spec.network) else { continue };
        let pods = live_pods(nl, state_dir, net)?;
        hops::install_routes(nl, &hops::routes(&a, &pods, &families(want), &health::of(down, a.chain.name())))?;
    }
    Ok(())
}

/// The address families a network has ranges of.
fn families(want: &network::Wanted) -> Vec<bool> {
    [true, false].into_iter().filter(|v4| want.gateways.iter().any(|g| g.addr().is_ipv4() == *v4)).collect()
}

/// Chooses the node's chain mark layout, while it has no chains.
pub fn set_marks(state_dir: &str, m: crate::marks::ChainMarks) -> Result<()> {
    let _one_at_a_time = store::lock(state_dir)?;
    let applied = store::list(state_dir)?;
    if !applied.is_empty() || !steering::installed_ids()?.is_empty() {
        let names: Vec<&str> = applied.iter().map(|a| a.chain.name()).collect();
        return Err(DatapathError::Invalid(format!(
            "the node has chains ({}): delete them before choosing other mark bits",
            names.join(", ")
        )));
    }
    store::set_marks(state_dir, m)
}

/// Makes the node hold what the applied chains of `state_dir` need (repair,
/// the daemon's start).
pub fn sync(nl: &mut RouteSocket, state_dir: &str) -> Result<()> {
    let _one_at_a_time = store::lock(state_dir)?;
    sync_locked(nl, state_dir, &[])
}

/// Chains all live in one nftables table: a node keeps them in one state
/// dir, whose numbers they go by. Sets of a number this one does not know
/// are another state dir's (or a chain file removed by hand).
fn refuse_foreign(chains: &[Applied], gone: &[u16]) -> Result<()> {
    let foreign: Vec<u16> = steering::installed_ids()?
        .into_iter()
        .filter(|id| !gone.contains(id) && chains.iter().all(|a| a.id != *id))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let sets: Vec<String> = foreign.iter().map(|id| format!("c{id}_*")).collect();
    Err(DatapathError::Invalid(format!(
        "this node holds security-function chains this state dir does not know (sets {} in table inet weavice): \
         chains of another stateDir (a node keeps its chains in one), or a chain file removed by hand (apply it \
         again, or delete those sets)",
        sets.join(", ")
    )))
}

/// The network's pods whose host veth is there: a pod whose DEL was cut
/// short (its veth retired) is gone for the chains.
fn live_pods(nl: &mut RouteSocket, state_dir: &str, network: &str) -> Result<Vec<ChainPod>> {
    let mut out = Vec::new();
    for p in pods(state_dir, network) {
        if nl.link().get(&p.port)?.is_some() {
            out.push(p);
        }
    }
    Ok(out)
}

/// New rules and routes go in before old ones go; the sets of the chains
/// numbered `gone` (deleted) are removed.
pub(super) fn sync_locked(nl: &mut RouteSocket, state_dir: &str, gone: &[u16]) -> Result<()> {
    let mut chains = store::list(state_dir)?;
    // a chain being deleted is still stored until its state is off the node
    chains.retain(|a| !gone.contains(&a.id));
    refuse_foreign(&chains, gone)?;
    let networks = network::recorded(state_dir)?;
    let (mut rules, mut routes) = (Vec::new(), Vec::new());
    let down = health::load(state_dir);
    let mut live = Vec::new();
    for (net, want) in &networks {
        let pods = live_pods(nl, state_dir, net)?;
        for a in chains.iter().filter(|a| a.chain.spec.network == *net) {
            rules.extend(hops::rules(a, &want.bridge));
            routes.extend(hops::routes(a, &pods, &families(want), &health::of(&down, a.chain.name())));
        }
        live.push((net.clone(), pods));
    }
    for a in chains.iter().filter(|a| networks.iter().all(|(n, _)| *n != a.chain.spec.network)) {
        log::warn!(
            "chain {}: network {} is not set up on this node; its steering waits for it",
            a.chain.name(),
            a.chain.spec.network
        );
    }
    // routes and rules first: a packet classified by the new nft rules finds its hop
    hops::install_routes(nl, &routes)?;
    for r in &rules {
        nl.rule().add(r)?;
    }
    steering::apply(&chains, gone)?;
    queue::sync(&queue_rules(&chains))?;
    let links: Vec<String> = nl.link().list()?.into_iter().map(|l| l.name).collect();
    sync_members(state_dir, &chains, &live, &networks, &links)?;
    hops::prune(nl, &rules, &routes)
}

/// Every live pod's elements in the chains of its network; what a pod of
/// any network has that it should not, and what belongs to a port that is
/// gone, is removed.
fn sync_members(
    state_dir: &str,
    chains: &[Applied],
    live: &[(String, Vec<ChainPod>)],
    networks: &[(String, network::Wanted)],
    links: &[String],
) -> Result<()> {
    let (mut wanted, mut known) = (Vec::new(), Vec::new());
    for (net, pods) in live {
        let of_net: Vec<Applied> = chains.iter().filter(|a| a.chain.spec.network == *net).cloned().collect();
        for p in pods {
            let m = memberships(&of_net, p);
            if !m.is_empty() {
                wanted.push((PodPort { port: p.port.clone(), ips: p.ips.clone() }, m));
            }
        }
    }
    for (net, _) in networks {
        known.extend(pods(state_dir, net).into_iter().map(|p| PodPort { port: p.port, ips: p.ips }));
    }
    steering::sync_pods(chains, &wanted, &known, links)
}

/// The NFQUEUE rules of every queue function: one per direction.
fn queue_rules(chains: &[Applied]) -> Vec<QueueRule> {
    let mut out = Vec::new();
    for a in chains {
        for (i, f) in a.chain.spec.functions.iter().enumerate() {
            let Some(queue) = f.queue.filter(|_| f.mode == Mode::Queue).and_then(|q| u16::try_from(q).ok()) else {
                continue;
            };
            let bypass = a.chain.spec.failure_policy == FailurePolicy::Open;
            out.extend(super::passes(a, i).map(|mark| QueueRule { mark, mask: a.marks.mask, queue, bypass }));
        }
    }
    out
}

/// Whether `network` can carry chains: routed pod-to-pod traffic on a
/// bridge of weavice's.
pub fn check_network(state_dir: &str, network: &str) -> Result<()> {
    let networks = network::recorded(state_dir)?;
    let Some((_, want)) = networks.iter().find(|(name, _)| name == network) else {
        return Err(DatapathError::Invalid(format!(
            "network {network:?} has no pods on this node (no network of that name in {state_dir})"
        )));
    };
    if want.bridge.is_empty() || !want.routed {
        return Err(DatapathError::Invalid(format!(
            "network {network:?} does not route pod-to-pod traffic through the node (podToPod \"bridged\", or weavice chained after another plugin): chains need podToPod \"routed\""
        )));
    }
    Ok(())
}
