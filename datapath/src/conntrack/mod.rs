//! Conntrack entries over ctnetlink. Stale UDP flows to a newly mapped host
//! port would keep bypassing the new DNAT (conntrack keeps the decision it
//! made for the flow's first packet), so ADD deletes them, as the reference
//! portmap does, without starting the `conntrack` tool. A deleted
//! security-function chain's connections lose its bits from their marks.

pub mod events;

use crate::netlink::{NetfilterSocket, Request};
use crate::{DatapathError, Result};
use netlink_packet_core::Nla;
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, ProtoTuple, Protocol, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

/// Each acknowledgement is a datagram of its own, charged about 770 bytes
/// against the socket's receive buffer (212992 by default): this many stay
/// well under it.
const DELETES_PER_DATAGRAM: usize = 64;
/// The flow's conntrack zone, which netlink-packet-netfilter leaves raw.
const CTA_ZONE: u16 = 18;

fn message(family: NetfilterProtoFamily, m: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), m)
}

fn open() -> Result<NetfilterSocket> {
    NetfilterSocket::open().map_err(DatapathError::netlink("open a ctnetlink socket"))
}

/// Every entry of the table (both families, every zone): its family and
/// attributes, to `each` as the dump arrives.
fn each_entry(
    nl: &mut NetfilterSocket,
    each: &mut dyn FnMut(NetfilterProtoFamily, Vec<ConntrackAttribute>),
) -> Result<()> {
    let every_flow = message(NetfilterProtoFamily::Unspec, ConntrackMessage::Get(Vec::new()));
    nl.dump_each(every_flow, &mut |m| {
        if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner {
            each(m.header.family, attrs);
        }
    })
    .map_err(DatapathError::netlink("list conntrack entries"))
}

/// Whether an entry's original tuple is UDP to one of `ports`.
fn is_udp_to(attrs: &[ConntrackAttribute], ports: &[u16]) -> bool {
    attrs.iter().any(|a| {
        let ConntrackAttribute::CtaTupleOrig(orig) = a else { return false };
        let proto = orig.iter().find_map(|t| match t {
            Tuple::Proto(p) => Some(p),
            _ => None,
        });
        proto.is_some_and(|proto| {
            proto.contains(&ProtoTuple::Protocol(Protocol::Udp))
                && proto.iter().any(|p| matches!(p, ProtoTuple::DestinationPort(port) if ports.contains(port)))
        })
    })
}

/// An entry's key: its original tuple and zone.
fn key_of(attrs: &[ConntrackAttribute]) -> Vec<ConntrackAttribute> {
    attrs
        .iter()
        .filter(|a| match a {
            ConntrackAttribute::CtaTupleOrig(_) => true,
            ConntrackAttribute::Other(zone) => zone.kind() == CTA_ZONE,
            _ => false,
        })
        .cloned()
        .collect()
}

/// Sends, for every entry (both families, every zone), the request `change`
/// makes of it, if any; returns how many were sent. An entry gone meanwhile
/// (timed out, or another change took it) is fine.
fn change_each(change: &dyn Fn(&[ConntrackAttribute]) -> Option<ConntrackMessage>) -> Result<usize> {
    let mut nl = open()?;
    let mut requests = Vec::new();
    each_entry(&mut nl, &mut |family, attrs| {
        if let Some(c) = change(&attrs) {
            requests.push(Request::new(message(family, c), 0).tolerating(libc::ENOENT));
        }
    })?;
    let n = requests.len();
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let chunk: Vec<_> = requests.by_ref().take(DELETES_PER_DATAGRAM).collect();
        nl.batch(chunk).map_err(|e| DatapathError::netlink("change conntrack entries")(e.source))?;
    }
    Ok(n)
}

/// Deletes the UDP flows whose original destination port is one of
/// `ports`, as `conntrack -D -p udp --orig-port-dst PORT` would. Returns
/// how many were deleted.
pub fn flush_udp(ports: &[u16]) -> Result<usize> {
    if ports.is_empty() {
        return Ok(0);
    }
    change_each(&|attrs| {
        let key = key_of(attrs);
        (is_udp_to(attrs, ports) && !key.is_empty()).then_some(ConntrackMessage::Delete(key))
    })
}

/// Clears the `mask` bits of every entry whose mark under `mask` is `value`
/// (a deleted chain's connections: a chain that later gets the same number
/// does not take them). The entries stay: a DNATed connection keeps its NAT.
pub fn clear_mark_where(mask: u32, value: u32) -> Result<usize> {
    change_each(&|attrs| {
        let mark = attrs.iter().find_map(|a| match a {
            ConntrackAttribute::CtaMark(m) => Some(*m),
            _ => None,
        })?;
        let mut key = key_of(attrs);
        (mark & mask == value && value != 0 && !key.is_empty()).then(|| {
            key.push(ConntrackAttribute::CtaMark(mark & !mask));
            ConntrackMessage::New(key)
        })
    })
}
