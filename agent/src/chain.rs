//! `weavice-agent chain apply|list|delete`: security-function chains kept in
//! the networks' state dir. A spec is checked against the node before it is
//! stored: its network has pods here, its route functions' pods run here,
//! and no other chain claims the same traffic.

use conf::chain::{validate_chain_name, Chain, FailurePolicy, Mode, PodRef};
use datapath::attachment::Attachment;
use datapath::netlink::RouteSocket;
use datapath::{chains, network, DatapathError};
use serde_json::{json, Value};
use std::net::IpAddr;

/// Why a chain command failed; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum ChainCmdError {
    /// Bad input (exit 2): the node was not changed.
    #[error("{0}")]
    Input(String),
    /// The node failed (exit 1).
    #[error(transparent)]
    Node(#[from] DatapathError),
}

type Result<T> = std::result::Result<T, ChainCmdError>;

/// A pod of the network as its attachments' state has it.
struct Pod {
    name: Option<PodRef>,
    ips: Vec<IpAddr>,
    host_veth: String,
}

fn pods(state_dir: &str, network: &str) -> Vec<Pod> {
    let readable = Attachment::list(state_dir, network).into_iter().flatten();
    readable
        .map(|a| Pod {
            name: a.pod.as_ref().map(|p| PodRef { namespace: p.namespace.clone(), name: p.name.clone() }),
            ips: a.pod_ips(),
            host_veth: a.host_veth.clone(),
        })
        .collect()
}

fn describe(p: &Pod) -> String {
    match &p.name {
        Some(n) => n.to_string(),
        None => p.ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(","),
    }
}

pub fn apply(file: &str, state_dir: &str) -> Result<String> {
    let yaml = std::fs::read_to_string(file).map_err(|e| ChainCmdError::Input(format!("read {file}: {e}")))?;
    let chain = Chain::parse(&yaml).map_err(|e| ChainCmdError::Input(format!("{file}: {e}")))?;
    let spec = &chain.spec;
    let recorded = network::recorded(state_dir)?;
    if !recorded.iter().any(|(name, _)| *name == spec.network) {
        return Err(ChainCmdError::Input(format!(
            "chain {}: network {:?} has no pods on this node (no network of that name in {state_dir})",
            chain.name(),
            spec.network
        )));
    }
    let pods = pods(state_dir, &spec.network);
    for f in &spec.functions {
        if let Some(p) = &f.pod {
            if !pods.iter().any(|q| q.name.as_ref() == Some(p)) {
                return Err(ChainCmdError::Input(format!(
                    "chain {}: function {}: pod {p} is not on this node (no pod of that name in network {})",
                    chain.name(),
                    f.name,
                    spec.network
                )));
            }
        }
    }
    for other in chains::list(state_dir)? {
        if other.name() != chain.name() && chain.overlaps(&other) {
            return Err(ChainCmdError::Input(format!(
                "chains {} and {} claim the same traffic (network {}, the same pods and ports): narrow one",
                chain.name(),
                other.name(),
                spec.network
            )));
        }
    }
    for (side, sel) in [("from", &spec.from), ("to", &spec.to)] {
        if !pods.iter().any(|p| sel.matches(p.name.as_ref(), &p.ips)) {
            log::warn!("chain {}: {side} matches no pod yet; pods that come later join it", chain.name());
        }
    }
    let changed = chains::save(state_dir, &chain)?;
    Ok(format!(
        "chain {} {} ({} function(s), failurePolicy {:?})",
        chain.name(),
        if changed { "applied" } else { "unchanged" },
        spec.functions.len(),
        spec.failure_policy
    ))
}

pub fn delete(name: &str, state_dir: &str) -> Result<String> {
    validate_chain_name(name).map_err(ChainCmdError::Input)?;
    if !chains::remove(state_dir, name)? {
        return Err(ChainCmdError::Input(format!("no chain named {name} in {state_dir}")));
    }
    Ok(format!("chain {name} deleted"))
}

/// Every chain with its functions, their health as far as the node shows it
/// (a route function's pod and link; queue and mirror functions need the
/// daemon's probes: null), and the pods each side matches now.
pub fn list(state_dir: &str) -> Result<Value> {
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    let mut out = Vec::new();
    for chain in chains::list(state_dir)? {
        let pods = pods(state_dir, &chain.spec.network);
        let side = |sel: &conf::chain::Selector| -> Vec<String> {
            pods.iter().filter(|p| sel.matches(p.name.as_ref(), &p.ips)).map(describe).collect()
        };
        let mut functions = Vec::new();
        for f in &chain.spec.functions {
            let mut up = |link: &str| json!(nl.link().get(link).ok().flatten().is_some_and(|l| l.up));
            let healthy = match (f.mode, &f.pod, &f.interface) {
                (Mode::Route, Some(p), _) => match pods.iter().find(|q| q.name.as_ref() == Some(p)) {
                    Some(pod) => up(&pod.host_veth),
                    None => json!(false),
                },
                (Mode::Route, None, Some(i)) => up(i),
                _ => Value::Null,
            };
            // steering is not installed yet: nothing is counted
            functions.push(json!({"name": f.name, "mode": f.mode, "healthy": healthy, "packets": null}));
        }
        out.push(json!({
            "name": chain.name(),
            "network": chain.spec.network,
            "failurePolicy": chain.spec.failure_policy,
            "functions": functions,
            "from": side(&chain.spec.from),
            "to": side(&chain.spec.to),
        }));
    }
    Ok(Value::Array(out))
}

/// The list as a table for a terminal.
pub fn text(list: &Value) -> String {
    let mut out = String::new();
    for c in list.as_array().into_iter().flatten() {
        let policy = if c["failurePolicy"] == json!(FailurePolicy::Open) { "Open" } else { "Closed" };
        let (name, network) = (c["name"].as_str().unwrap_or("?"), c["network"].as_str().unwrap_or("?"));
        out += &format!("{name} (network {network}, failurePolicy {policy})\n");
        let pods = |side: &str| {
            let names: Vec<&str> = c[side].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if names.is_empty() {
                "(none yet)".to_string()
            } else {
                names.join(", ")
            }
        };
        out += &format!("  from: {}\n  to:   {}\n", pods("from"), pods("to"));
        for f in c["functions"].as_array().into_iter().flatten() {
            let health = match f["healthy"].as_bool() {
                Some(true) => "healthy",
                Some(false) => "DOWN",
                None => "unknown",
            };
            out += &format!(
                "  - {} ({}): {health}\n",
                f["name"].as_str().unwrap_or("?"),
                f["mode"].as_str().unwrap_or("?")
            );
        }
    }
    if out.is_empty() {
        out = "no chains\n".into();
    }
    out
}
