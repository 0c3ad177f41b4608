//! Interface addresses. IPv6 addresses are added with NODAD: duplicate
//! address detection would make ADD wait about two seconds (plugins#680).

use super::Netlink;
use crate::error::PluginError;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::AddressMessageBuilder;
use std::net::IpAddr;

fn message(index: u32, addr: IpNet) -> AddressMessage {
    match addr.addr() {
        IpAddr::V4(a) => {
            AddressMessageBuilder::<std::net::Ipv4Addr>::new().index(index).address(a, addr.prefix_len()).build()
        }
        IpAddr::V6(a) => {
            let mut m =
                AddressMessageBuilder::<std::net::Ipv6Addr>::new().index(index).address(a, addr.prefix_len()).build();
            m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            m
        }
    }
}

/// The request adding `addr` (exclusive), for `Netlink::ack_all`.
pub fn add_request(index: u32, addr: IpNet) -> (RouteNetlinkMessage, u16, Option<i32>) {
    (RouteNetlinkMessage::NewAddress(message(index, addr)), NLM_F_CREATE | NLM_F_EXCL, None)
}

/// Adds `addr`; with `shared`, an existing identical address is fine (the
/// bridge gateway, added by whichever ADD comes first).
pub fn add(nl: &mut Netlink, index: u32, addr: IpNet, shared: bool) -> Result<(), PluginError> {
    match nl.ack(RouteNetlinkMessage::NewAddress(message(index, addr)), NLM_F_CREATE | NLM_F_EXCL) {
        Err(e) if shared && e.errno() == Some(libc::EEXIST) => Ok(()),
        r => r.map_err(PluginError::netlink(format!("add address {addr}"))),
    }
}

/// Every address in the namespace, with its interface index.
pub fn dump(nl: &mut Netlink) -> Result<Vec<(u32, IpNet)>, PluginError> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(PluginError::netlink("list addresses"))?;
    let mut out = Vec::new();
    for m in replies {
        let RouteNetlinkMessage::NewAddress(m) = m else { continue };
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                if let Ok(net) = IpNet::new(*ip, m.header.prefix_len) {
                    out.push((m.header.index, net));
                }
            }
        }
    }
    Ok(out)
}

/// Addresses on the interface, with their prefix lengths.
pub fn list(nl: &mut Netlink, index: u32) -> Result<Vec<IpNet>, PluginError> {
    Ok(dump(nl)?.into_iter().filter(|(i, _)| *i == index).map(|(_, a)| a).collect())
}
