//! The node bridge: created once, safely when many ADDs race to create it.

use super::{Link, LinkHandle};
use crate::{sysctl, DatapathError, Result};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;

impl LinkHandle<'_> {
    /// The bridge `name`, up; created (with `mtu`) when missing. Another
    /// kind of link of that name is refused, untouched.
    pub fn ensure_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<Link> {
        if let Some(l) = self.get(name)? {
            if l.kind.as_deref() != Some("bridge") {
                let kind = l.kind.as_deref().unwrap_or("device");
                return Err(DatapathError::Invalid(format!(
                    "bridge {name:?} names an existing {kind} that is not a bridge; pick another bridge name"
                )));
            }
            // a bridge an older weavice made: learning from link-local frames off
            let msg = rtnetlink::LinkBridge::new(name).no_linklocal_learn(true).build();
            self.0.ack(RouteNetlinkMessage::NewLink(msg), 0).map_err(DatapathError::netlink(format!("set {name}")))?;
            if !l.up {
                self.set_up(l.index, name)?;
            }
            return Ok(l);
        }
        // No multicast snooping: a new pod's MLD report goes out before its
        // link-local address leaves DAD and is not learnt, so the node's neighbour
        // solicitations for the pod would reach no port for a while.
        // A MAC of its own, derived from its name: the bridge never takes a
        // port's MAC, so neighbours' caches never flap.
        // No learning from link-local frames (01:80:c2:00:00:0x, LLDP): the
        // kernel learns their source MAC without any netfilter hook, so a pod
        // could move another pod's MAC onto its own port past anti-spoofing.
        let mut msg = rtnetlink::LinkBridge::new(name)
            .mcast_snooping(false)
            .no_linklocal_learn(true)
            .address(super::derived_mac(name));
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        match self.0.ack(RouteNetlinkMessage::NewLink(msg.build()), NLM_F_CREATE | NLM_F_EXCL) {
            // another ADD created it first
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            r => r.map_err(DatapathError::netlink(format!("create bridge {name}")))?,
        }
        let l = self
            .get(name)?
            .ok_or_else(|| DatapathError::Kernel(format!("bridge {name} vanished right after creation")))?;
        // DAD off before the link-local address exists: while it is tentative
        // the node cannot solicit pods' IPv6 neighbours.
        if sysctl::ipv6_available() {
            sysctl::set_if("ipv6", name, "accept_dad", "0")?;
        }
        if !l.up {
            self.set_up(l.index, name)?;
        }
        Ok(l)
    }
}
