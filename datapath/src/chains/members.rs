//! A pod joining and leaving the chains of its network, at ADD and DEL:
//! set elements for the sides it matches, and for a route function's pod
//! its hop (the bridge port's mark) and the routes of its chain's tables,
//! which follow the pod to its new address or, when it goes, apply the
//! chain's failure policy at once.

use super::{health, hops, install, pods, route_functions, store, Applied, ChainPod};
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
                marks: a.marks,
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

/// Re-routes the chains of `members` that have a function among them, with
/// `pods` as the pods there now (the first of a name is the one routed to),
/// and gives each function's routed pod its hop elements.
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
        for (k, f) in route_functions(a).into_iter().enumerate() {
            let Some(p) = pods.iter().find(|p| p.name.is_some() && p.name == f.pod) else { continue };
            let hop = u8::try_from(k + 1).ok();
            steering::add_pod(&port(p), &[Member { chain: a.id, from: false, to: false, hop, marks: a.marks }])?;
        }
    }
    Ok(())
}

/// Adds `pod` (whose attachment is not saved yet) to the chains of
/// `network`; returns what it joined, for [`recheck`]. A pod that takes the
/// name of a function's pod (re-created) becomes the function; the other
/// loses its hop.
pub fn join(nl: &mut RouteSocket, state_dir: &str, network: &str, pod: &ChainPod) -> Result<Vec<Member>> {
    // no chain takes it: nothing to wait for (a chain applied from now on is
    // found by recheck)
    if !store::exists(state_dir) || memberships(&chains_of(state_dir, network), pod).is_empty() {
        return Ok(Vec::new());
    }
    // after an apply that is under way: its sets are there once it is done
    let _one_at_a_time = store::lock(state_dir)?;
    let chains = chains_of(state_dir, network);
    let members = memberships(&chains, pod);
    add(nl, state_dir, network, pod, &chains, &members)?;
    Ok(members)
}

fn add(
    nl: &mut RouteSocket,
    state_dir: &str,
    network: &str,
    pod: &ChainPod,
    chains: &[Applied],
    members: &[Member],
) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    let sides: Vec<Member> = members.iter().map(|m| Member { hop: None, ..*m }).collect();
    match steering::add_pod(&port(pod), &sides) {
        // the chains' sets are gone (a flushed ruleset): installed again, once
        Err(DatapathError::NotInstalled(why)) => {
            log::warn!("security-function chains: {why}; installing them again");
            install::sync_locked(nl, state_dir, &[])?;
            steering::add_pod(&port(pod), &sides)?;
        }
        done => done?,
    }
    if members.iter().any(|m| m.hop.is_some()) {
        let mut all = pods(state_dir, network);
        all.retain(|p| p.port != pod.port);
        for namesake in all.iter().filter(|p| p.name == pod.name) {
            log::warn!("pod {pod} ({}) is re-created as {}: the chain follows the new one", namesake.port, pod.port);
            steering::remove_hop(&port(namesake))?;
        }
        all.insert(0, pod.clone());
        reroute(nl, state_dir, chains, members, &all)?;
    }
    Ok(())
}

/// After ADD saved the pod's attachment: joins the chains applied since
/// [`join`] read them (an apply that listed the pods before this one had
/// state). Cheap when nothing changed: one read of the chains.
pub fn recheck(nl: &mut RouteSocket, state_dir: &str, network: &str, pod: &ChainPod, joined: &[Member]) -> Result<()> {
    // a function's pod always goes again: a sync meanwhile took its hop
    // (no state, no link yet) and routed its chain without it
    let function = joined.iter().any(|m| m.hop.is_some());
    if !store::exists(state_dir) || (!function && memberships(&chains_of(state_dir, network), pod) == joined) {
        return Ok(());
    }
    let _one_at_a_time = store::lock(state_dir)?;
    let chains = chains_of(state_dir, network);
    let now = memberships(&chains, pod);
    let gone: Vec<Member> = joined.iter().filter(|m| !now.contains(m)).copied().collect();
    steering::remove_pod(&port(pod), &gone)?;
    add(nl, state_dir, network, pod, &chains, &now)
}

/// Takes `pod` out of the chains of `network`: its elements go, and the
/// tables of chains it was a function of lose its route (its attachment
/// may still be on disk: it is left out).
pub fn leave(nl: &mut RouteSocket, state_dir: &str, network: &str, pod: &ChainPod) -> Result<Lingering> {
    // by name what it is now (an apply removes what a changed spec took
    // from it); without its name (its state lost) anything, in every chain
    let members_of = |chains: &[Applied]| -> Vec<Member> {
        match pod.name {
            Some(_) => memberships(chains, pod),
            None => chains
                .iter()
                .map(|a| Member { chain: a.id, from: true, to: true, hop: Some(1), marks: a.marks })
                .collect(),
        }
    };
    // a pod no chain takes leaves without the lock
    if !store::exists(state_dir) || members_of(&chains_of(state_dir, network)).is_empty() {
        return Ok(Lingering::default());
    }
    let _one_at_a_time = store::lock(state_dir)?;
    let chains = chains_of(state_dir, network);
    let members = members_of(&chains);
    if members.is_empty() {
        return Ok(Lingering::default());
    }
    if members.iter().any(|m| m.hop.is_some()) {
        let mut rest = pods(state_dir, network);
        rest.retain(|p| p.port != pod.port);
        // routes first: no steered packet is sent towards an address that is going
        reroute(nl, state_dir, &chains, &members, &rest)?;
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
