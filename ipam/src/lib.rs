//! weavice's address allocator: host-local compatible configuration, file
//! locking across processes, and an index by attachment.
//!
//! The plugin calls this library in-process when `ipam.type` is
//! `weavice-ipam` (no second process per ADD); the `weavice-ipam` binary
//! wraps the same calls for runtimes and other main plugins.

pub mod allocator;
pub mod error;
pub mod filelock;
pub mod private_file;
pub mod store;

use conf::netconf::AttachmentKey;
use conf::{CniResult, ConfError, IpamConf};
pub use error::IpamError;
use filelock::FileLock;
use std::net::IpAddr;
use std::time::Duration;
use store::{DiskStore, Reservation};

pub const PLUGIN_TYPE: &str = "weavice-ipam";
const LOCK_TIMEOUT: Duration = Duration::from_secs(20);

fn open(conf: &IpamConf, network: &str) -> Result<(DiskStore, FileLock), IpamError> {
    let store = DiskStore::open(&conf.data_dir, network);
    let lock = FileLock::acquire(&store.lock_path(), LOCK_TIMEOUT)?;
    Ok((store, lock))
}

/// Static addresses from the `ips` capability, `args.cni.ips` or CNI_ARGS `IP`,
/// each either a bare address or a CIDR.
pub fn parse_static_ips<'a>(requests: impl IntoIterator<Item = &'a str>) -> Result<Vec<IpAddr>, ConfError> {
    let mut out: Vec<IpAddr> = Vec::new();
    for s in requests.into_iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let ip = s
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| ConfError::Invalid(format!("requested IP {s:?} is not an address")))?;
        if out.contains(&ip) {
            return Err(ConfError::Invalid(format!("requested IP {ip} appears twice")));
        }
        out.push(ip);
    }
    Ok(out)
}

/// The static addresses an invocation asks for, from all three places the
/// conventions allow: the `ips` capability, `args.cni.ips` and CNI_ARGS `IP`.
pub fn requested_ips(net: &conf::NetConf, args: &conf::CmdArgs) -> Result<Vec<IpAddr>, ConfError> {
    let from_config = net.runtime_config.ips.iter().chain(&net.args.cni.ips).map(String::as_str);
    parse_static_ips(from_config.chain(args.args.get("IP").map(String::as_str)))
}

/// Reserves one address per range set. A repeated ADD for the same
/// attachment returns what it already holds: never two sets of addresses.
pub fn add(
    conf: &IpamConf,
    network: &str,
    container_id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<CniResult, IpamError> {
    let (store, _lock) = open(conf, network)?;
    let held = store.ips_of(container_id, ifname).map_err(store.io("read attachment index"))?;
    if !held.is_empty() {
        let ips = held.iter().filter_map(|ip| allocator::config_for(&conf.range_sets, *ip)).collect();
        return Ok(CniResult { ips, routes: conf.routes.clone(), ..Default::default() });
    }
    for ip in requested {
        if !conf.range_sets.iter().flatten().any(|r| r.contains(*ip)) {
            return Err(IpamError::Unavailable { ip: ip.to_string(), why: "outside every configured range".into() });
        }
    }
    let mut ips = Vec::new();
    for (idx, set) in conf.range_sets.iter().enumerate() {
        let want = requested.iter().copied().find(|ip| set.iter().any(|r| r.contains(*ip)));
        match allocator::allocate_in_set(&store, idx, set, container_id, ifname, want) {
            Ok(c) => ips.push(c),
            Err(e) => {
                for c in &ips {
                    let _ = store.release_ip(c.address.addr(), container_id, ifname);
                }
                return Err(e);
            }
        }
    }
    let addrs: Vec<IpAddr> = ips.iter().map(|c| c.address.addr()).collect();
    if let Err(e) = store.write_index(container_id, ifname, &addrs) {
        for ip in &addrs {
            let _ = store.release_ip(*ip, container_id, ifname);
        }
        return Err(store.io("write attachment index")(e));
    }
    Ok(CniResult { ips, routes: conf.routes.clone(), ..Default::default() })
}

/// Releases the attachment's addresses; absent reservations are not an error.
pub fn del(conf: &IpamConf, network: &str, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
    let (store, _lock) = open(conf, network)?;
    store.release_attachment(container_id, ifname).map_err(store.io("release attachment"))
}

/// The attachment's addresses, from its index (DEL without saved state).
pub fn ips_of(conf: &IpamConf, network: &str, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
    let (store, _lock) = open(conf, network)?;
    store.ips_of(container_id, ifname).map_err(store.io("read attachment index"))
}

/// Confirms the attachment still holds every address in its index.
pub fn check(conf: &IpamConf, network: &str, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
    let (store, _lock) = open(conf, network)?;
    let ips = store.ips_of(container_id, ifname).map_err(store.io("read attachment index"))?;
    if ips.is_empty() {
        return Err(IpamError::Check(format!("no reservation for {container_id}/{ifname} in network {network}")));
    }
    for ip in &ips {
        match store.holder(*ip).map_err(store.io("read reservation"))? {
            Some((id, ifn)) if id == container_id && ifn == ifname => {}
            other => {
                return Err(IpamError::Check(format!(
                    "{ip} should be held by {container_id}/{ifname}, found {other:?}"
                )))
            }
        }
    }
    Ok(ips)
}

/// Releases every reservation whose attachment is not in `keep`. An address
/// a kept attachment's index lists is never released, even when its
/// reservation file was cut short (it is rewritten for that attachment).
pub fn gc(conf: &IpamConf, network: &str, keep: &[AttachmentKey]) -> Result<Vec<Reservation>, IpamError> {
    let (store, _lock) = open(conf, network)?;
    let kept = |id: &str, ifn: &str| keep.iter().any(|k| k.container_id == id && k.ifname == ifn);
    let mut protected = std::collections::HashMap::new();
    for k in keep {
        for ip in store.ips_of(&k.container_id, &k.ifname).map_err(store.io("read attachment index"))? {
            protected.insert(ip, k);
        }
    }
    let mut released = Vec::new();
    for r in store.all().map_err(store.io("list reservations"))? {
        if let Some(k) = protected.get(&r.ip) {
            if r.container_id.is_empty() {
                store.rewrite(r.ip, &k.container_id, &k.ifname).map_err(store.io("rewrite reservation"))?;
            }
            continue;
        }
        if !kept(&r.container_id, &r.ifname) {
            store.release_ip(r.ip, &r.container_id, &r.ifname).map_err(store.io("release"))?;
            released.push(r);
        }
    }
    for (id, ifn) in store.indexed().map_err(store.io("list attachments"))? {
        if !kept(&id, &ifn) {
            store.release_attachment(&id, &ifn).map_err(store.io("release attachment"))?;
        }
    }
    Ok(released)
}

/// Ready when the data dir is usable; not ready for ADD when a set is full.
pub fn status(conf: &IpamConf, network: &str) -> Result<(), IpamError> {
    let (store, _lock) = open(conf, network)?;
    let held = store.all().map_err(store.io("list reservations"))?;
    for set in &conf.range_sets {
        let free = set.iter().any(|r| {
            let size = match (r.start, r.end) {
                (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(b) - u32::from(a)) as u128 + 1,
                (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(b).saturating_sub(u128::from(a)).saturating_add(1),
                _ => 0,
            };
            let used = held.iter().filter(|h| r.contains(h.ip)).count() as u128 + u128::from(r.contains(r.gateway));
            used < size
        });
        if !free {
            let ranges: Vec<String> = set.iter().map(|r| r.subnet.to_string()).collect();
            return Err(IpamError::Exhausted(ranges.join(", ")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(tag: &str, ranges: serde_json::Value) -> IpamConf {
        let dir = std::env::temp_dir().join(format!("wv-ipam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        IpamConf::from_value(&json!({"type": PLUGIN_TYPE, "ranges": ranges, "dataDir": dir})).unwrap()
    }

    #[test]
    fn dual_stack_round_robin_and_release() {
        let c = conf("rr", json!([[{"subnet": "10.9.0.0/29"}], [{"subnet": "fd09::/120"}]]));
        let a = add(&c, "n", "a", "eth0", &[]).unwrap();
        assert_eq!(a.ips.len(), 2);
        assert_eq!(a.ips[0].address.to_string(), "10.9.0.2/29");
        assert_eq!(a.ips[0].gateway.unwrap().to_string(), "10.9.0.1");
        assert_eq!(a.ips[1].address.to_string(), "fd09::2/120");
        // repeated ADD returns the same addresses
        assert_eq!(add(&c, "n", "a", "eth0", &[]).unwrap().ips, a.ips);
        let b = add(&c, "n", "b", "eth0", &[]).unwrap();
        assert_eq!(b.ips[0].address.to_string(), "10.9.0.3/29");
        del(&c, "n", "a", "eth0").unwrap();
        del(&c, "n", "a", "eth0").unwrap();
        // round robin does not hand the freed address back at once
        let d = add(&c, "n", "d", "eth0", &[]).unwrap();
        assert_eq!(d.ips[0].address.to_string(), "10.9.0.4/29");
        assert!(check(&c, "n", "a", "eth0").is_err());
        assert_eq!(check(&c, "n", "d", "eth0").unwrap().len(), 2);
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }

    #[test]
    fn exhaustion_is_reported_and_leaves_nothing_behind() {
        let c = conf("full", json!([[{"subnet": "10.9.1.0/30"}], [{"subnet": "fd09::/126"}]]));
        add(&c, "n", "a", "eth0", &[]).unwrap(); // /30 has .1 (gateway) and .2
        let e = add(&c, "n", "b", "eth0", &[]).unwrap_err();
        assert!(matches!(e, IpamError::Exhausted(_)), "{e}");
        assert!(matches!(status(&c, "n"), Err(IpamError::Exhausted(_))));
        // b's IPv6 address was not reserved either
        assert_eq!(gc(&c, "n", &[AttachmentKey { container_id: "a".into(), ifname: "eth0".into() }]).unwrap(), vec![]);
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }

    #[test]
    fn static_ips_and_conflicts() {
        let c = conf("static", json!([[{"subnet": "10.9.2.0/24"}]]));
        let ip: IpAddr = "10.9.2.50".parse().unwrap();
        assert_eq!(add(&c, "n", "a", "eth0", &[ip]).unwrap().ips[0].address.addr(), ip);
        assert!(matches!(add(&c, "n", "b", "eth0", &[ip]), Err(IpamError::Unavailable { .. })));
        let outside: IpAddr = "10.8.0.1".parse().unwrap();
        assert!(matches!(add(&c, "n", "b", "eth0", &[outside]), Err(IpamError::Unavailable { .. })));
        let gw: IpAddr = "10.9.2.1".parse().unwrap();
        assert!(matches!(add(&c, "n", "b", "eth0", &[gw]), Err(IpamError::Unavailable { .. })));
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }

    #[test]
    fn gc_releases_everything_not_listed() {
        let c = conf("gc", json!([[{"subnet": "10.9.3.0/24"}]]));
        for id in ["a", "b", "c"] {
            add(&c, "n", id, "eth0", &[]).unwrap();
        }
        let keep = [AttachmentKey { container_id: "b".into(), ifname: "eth0".into() }];
        let released: Vec<String> = gc(&c, "n", &keep).unwrap().into_iter().map(|r| r.container_id).collect();
        assert_eq!(released, ["a", "c"]);
        assert!(check(&c, "n", "b", "eth0").is_ok());
        assert!(check(&c, "n", "a", "eth0").is_err());
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }

    #[test]
    fn gc_never_frees_a_listed_attachments_address_whose_reservation_was_cut_short() {
        let c = conf("gccut", json!([[{"subnet": "10.9.4.0/24"}]]));
        let a = add(&c, "n", "a", "eth0", &[]).unwrap().ips[0].address.addr();
        let b = add(&c, "n", "b", "eth0", &[]).unwrap().ips[0].address.addr();
        let store = DiskStore::open(&c.data_dir, "n");
        for ip in [a, b] {
            std::fs::write(std::path::Path::new(&c.data_dir).join("n").join(ip.to_string()), b"").unwrap();
        }
        let keep = [AttachmentKey { container_id: "a".into(), ifname: "eth0".into() }];
        gc(&c, "n", &keep).unwrap();
        assert_eq!(store.holder(a).unwrap(), Some(("a".into(), "eth0".into())), "kept and rewritten");
        assert_eq!(store.holder(b).unwrap(), None, "b was not listed");
        assert!(check(&c, "n", "a", "eth0").is_ok());
        let next = add(&c, "n", "d", "eth0", &[]).unwrap().ips[0].address.addr();
        assert_ne!(next, a, "a's address is not handed out again");
        std::fs::remove_dir_all(&c.data_dir).unwrap();
    }

    #[test]
    fn parses_static_requests() {
        assert_eq!(parse_static_ips(["10.0.0.5/24", "fd00::5"]).unwrap().len(), 2);
        assert!(parse_static_ips(["nope"]).is_err());
        assert!(parse_static_ips(["10.0.0.5", "10.0.0.5/24"]).is_err());
    }
}
