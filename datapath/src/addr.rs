//! Interface addresses: `nl.addr()`. IPv6 addresses are added with NODAD:
//! duplicate address detection would make ADD wait about two seconds
//! (plugins#680).

use crate::netlink::{Request, RouteSocket};
use crate::{DatapathError, Result};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::AddressMessageBuilder;
use std::net::IpAddr;

/// An address and the interface holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub net: IpNet,
}

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

/// The request adding `addr` (exclusive), for a batch.
pub fn add_request(index: u32, addr: IpNet) -> Request<RouteNetlinkMessage> {
    Request::new(RouteNetlinkMessage::NewAddress(message(index, addr)), NLM_F_CREATE | NLM_F_EXCL)
}

/// `ip addr` on one socket.
pub struct AddrHandle<'a>(&'a mut RouteSocket);

impl RouteSocket {
    pub fn addr(&mut self) -> AddrHandle<'_> {
        AddrHandle(self)
    }
}

impl AddrHandle<'_> {
    /// Adds `addr`; with `shared`, an existing identical address is fine (the
    /// bridge gateway, added by whichever ADD comes first).
    pub fn add(&mut self, index: u32, addr: IpNet, shared: bool) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::NewAddress(message(index, addr)), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if shared && e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(DatapathError::netlink(format!("add address {addr}"))),
        }
    }

    /// Removes `addr`; one already gone is not an error.
    pub fn delete(&mut self, index: u32, addr: IpNet) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::DelAddress(message(index, addr)), 0) {
            Err(e) if matches!(e.errno(), Some(libc::EADDRNOTAVAIL | libc::ENOENT)) => Ok(()),
            r => r.map_err(DatapathError::netlink(format!("delete address {addr}"))),
        }
    }

    /// Every address in the namespace.
    pub fn dump(&mut self) -> Result<Vec<Address>> {
        let replies = self
            .0
            .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
            .map_err(DatapathError::netlink("list addresses"))?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewAddress(m) = m else { continue };
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    if let Ok(net) = IpNet::new(*ip, m.header.prefix_len) {
                        out.push(Address { index: m.header.index, net });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Addresses on the interface, with their prefix lengths.
    pub fn list(&mut self, index: u32) -> Result<Vec<IpNet>> {
        Ok(self.dump()?.into_iter().filter(|a| a.index == index).map(|a| a.net).collect())
    }
}
