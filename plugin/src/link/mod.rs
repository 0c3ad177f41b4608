//! Links, addresses and routes over rtnetlink, one file per object, in the
//! style of rtnetlink's own handles. A `Netlink` socket is bound to the
//! namespace it was opened in.

pub mod addr;
pub mod bridge;
pub mod route;
pub mod socket;
pub mod veth;

use crate::error::PluginError;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::LinkUnspec;
use sha2::{Digest, Sha256};
pub use socket::Netlink;

/// Opens a netlink socket in the namespace the thread is in now.
pub fn connect() -> Result<Netlink, PluginError> {
    Netlink::open().map_err(PluginError::netlink("open netlink socket"))
}

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    pub up: bool,
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

impl From<LinkMessage> for Link {
    fn from(m: LinkMessage) -> Self {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            mac: vec![],
            up: m.header.flags.contains(LinkFlags::Up),
            master: None,
            mtu: None,
            peer_index: None,
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Address(mac) => l.mac = mac,
                LinkAttribute::Controller(i) => l.master = Some(i),
                LinkAttribute::Mtu(m) => l.mtu = Some(m),
                LinkAttribute::Link(i) => l.peer_index = Some(i),
                _ => {}
            }
        }
        l
    }
}

fn links(replies: Vec<RouteNetlinkMessage>) -> impl Iterator<Item = Link> {
    replies.into_iter().filter_map(|m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(Link::from(l)),
        _ => None,
    })
}

pub fn get(nl: &mut Netlink, name: &str) -> Result<Option<Link>, PluginError> {
    let msg = LinkUnspec::new_with_name(name).build();
    match nl.get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(replies) => Ok(links(replies).next()),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(PluginError::netlink(format!("get link {name}"))(e)),
    }
}

/// Every link in the namespace (GC only).
pub fn list(nl: &mut Netlink) -> Result<Vec<Link>, PluginError> {
    let replies =
        nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default())).map_err(PluginError::netlink("list links"))?;
    Ok(links(replies).collect())
}

pub fn set(nl: &mut Netlink, msg: LinkMessage, what: &str) -> Result<(), PluginError> {
    nl.ack(RouteNetlinkMessage::SetLink(msg), 0).map_err(PluginError::netlink(what.to_string()))
}

/// The request bringing a link up, for `Netlink::ack_all`.
pub fn up_request(index: u32) -> (RouteNetlinkMessage, u16, Option<i32>) {
    (RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build()), 0, None)
}

pub fn set_up(nl: &mut Netlink, index: u32, name: &str) -> Result<(), PluginError> {
    set(nl, LinkUnspec::new_with_index(index).up().build(), &format!("set {name} up"))
}

pub fn delete(nl: &mut Netlink, index: u32, name: &str) -> Result<(), PluginError> {
    let msg = LinkUnspec::new_with_index(index).build();
    match nl.ack(RouteNetlinkMessage::DelLink(msg), 0) {
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
        r => r.map_err(PluginError::netlink(format!("delete link {name}"))),
    }
}

/// A locally administered unicast MAC derived from `seed`: stable for the
/// same seed, so nothing has to read it back or remember it.
pub fn derived_mac(seed: &str) -> Vec<u8> {
    let d = Sha256::digest(seed.as_bytes());
    vec![0x02, d[0], d[1], d[2], d[3], d[4]]
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    (bytes.len() == 6 && s.split(':').all(|p| p.len() == 2)).then_some(bytes)
}
