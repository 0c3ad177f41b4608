//! Links, addresses and routes over rtnetlink, one file per object, in the
//! style of rtnetlink's own handles. A `Handle` is bound to the namespace its
//! socket was opened in (see `connect`).

pub mod addr;
pub mod bridge;
pub mod route;
pub mod veth;

use crate::error::{errno, PluginError};
use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
pub use rtnetlink::Handle;

/// Opens a netlink socket in the namespace the thread is in now; it stays
/// bound there. Must be called inside the tokio runtime.
pub fn connect() -> Result<Handle, PluginError> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(PluginError::io("open netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
}

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    pub up: bool,
    pub master: Option<u32>,
    pub mtu: Option<u32>,
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
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Address(mac) => l.mac = mac,
                LinkAttribute::Controller(i) => l.master = Some(i),
                LinkAttribute::Mtu(m) => l.mtu = Some(m),
                _ => {}
            }
        }
        l
    }
}

pub async fn get(h: &Handle, name: &str) -> Result<Option<Link>, PluginError> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
    {
        Ok(m) => Ok(m.map(Link::from)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(PluginError::netlink(format!("get link {name}"))(e)),
    }
}

pub async fn set_up(h: &Handle, index: u32, name: &str) -> Result<(), PluginError> {
    h.link()
        .set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(PluginError::netlink(format!("set {name} up")))
}

pub async fn delete(h: &Handle, index: u32, name: &str) -> Result<(), PluginError> {
    match h.link().del(index).execute().await {
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        r => r.map_err(PluginError::netlink(format!("delete link {name}"))),
    }
}

pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    (bytes.len() == 6 && s.split(':').all(|p| p.len() == 2)).then_some(bytes)
}
