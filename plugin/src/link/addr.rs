//! Interface addresses. IPv6 addresses are added with NODAD: duplicate
//! address detection would make ADD wait about two seconds (plugins#680).

use super::Handle;
use crate::error::{errno, PluginError};
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};

/// Adds `addr`; with `shared`, an existing identical address is fine (the
/// bridge gateway, added by whichever ADD comes first).
pub async fn add(h: &Handle, index: u32, addr: IpNet, shared: bool) -> Result<(), PluginError> {
    let mut req = h.address().add(index, addr.addr(), addr.prefix_len());
    if addr.addr().is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Err(e) if shared && errno(&e) == Some(libc::EEXIST) => Ok(()),
        r => r.map_err(PluginError::netlink(format!("add address {addr}"))),
    }
}

/// Addresses on the interface, with their prefix lengths.
pub async fn list(h: &Handle, index: u32) -> Result<Vec<IpNet>, PluginError> {
    let mut out = Vec::new();
    let mut s = h.address().get().set_link_index_filter(index).execute();
    while let Some(m) = s
        .try_next()
        .await
        .map_err(PluginError::netlink("list addresses"))?
    {
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                if let Ok(net) = IpNet::new(*ip, m.header.prefix_len) {
                    out.push(net);
                }
            }
        }
    }
    Ok(out)
}
