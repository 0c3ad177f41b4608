//! Picks addresses: static requests first, otherwise round-robin after the
//! last reservation, one address per range set (one per family).

use crate::error::IpamError;
use crate::store::DiskStore;
use conf::ipamconf::Range;
use conf::IpConfig;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Upper bound on probes in one set, so a huge IPv6 range never loops for long.
const MAX_PROBES: u128 = 1 << 20;

fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn addr(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

pub fn ip_config(range: &Range, ip: IpAddr) -> IpConfig {
    let address = IpNet::new(ip, range.subnet.prefix_len()).expect("prefix comes from a parsed subnet");
    IpConfig { address, gateway: Some(range.gateway), interface: None }
}

fn find_range(set: &[Range], ip: IpAddr) -> Option<&Range> {
    set.iter().find(|r| r.contains(ip))
}

/// Reserves one address in `set` for the attachment.
pub fn allocate_in_set(
    store: &DiskStore,
    set_idx: usize,
    set: &[Range],
    container_id: &str,
    ifname: &str,
    requested: Option<IpAddr>,
) -> Result<IpConfig, IpamError> {
    if let Some(ip) = requested {
        let range = find_range(set, ip).ok_or_else(|| IpamError::Unavailable {
            ip: ip.to_string(),
            why: "outside every configured range".into(),
        })?;
        if ip == range.gateway {
            return Err(IpamError::Unavailable { ip: ip.to_string(), why: "the gateway address".into() });
        }
        if !store.reserve(ip, container_id, ifname).map_err(store.io(format_args!("reserve {ip}")))? {
            let holder = store.holder(ip).ok().flatten().map(|(id, ifn)| format!("{id}/{ifn}")).unwrap_or_default();
            return Err(IpamError::Unavailable { ip: ip.to_string(), why: format!("already reserved by {holder}") });
        }
        return Ok(ip_config(range, ip));
    }

    let v4 = set[0].subnet.addr().is_ipv4();
    // Start just after the last reservation when it lies in this set.
    let (mut ri, mut cur) = match store
        .last_reserved(set_idx)
        .and_then(|l| set.iter().position(|r| r.contains(l)).map(|i| (i, num(l) + 1)))
    {
        Some(pos) => pos,
        None => (0, num(set[0].start)),
    };
    let total: u128 = set.iter().map(|r| num(r.end) - num(r.start) + 1).sum();
    for _ in 0..total.min(MAX_PROBES) {
        if cur > num(set[ri].end) {
            ri = (ri + 1) % set.len();
            cur = num(set[ri].start);
        }
        let ip = addr(cur, v4);
        cur += 1;
        if ip == set[ri].gateway {
            continue;
        }
        if store.reserve(ip, container_id, ifname).map_err(store.io(format_args!("reserve {ip}")))? {
            if let Err(e) = store.set_last_reserved(set_idx, ip) {
                let _ = store.release_ip(ip, container_id, ifname);
                return Err(store.io("write last_reserved_ip")(e));
            }
            return Ok(ip_config(&set[ri], ip));
        }
    }
    let ranges: Vec<String> = set.iter().map(|r| format!("{}-{}", r.start, r.end)).collect();
    Err(IpamError::Exhausted(ranges.join(", ")))
}

/// The configuration of an address already reserved, for repeated ADD and CHECK.
pub fn config_for(sets: &[Vec<Range>], ip: IpAddr) -> Option<IpConfig> {
    sets.iter().find_map(|set| find_range(set, ip)).map(|r| ip_config(r, ip))
}
