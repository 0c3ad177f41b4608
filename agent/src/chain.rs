//! `weavice-agent chain apply|list|delete`: security-function chains kept in
//! the networks' state dir. A spec is checked against the node before it is
//! stored: its network has pods here, its route functions' pods run here,
//! and no other chain claims the same traffic.

use conf::chain::{validate_chain_name, Chain, FailurePolicy, Mode};
use datapath::chains::{self, health, install, Applied, ChainPod};
use datapath::firewall::iptables::queue;
use datapath::firewall::nftables::steering;
use datapath::netlink::RouteSocket;
use datapath::{marks, sysctl, DatapathError};
use serde_json::{json, Value};

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

/// A spec is a page of YAML: more is not one (`-f /dev/zero`).
const MAX_SPEC: u64 = 1 << 20;

/// The state dir, when it is there, must be a directory.
fn state_dir_ok(state_dir: &str) -> Result<()> {
    match std::fs::metadata(state_dir) {
        Ok(m) if !m.is_dir() => Err(ChainCmdError::Input(format!("--state-dir {state_dir} is not a directory"))),
        _ => Ok(()),
    }
}

fn read_spec(file: &str) -> Result<String> {
    use std::io::Read;
    let bad = |e: std::io::Error| ChainCmdError::Input(format!("read {file}: {e}"));
    let mut yaml = String::new();
    std::fs::File::open(file).map_err(bad)?.take(MAX_SPEC + 1).read_to_string(&mut yaml).map_err(bad)?;
    if yaml.len() as u64 > MAX_SPEC {
        return Err(ChainCmdError::Input(format!("{file} is larger than {MAX_SPEC} bytes: not a chain spec")));
    }
    Ok(yaml)
}

/// Why `chain` cannot be applied next to `others`, if it cannot: the same
/// traffic claimed twice, or a function pod serving two chains of a network.
fn conflict(chain: &Chain, others: &[Applied]) -> Option<String> {
    let spec = &chain.spec;
    if let Some(other) = others.iter().find(|o| chain.overlaps(&o.chain)) {
        return Some(format!(
            "chains {} and {} claim the same traffic (network {}, the same pods and ports): narrow one",
            chain.name(),
            other.chain.name(),
            spec.network
        ));
    }
    for f in &spec.functions {
        let Some(p) = &f.pod else { continue };
        let same_network = others.iter().filter(|o| o.chain.spec.network == spec.network);
        if let Some(o) = same_network.clone().find(|o| o.chain.spec.functions.iter().any(|g| g.pod.as_ref() == Some(p)))
        {
            return Some(format!(
                "chain {}: function {}: pod {p} is a function of chain {} already; a pod serves one chain (give this one its own pod)",
                chain.name(),
                f.name,
                o.chain.name()
            ));
        }
    }
    None
}

pub fn apply(file: &str, state_dir: &str) -> Result<String> {
    state_dir_ok(state_dir)?;
    let yaml = read_spec(file)?;
    let chain = Chain::parse(&yaml).map_err(|e| ChainCmdError::Input(format!("{file}: {e}")))?;
    let spec = &chain.spec;
    let bad = |why: String| ChainCmdError::Input(format!("chain {}: {why}", chain.name()));
    install::check_network(state_dir, &spec.network).map_err(|e| match e {
        DatapathError::Invalid(why) => bad(why),
        other => ChainCmdError::Node(other),
    })?;
    let pods = chains::pods(state_dir, &spec.network);
    let others: Vec<Applied> =
        chains::store::list(state_dir)?.into_iter().filter(|a| a.chain.name() != chain.name()).collect();
    let routes = spec.functions.iter().filter(|f| f.mode == Mode::Route).count();
    if routes > usize::from(marks::MAX_HOP) {
        return Err(bad(format!("{routes} route functions: at most {} fit the packet mark", marks::MAX_HOP)));
    }
    for f in &spec.functions {
        if let Some(p) = &f.pod {
            if !pods.iter().any(|q| q.name.as_ref() == Some(p)) {
                return Err(bad(format!(
                    "function {}: pod {p} is not on this node (no pod of that name in network {})",
                    f.name, spec.network
                )));
            }
            if spec.functions.iter().filter(|g| g.pod.as_ref() == Some(p)).count() > 1 {
                return Err(bad(format!("pod {p} is more than one function of the chain; a pod is one hop")));
            }
            let ips = pods.iter().find(|q| q.name.as_ref() == Some(p)).map(|q| q.ips.clone()).unwrap_or_default();
            if spec.from.matches(Some(p), &ips) || spec.to.matches(Some(p), &ips) {
                return Err(bad(format!(
                    "function {}: pod {p} is on the chain's from or to side; a function cannot be an endpoint of its own chain",
                    f.name
                )));
            }
        }
    }
    // judged again under the chains' lock by install::apply
    if let Some(why) = conflict(&chain, &others) {
        return Err(ChainCmdError::Input(why));
    }
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    let bridges: Vec<String> = datapath::network::recorded(state_dir)?.into_iter().map(|(_, w)| w.bridge).collect();
    for f in spec.functions.iter().filter(|f| f.mode == Mode::Route) {
        let Some(ifname) = &f.interface else { continue };
        let Some(link) = nl.link().get(ifname)? else {
            return Err(bad(format!("function {}: interface {ifname} is not on this node", f.name)));
        };
        let master = match link.master {
            Some(i) => nl.link().get_index(i)?.map(|m| m.name),
            None => None,
        };
        if bridges.contains(ifname) || master.is_some_and(|m| bridges.contains(&m)) {
            return Err(bad(format!(
                "function {}: interface {ifname} is a weavice bridge or one of its ports; a function outside weavice has its own interface",
                f.name
            )));
        }
    }
    // the endpoints' packets come back on a function's own interface, from
    // sources the node routes elsewhere: strict reverse-path filtering would drop them
    for f in spec.functions.iter().filter(|f| f.mode == Mode::Route) {
        let Some(ifname) = &f.interface else { continue };
        // the effective value is the higher of `all` and the interface's: 2 is enough either way
        if sysctl::get_if("ipv4", ifname, "rp_filter").as_deref() != Some("2") {
            sysctl::set_if("ipv4", ifname, "rp_filter", "2")?;
            log::warn!("chain {}: {ifname}: rp_filter 2 (loose), for function {}", chain.name(), f.name);
        }
    }
    for (side, sel) in [("from", &spec.from), ("to", &spec.to)] {
        if !pods.iter().any(|p| sel.matches(p.name.as_ref(), &p.ips)) {
            log::warn!("chain {}: {side} matches no pod yet; pods that come later join it", chain.name());
        }
    }
    if let Some(both) =
        pods.iter().find(|p| spec.from.matches(p.name.as_ref(), &p.ips) && spec.to.matches(p.name.as_ref(), &p.ips))
    {
        log::warn!(
            "chain {}: pod {} is on both sides; packets a function sends back towards it are taken for requests",
            chain.name(),
            both
        );
    }
    let conflicts =
        |others: &[Applied]| conflict(&chain, others).map_or(Ok(()), |why| Err(DatapathError::Invalid(why)));
    let saved = install::apply(&mut nl, state_dir, &chain, &conflicts).map_err(|e| match e {
        // nothing was stored (another state dir's chains, a conflict, no iptables)
        DatapathError::Invalid(why) => ChainCmdError::Input(why),
        other => ChainCmdError::Node(other),
    })?;
    Ok(format!(
        "chain {} {} ({} function(s), failurePolicy {:?})",
        chain.name(),
        if saved.is_some() { "applied" } else { "unchanged" },
        spec.functions.len(),
        spec.failure_policy
    ))
}

pub fn delete(name: &str, state_dir: &str) -> Result<String> {
    validate_chain_name(name).map_err(ChainCmdError::Input)?;
    state_dir_ok(state_dir)?;
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    if install::delete(&mut nl, state_dir, name)?.is_none() {
        return Err(ChainCmdError::Input(format!("no chain named {name} in {state_dir}")));
    }
    Ok(format!("chain {name} deleted"))
}

/// Every chain with its functions, their health (a route function's pod and
/// link, and the daemon's probes when it runs; a queue function's reader;
/// a mirror's: null, unknown), and the pods each side matches now.
pub fn list(state_dir: &str) -> Result<Value> {
    state_dir_ok(state_dir)?;
    let mut nl = RouteSocket::open().map_err(DatapathError::netlink("open netlink socket"))?;
    let mut out = Vec::new();
    let down = health::load(state_dir);
    let packets = steering::packets()?;
    for Applied { chain, .. } in chains::store::list(state_dir)? {
        let pods = chains::pods(state_dir, &chain.spec.network);
        let side = |sel: &conf::chain::Selector| -> Vec<String> {
            pods.iter().filter(|p| sel.matches(p.name.as_ref(), &p.ips)).map(ChainPod::to_string).collect()
        };
        let mut functions = Vec::new();
        for f in &chain.spec.functions {
            let mut up = |link: &str| json!(nl.link().get(link).ok().flatten().is_some_and(|l| l.up));
            let probed_down = health::of(&down, chain.name()).contains(&f.name.as_str());
            let healthy = match (f.mode, &f.pod, &f.interface) {
                (Mode::Route, _, _) if probed_down => json!(false),
                (Mode::Route, Some(p), _) => match pods.iter().find(|q| q.name.as_ref() == Some(p)) {
                    Some(pod) => up(&pod.port),
                    None => json!(false),
                },
                (Mode::Route, None, Some(i)) => up(i),
                (Mode::Route, None, None) => json!(false),
                // a reader bound to the queue on this node
                (Mode::Queue, ..) => json!(f.queue.and_then(|q| u16::try_from(q).ok()).is_some_and(queue::has_reader)),
                // a mirror cannot tell whether anything gets its copies
                (Mode::Mirror, ..) => Value::Null,
            };
            let counted = packets.get(&format!("{}/{}", chain.name(), f.name));
            functions.push(json!({"name": f.name, "mode": f.mode, "healthy": healthy, "packets": counted}));
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
            let packets = f["packets"].as_u64().map_or(String::new(), |n| format!(", {n} packets"));
            out += &format!(
                "  - {} ({}): {health}{packets}\n",
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

/// The chain mark layout, after choosing `set` if given.
pub fn marks(state_dir: &str, set: Option<u32>) -> Result<String> {
    state_dir_ok(state_dir)?;
    if let Some(mask) = set {
        let m = marks::ChainMarks::new(mask).map_err(ChainCmdError::Input)?;
        install::set_marks(state_dir, m).map_err(|e| match e {
            DatapathError::Invalid(why) => ChainCmdError::Input(why),
            other => ChainCmdError::Node(other),
        })?;
        for other in m.overlaps() {
            log::warn!("mark mask {mask:#x} covers {}'s bits {:#x} ({})", other.owner, other.mask, other.purpose);
        }
    }
    let m = chains::store::marks(state_dir);
    Ok(format!(
        "chain marks {:#010x}: chain number {:#010x} (chains 1-{}), reply {:#010x}, hop {:#010x}",
        m.mask,
        m.id_mask(),
        m.max_chain(),
        m.reply(),
        m.hop_mask()
    ))
}
