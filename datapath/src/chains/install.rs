//! Installing what the applied chains need (the agent's `chain apply`,
//! `chain delete` and `repair`): nftables rules and sets, the pods' set
//! elements, NFQUEUE rules, ip rules and hop tables, for every chain of the state dir at
//! once, so the node ends up with exactly what the files say.

use super::members::memberships;
use super::{health, hops, pods, store, Applied};
use crate::firewall::iptables::queue::{self, QueueRule};
use crate::firewall::nftables::steering::{self, PodPort};
use crate::netlink::RouteSocket;
use crate::network;
use crate::{DatapathError, Result};
use conf::chain::{FailurePolicy, Mode};

/// Makes the node hold what the applied chains of `state_dir` need; the
/// sets of the chains numbered `gone` (deleted) are removed. New rules and
/// routes go in before old ones go.
pub fn sync(nl: &mut RouteSocket, state_dir: &str, gone: &[u16]) -> Result<()> {
    let _one_at_a_time = store::lock(state_dir)?;
    let chains = store::list(state_dir)?;
    let networks = network::recorded(state_dir)?;
    let (mut rules, mut routes) = (Vec::new(), Vec::new());
    let down = health::load(state_dir);
    for a in &chains {
        let net = &a.chain.spec.network;
        let Some((_, want)) = networks.iter().find(|(name, _)| name == net) else {
            log::warn!("chain {}: network {net} is not set up on this node; its steering waits for it", a.chain.name());
            continue;
        };
        let families: Vec<bool> =
            [true, false].into_iter().filter(|v4| want.gateways.iter().any(|g| g.addr().is_ipv4() == *v4)).collect();
        rules.extend(hops::rules(a, &want.bridge));
        routes.extend(hops::routes(a, &pods(state_dir, net), &families, &health::of(&down, a.chain.name())));
    }
    // routes and rules first: a packet classified by the new nft rules finds its hop
    hops::install_routes(nl, &routes)?;
    for r in &rules {
        nl.rule().add(r)?;
    }
    steering::apply(&chains, gone)?;
    queue::sync(&queue_rules(&chains))?;
    sync_members(state_dir, &chains)?;
    hops::sync(nl, &rules, &routes)
}

/// Every pod's elements in the chains of its network.
fn sync_members(state_dir: &str, chains: &[Applied]) -> Result<()> {
    let mut nets: Vec<&str> = chains.iter().map(|a| a.chain.spec.network.as_str()).collect();
    nets.sort();
    nets.dedup();
    let (mut wanted, mut known) = (Vec::new(), Vec::new());
    for net in nets {
        let of_net: Vec<Applied> = chains.iter().filter(|a| a.chain.spec.network == net).cloned().collect();
        for p in pods(state_dir, net) {
            let port = PodPort { port: p.port.clone(), ips: p.ips.clone() };
            let m = memberships(&of_net, &p);
            if !m.is_empty() {
                wanted.push((port.clone(), m));
            }
            known.push(port);
        }
    }
    steering::sync_pods(chains, &wanted, &known)
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

/// The NFQUEUE rules of every queue function: one per direction.
fn queue_rules(chains: &[Applied]) -> Vec<QueueRule> {
    let mut out = Vec::new();
    for a in chains {
        for (i, f) in a.chain.spec.functions.iter().enumerate() {
            let Some(queue) = f.queue.filter(|_| f.mode == Mode::Queue).and_then(|q| u16::try_from(q).ok()) else {
                continue;
            };
            let bypass = a.chain.spec.failure_policy == FailurePolicy::Open;
            out.extend(super::passes(a, i).map(|mark| QueueRule { mark, queue, bypass }));
        }
    }
    out
}
