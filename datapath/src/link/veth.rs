//! The pod's veth pair: created in one request with the peer already in the
//! pod's namespace, the host side attached to the bridge and up.

use super::{Link, LinkHandle};
use crate::{sysctl, DatapathError, Result};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkBridgePort, LinkUnspec, LinkVeth};
use sha2::{Digest, Sha256};

/// Prefix of routed-mode host veths, which the bridge filter keeps from
/// talking to each other at L2 (firewall/nftables/isolation.rs); bridged ones differ.
pub const ROUTED_PREFIX: &str = "wv";
const BRIDGED_PREFIX: &str = "wb";
/// Prefix of a host veth whose deletion was handed to a background process.
pub const TOMBSTONE_PREFIX: &str = "wx";

/// Host-side name from (network, container ID, ifname): 14 characters.
pub fn host_name(network: &str, container_id: &str, ifname: &str, routed: bool) -> String {
    let d = Sha256::digest(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", if routed { ROUTED_PREFIX } else { BRIDGED_PREFIX })
}

/// The pod side's MAC when the runtime asks for none: stable per attachment,
/// locally administered, unicast. Choosing it saves reading it back.
pub fn pod_mac(network: &str, container_id: &str, ifname: &str) -> Vec<u8> {
    super::derived_mac(&format!("mac\0{network}\0{container_id}\0{ifname}"))
}

/// Host veth names are a prefix and 12 hex digits.
const NAME_LEN: usize = 14;

pub fn tombstone_name(host: &str) -> String {
    format!("{TOMBSTONE_PREFIX}{}", host.get(TOMBSTONE_PREFIX.len()..).unwrap_or(host))
}

/// Whether `name` is a retired host veth whose deletion did not finish.
pub fn is_tombstone(name: &str) -> bool {
    name.len() == NAME_LEN
        && name.strip_prefix(TOMBSTONE_PREFIX).is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A veth pair whose peer is created straight in another namespace.
pub struct VethSpec<'a> {
    pub host: &'a str,
    pub peer: &'a str,
    pub peer_netns_fd: i32,
    pub bridge_index: u32,
    pub mtu: Option<u32>,
    pub peer_mac: Vec<u8>,
}

impl LinkHandle<'_> {
    /// Creates the pair and returns the host side.
    pub fn create_veth(&mut self, s: &VethSpec<'_>) -> Result<Link> {
        // The peer cannot be created up in another namespace (veth_open finds no
        // peer yet: ENOTCONN); the caller sets it up from inside the pod.
        let mut peer = LinkUnspec::new_with_name(s.peer).setns_by_fd(s.peer_netns_fd);
        // Created down: the caller turns IPv6 off on the port first (see attach).
        let mut host = LinkVeth::new(s.host, s.peer).controller(s.bridge_index);
        if let Some(mtu) = s.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        peer = peer.address(s.peer_mac.clone());
        // One queue each way: the kernel makes a sysfs object per queue, and a
        // veth gains nothing from more.
        let peer = peer
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1));
        let host = host
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1));
        let msg = host.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build()))).build();
        let echoed = self.0.create(RouteNetlinkMessage::NewLink(msg)).map_err(|e| match e.errno() {
            Some(libc::EEXIST) => DatapathError::Kernel(format!(
                "host interface {} already exists: this attachment was added before; DEL it first",
                s.host
            )),
            _ => DatapathError::netlink(format!("create veth {} <-> {}", s.host, s.peer))(e),
        })?;
        let made = echoed.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from(l)).filter(|l| l.name == s.host),
            _ => None,
        });
        match made {
            Some(l) => Ok(l),
            None => {
                self.get(s.host)?.ok_or_else(|| DatapathError::Kernel(format!("{} vanished after creation", s.host)))
            }
        }
    }

    /// Brings the host side up as a bridge port, hairpin on or off (network::hairpin).
    /// IPv6 goes off on the port before it comes up: a port needs no link-local
    /// address, and each one would cost a DAD run and an fe80::/64 route that
    /// every later ADD's route insertion walks.
    pub fn attach_port(&mut self, port: &Link, hairpin: bool) -> Result<()> {
        if sysctl::ipv6_available() {
            sysctl::write_if("ipv6", &port.name, "disable_ipv6", "1")?;
        }
        let mut msg = LinkBridgePort::new(port.index);
        if hairpin {
            msg = msg.hairpin(true);
        }
        // one RTM_NEWLINK without create flags: port options and IFF_UP together
        self.0
            .ack(RouteNetlinkMessage::NewLink(msg.up().build()), 0)
            .map_err(DatapathError::netlink(format!("attach {}", port.name)))
    }

    /// Turns hairpin on for a bridge port another plugin made (chained mode:
    /// a pod reaching its own hostPort comes back through its own port).
    pub fn set_hairpin(&mut self, port: &Link) -> Result<()> {
        let msg = LinkBridgePort::new(port.index).hairpin(true).build();
        self.0
            .ack(RouteNetlinkMessage::NewLink(msg), 0)
            .map_err(DatapathError::netlink(format!("hairpin on {}", port.name)))
    }

    /// Detaches the host veth and renames it out of the attachment's way, so the
    /// slow kernel deletion (RCU grace periods) can finish after DEL returns.
    /// Returns the link to delete, or None when the rename could not be done and
    /// the caller should delete synchronously.
    pub fn retire(&mut self, link: &Link) -> Result<Option<Link>> {
        let down = LinkUnspec::new_with_index(link.index).down().nocontroller().build();
        self.set(down, &format!("detach {}", link.name))?;
        let tomb = tombstone_name(&link.name);
        let rename = LinkUnspec::new_with_index(link.index).name(tomb.clone()).build();
        match self.0.ack(RouteNetlinkMessage::SetLink(rename), 0) {
            Ok(()) => Ok(Some(Link { name: tomb, ..link.clone() })),
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(None),
            Err(e) => Err(DatapathError::netlink(format!("rename {}", link.name))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ_per_attachment() {
        let a = host_name("net", "c1", "eth0", true);
        assert_eq!(a.len(), NAME_LEN);
        assert!(a.starts_with(ROUTED_PREFIX) && !host_name("net", "c1", "eth0", false).starts_with(ROUTED_PREFIX));
        assert_ne!(a, host_name("net", "c1", "eth1", true));
        assert_ne!(a, host_name("net2", "c1", "eth0", true));
        assert_eq!(a, host_name("net", "c1", "eth0", true));
        assert!(tombstone_name(&a).starts_with(TOMBSTONE_PREFIX));
        assert!(is_tombstone(&tombstone_name(&a)) && !is_tombstone(&a) && !is_tombstone("wxlan0"));
        let mac = pod_mac("net", "c1", "eth0");
        assert_eq!(mac[0] & 0b11, 0b10, "locally administered unicast");
        assert_ne!(mac, pod_mac("net", "c2", "eth0"));
    }
}
