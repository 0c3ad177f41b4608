//! Links over rtnetlink, in the style of rtnetlink's own handles:
//! `nl.link().get("wv0")`. Kinds have their own files (bridge.rs, veth.rs).

pub mod bridge;
pub mod veth;

use crate::netlink::{Request, RouteSocket};
use crate::{DatapathError, Result};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::LinkUnspec;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    pub up: bool,
    /// The bridge (or other controller) this link is a port of.
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// `bridge`, `veth`, ...; None for a device without a kind (`lo`, a NIC).
    pub kind: Option<String>,
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
            kind: None,
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Address(mac) => l.mac = mac,
                LinkAttribute::Controller(i) => l.master = Some(i),
                LinkAttribute::Mtu(m) => l.mtu = Some(m),
                LinkAttribute::Link(i) => l.peer_index = Some(i),
                LinkAttribute::LinkInfo(infos) => {
                    l.kind = infos.into_iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(k.to_string()),
                        _ => None,
                    })
                }
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

/// `ip link` on one socket.
pub struct LinkHandle<'a>(pub(crate) &'a mut RouteSocket);

impl RouteSocket {
    pub fn link(&mut self) -> LinkHandle<'_> {
        LinkHandle(self)
    }
}

impl LinkHandle<'_> {
    /// `ip link show NAME`; None when there is no such link.
    pub fn get(&mut self, name: &str) -> Result<Option<Link>> {
        self.lookup(LinkUnspec::new_with_name(name).build(), name)
    }

    /// The link with that index, if there is one.
    pub fn get_index(&mut self, index: u32) -> Result<Option<Link>> {
        self.lookup(LinkUnspec::new_with_index(index).build(), &index.to_string())
    }

    fn lookup(&mut self, msg: LinkMessage, what: &str) -> Result<Option<Link>> {
        match self.0.get(RouteNetlinkMessage::GetLink(msg)) {
            Ok(replies) => Ok(links(replies).next()),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(DatapathError::netlink(format!("get link {what}"))(e)),
        }
    }

    /// Every link in the namespace.
    pub fn list(&mut self) -> Result<Vec<Link>> {
        let replies = self
            .0
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(DatapathError::netlink("list links"))?;
        Ok(links(replies).collect())
    }

    /// Applies `msg` (an RTM_SETLINK); `what` names it in errors.
    pub fn set(&mut self, msg: LinkMessage, what: &str) -> Result<()> {
        self.0.ack(RouteNetlinkMessage::SetLink(msg), 0).map_err(DatapathError::netlink(what.to_string()))
    }

    pub fn set_up(&mut self, index: u32, name: &str) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).up().build(), &format!("set {name} up"))
    }

    /// Deletes the link of that name, if there is one.
    pub fn delete_named(&mut self, name: &str) -> Result<()> {
        match self.get(name)? {
            Some(l) => self.delete(l.index, name),
            None => Ok(()),
        }
    }

    /// Deletes the link; one already gone is not an error.
    pub fn delete(&mut self, index: u32, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).build();
        match self.0.ack(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(DatapathError::netlink(format!("delete link {name}"))),
        }
    }
}

/// The request bringing a link up, for [`RouteSocket::batch`](crate::netlink::Socket::batch).
pub fn up_request(index: u32) -> Request<RouteNetlinkMessage> {
    Request::new(RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build()), 0)
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
