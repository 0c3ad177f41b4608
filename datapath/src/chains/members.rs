//! A pod joining and leaving the chains of its network, at ADD and DEL:
//! set elements for the sides it matches, and for a route function's pod
//! its hop (the bridge port's mark) and the routes of its chain's tables,
//! which follow the pod to its new address or, when it goes, apply the
//! chain's failure policy at once.

use super::{health, hops, pods, route_functions, store, Applied, ChainPod};
use crate::firewall::nftables::steering::{self, Member, PodPort};
use crate::lingering::Lingering;
use crate::netlink::RouteSocket;
use crate::{DatapathError, Result};

/// What `pod` is in each of `chains` (of its network); chains it has no part in are left out.
pub fn memberships(chains: &[Applied], pod: &ChainPod) -> Vec<Member> {
    chains
        .iter()
        .filter_map(|a| {
            let spec = &a.chain.spec;
            let hop = route_functions(a)
                .iter()
                .position(|f| pod.name.is_some() && f.pod == pod.name)
                .and_then(|i| u8::try_from(i + 1).ok());
            let m = Member {
                chain: a.id,
                from: spec.from.matches(pod.name.as_ref(), &pod.ips),
                to: spec.to.matches(pod.name.as_ref(), &pod.ips),
                hop,
            };
            (m.from || m.to || m.hop.is_some()).then_some(m)
        })
        .collect()
}

/// The network's chains whose files are readable; an unreadable one is
/// logged and left out (a pod's ADD must not fail for another chain's file).
pub fn chains_of(state_dir: &str, network: &str) -> Vec<Applied> {
    match store::list(state_dir) {
        Ok(all) => all.into_iter().filter(|a| a.chain.spec.network == network).collect(),
        Err(e) => {
            log::warn!("security-function chains: {e}; pods of network {network} join none of them");
            Vec::new()
        }
    }
}

fn port(pod: &ChainPod) -> PodPort {
    PodPort { port: pod.port.clone(), ips: pod.ips.clone() }
}

/// The address families `pods` have.
pub fn families(pods: &[ChainPod]) -> Vec<bool> {
    [true, false].into_iter().filter(|v4| pods.iter().any(|p| p.ips.iter().any(|ip| ip.is_ipv4() == *v4))).collect()
}

/// Re-routes the chains `pod` is a function of, with `pods` as the pods there now.
fn reroute(
    nl: &mut RouteSocket,
    state_dir: &str,
    chains: &[Applied],
    members: &[Member],
    pods: &[ChainPod],
) -> Result<()> {
    let down = health::load(state_dir);
    for m in members.iter().filter(|m| m.hop.is_some()) {
        let Some(a) = chains.iter().find(|a| a.id == m.chain) else { continue };
        hops::install_routes(nl, &hops::routes(a, pods, &families(pods), &health::of(&down, a.chain.name())))?;
    }
    Ok(())
}

/// Adds `pod` (whose attachment is not saved yet) to the chains of
/// `network`; returns what it joined, for [`leave`] on rollback.
pub fn join(nl: &mut RouteSocket, state_dir: &str, network: &str, pod: &ChainPod) -> Result<Vec<Member>> {
    let chains = chains_of(state_dir, network);
    let members = memberships(&chains, pod);
    if members.is_empty() {
        return Ok(members);
    }
    let _one_at_a_time = store::lock(state_dir)?;
    steering::add_pod(&port(pod), &members).map_err(|e| {
        DatapathError::Firewall(format!(
            "{e}: the steering of security-function chains is not installed on this node; run weavice-agent repair"
        ))
    })?;
    if members.iter().any(|m| m.hop.is_some()) {
        let mut all = pods(state_dir, network);
        all.retain(|p| p.port != pod.port);
        all.push(pod.clone());
        reroute(nl, state_dir, &chains, &members, &all)?;
    }
    Ok(members)
}

/// Takes `pod` out of the chains of `network`: its elements go, and the
/// tables of chains it was a function of lose its route (its attachment
/// may still be on disk: it is left out).
pub fn leave(nl: &mut RouteSocket, state_dir: &str, network: &str, pod: &ChainPod) -> Result<Lingering> {
    let chains = chains_of(state_dir, network);
    // every chain of the network: the pod may have matched a spec that has changed since
    let members: Vec<Member> =
        chains.iter().map(|a| Member { chain: a.id, from: true, to: true, hop: Some(1) }).collect();
    if members.is_empty() {
        return Ok(Lingering::default());
    }
    let _one_at_a_time = store::lock(state_dir)?;
    // without its name (its state lost) the pod may have been any chain's function
    let functions = match pod.name {
        Some(_) => memberships(&chains, pod),
        None => members.clone(),
    };
    if functions.iter().any(|m| m.hop.is_some()) {
        let mut rest = pods(state_dir, network);
        rest.retain(|p| p.port != pod.port);
        // routes first: no steered packet is sent towards an address that is going
        reroute(nl, state_dir, &chains, &functions, &rest)?;
    }
    steering::remove_pod(&port(pod), &members)
}

/// What the node lacks of `pod`'s elements in the chains of `network`, named (CHECK).
pub fn missing(state_dir: &str, network: &str, pod: &ChainPod) -> Result<Vec<String>> {
    let members = memberships(&chains_of(state_dir, network), pod);
    if members.is_empty() {
        return Ok(Vec::new());
    }
    steering::missing_pod(&port(pod), &members)
}
