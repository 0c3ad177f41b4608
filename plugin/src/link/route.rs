//! Routes in the main table.

use super::Netlink;
use crate::error::PluginError;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    /// None: on-link (scope link) through the interface.
    pub gw: Option<IpAddr>,
}

fn message(r: &RouteSpec, oif: u32) -> RouteMessage {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dst.addr(), r.dst.prefix_len())
        .expect("family of a parsed prefix")
        .output_interface(oif);
    match r.gw {
        Some(gw) => b = b.gateway(gw).expect("gateway family checked by caller"),
        None => b = b.scope(RouteScope::Link),
    }
    b.build()
}

/// The request adding the route (an identical one already there is fine),
/// for `Netlink::ack_all`.
pub fn add_request(oif: u32, r: &RouteSpec) -> Result<(RouteNetlinkMessage, u16, Option<i32>), PluginError> {
    if let Some(gw) = r.gw {
        if gw.is_ipv4() != r.dst.addr().is_ipv4() {
            return Err(PluginError::Conf(conf::ConfError::Invalid(format!(
                "route {} via {gw} mixes address families",
                r.dst
            ))));
        }
    }
    Ok((RouteNetlinkMessage::NewRoute(message(r, oif)), NLM_F_CREATE | NLM_F_EXCL, Some(libc::EEXIST)))
}

/// Main-table routes through `oif`, for CHECK.
pub fn list(nl: &mut Netlink, oif: u32, v4: bool) -> Result<Vec<RouteSpec>, PluginError> {
    let family = if v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let mut filter = RouteMessage::default();
    filter.header.address_family = family;
    let mut out = Vec::new();
    for m in nl.dump(RouteNetlinkMessage::GetRoute(filter)).map_err(PluginError::netlink("list routes"))? {
        let RouteNetlinkMessage::NewRoute(m) = m else { continue };
        let mut dst = None;
        let mut gw = None;
        let mut dev = None;
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = ip_of(d),
                RouteAttribute::Gateway(g) => gw = ip_of(g),
                RouteAttribute::Oif(i) => dev = Some(*i),
                _ => {}
            }
        }
        if dev != Some(oif) {
            continue;
        }
        let dst = dst.unwrap_or(if v4 { IpAddr::from([0u8; 4]) } else { IpAddr::from([0u16; 8]) });
        if let Ok(dst) = IpNet::new(dst, m.header.destination_prefix_length) {
            out.push(RouteSpec { dst, gw });
        }
    }
    Ok(out)
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}
