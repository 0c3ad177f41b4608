//! IPAM configuration, compatible with the reference host-local plugin.

use crate::error::ConfError;
use crate::result::Route;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/weavice/ipam";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    pub subnet: String,
    #[serde(default)]
    pub range_start: Option<IpAddr>,
    #[serde(default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// A range with every default resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(&ip) && ip >= self.start && ip <= self.end
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    // host-local's older single-range form
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    data_dir: Option<String>,
}

/// weavice-ipam's configuration: one range set per address family.
#[derive(Debug, Clone)]
pub struct IpamConf {
    pub plugin_type: String,
    pub range_sets: Vec<Vec<Range>>,
    pub routes: Vec<Route>,
    pub data_dir: String,
}

impl IpamConf {
    pub fn from_value(v: &serde_json::Value) -> Result<Self, ConfError> {
        let raw: RawIpam = crate::error::typed(v, "ipam.")?;
        let mut sets = raw.ranges;
        if let Some(subnet) = raw.subnet {
            sets.push(vec![RangeConf {
                subnet,
                range_start: raw.range_start,
                range_end: raw.range_end,
                gateway: raw.gateway,
            }]);
        }
        if sets.is_empty() {
            return Err(ConfError::Invalid(
                "ipam: no ranges: set ipam.ranges, e.g. [[{\"subnet\": \"10.22.0.0/16\"}]]".into(),
            ));
        }
        let mut range_sets = Vec::with_capacity(sets.len());
        for (i, set) in sets.iter().enumerate() {
            if set.is_empty() {
                return Err(ConfError::Invalid(format!("ipam.ranges[{i}] is empty")));
            }
            let resolved = set
                .iter()
                .enumerate()
                .map(|(j, r)| resolve(r).map_err(|why| ConfError::Invalid(format!("ipam.ranges[{i}][{j}]: {why}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let v4 = resolved[0].subnet.addr().is_ipv4();
            if resolved.iter().any(|r| r.subnet.addr().is_ipv4() != v4) {
                return Err(ConfError::Invalid(format!(
                    "ipam.ranges[{i}] mixes IPv4 and IPv6; use one set per family"
                )));
            }
            range_sets.push(resolved);
        }
        let data_dir = raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_string());
        if !data_dir.starts_with('/') {
            return Err(ConfError::Invalid(format!("ipam.dataDir {data_dir:?} must be an absolute path")));
        }
        Ok(IpamConf { plugin_type: raw.plugin_type, range_sets, routes: raw.routes, data_dir })
    }
}

fn resolve(r: &RangeConf) -> Result<Range, String> {
    let subnet: IpNet =
        r.subnet.parse().map_err(|_| format!("subnet {:?} is not a CIDR such as 10.22.0.0/16", r.subnet))?;
    let subnet = subnet.trunc();
    let (first, last) = match subnet {
        IpNet::V4(n) => {
            if n.prefix_len() > 30 {
                return Err(format!("subnet {n} is too small; use /30 or larger"));
            }
            (IpAddr::V4(add4(n.network(), 1)), IpAddr::V4(add4(n.broadcast(), -1)))
        }
        IpNet::V6(n) => {
            if n.prefix_len() > 126 {
                return Err(format!("subnet {n} is too small; use /126 or larger"));
            }
            (IpAddr::V6(add6(n.network(), 1)), IpAddr::V6(n.broadcast()))
        }
    };
    let inside = |ip: IpAddr, what: &str| {
        if subnet.contains(&ip) && ip >= first && ip <= last {
            Ok(ip)
        } else {
            Err(format!("{what} {ip} is not a usable address of {subnet}"))
        }
    };
    let gateway = inside(r.gateway.unwrap_or(first), "gateway")?;
    let start = inside(r.range_start.unwrap_or(first), "rangeStart")?;
    let end = inside(r.range_end.unwrap_or(last), "rangeEnd")?;
    if start > end {
        return Err(format!("rangeStart {start} is after rangeEnd {end}"));
    }
    Ok(Range { subnet, start, end, gateway })
}

fn add4(ip: std::net::Ipv4Addr, d: i64) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from((u32::from(ip) as i64 + d) as u32)
}

fn add6(ip: std::net::Ipv6Addr, d: i128) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from((u128::from(ip) as i128 + d) as u128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_defaults_like_host_local() {
        let c = IpamConf::from_value(
            &json!({"type": "weavice-ipam", "ranges": [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd22::/64"}]]}),
        )
        .unwrap();
        let r = &c.range_sets[0][0];
        assert_eq!(r.gateway.to_string(), "10.22.0.1");
        assert_eq!(r.start.to_string(), "10.22.0.1");
        assert_eq!(r.end.to_string(), "10.22.0.254");
        assert_eq!(c.range_sets[1][0].gateway.to_string(), "fd22::1");
        assert_eq!(c.data_dir, DEFAULT_DATA_DIR);
    }

    #[test]
    fn accepts_the_single_subnet_form() {
        let c = IpamConf::from_value(&json!({"type": "x", "subnet": "10.1.0.0/16", "gateway": "10.1.0.254"})).unwrap();
        assert_eq!(c.range_sets[0][0].gateway.to_string(), "10.1.0.254");
    }

    #[test]
    fn rejects_bad_ranges() {
        for (bad, needle) in [
            (json!({"type": "x", "ranges": [[{"subnet": "10.0.0.0/33"}]]}), "not a CIDR"),
            (json!({"type": "x", "ranges": [[{"subnet": "banana"}]]}), "not a CIDR"),
            (json!({"type": "x", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]}), "gateway"),
            (
                json!({"type": "x", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.3"}]]}),
                "after",
            ),
            (json!({"type": "x", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}), "mixes"),
            (json!({"type": "x", "ranges": []}), "no ranges"),
            (json!({"type": "x", "ranges": [[{"subnet": 5}]]}), "ipam"),
            (json!({"type": "x", "ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": "rel"}), "absolute"),
        ] {
            let e = IpamConf::from_value(&bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
