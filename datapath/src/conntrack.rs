//! Conntrack entries over ctnetlink. Stale UDP flows to a newly mapped host
//! port would keep bypassing the new DNAT (conntrack keeps the decision it
//! made for the flow's first packet), so ADD deletes them, as the reference
//! portmap does, without starting the `conntrack` tool; a deleted
//! security-function chain's connections go the same way.

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

/// The delete for an entry `doomed` accepts: its original tuple and zone.
fn delete_if(m: NetfilterMessage, doomed: &dyn Fn(&[ConntrackAttribute]) -> bool) -> Option<Request<NetfilterMessage>> {
    let family = m.header.family;
    let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner else { return None };
    if !doomed(&attrs) {
        return None;
    }
    let key: Vec<ConntrackAttribute> = attrs
        .into_iter()
        .filter(|a| match a {
            ConntrackAttribute::CtaTupleOrig(_) => true,
            ConntrackAttribute::Other(zone) => zone.kind() == CTA_ZONE,
            _ => false,
        })
        .collect();
    // gone meanwhile (timed out, or another flush took it) is fine
    key.iter()
        .any(|a| matches!(a, ConntrackAttribute::CtaTupleOrig(_)))
        .then(|| Request::new(message(family, ConntrackMessage::Delete(key)), 0).tolerating(libc::ENOENT))
}

/// Deletes the entries (both families, every zone) `doomed` accepts;
/// returns how many.
fn flush(doomed: &dyn Fn(&[ConntrackAttribute]) -> bool) -> Result<usize> {
    let mut nl = NetfilterSocket::open().map_err(DatapathError::netlink("open a ctnetlink socket"))?;
    let mut deletes = Vec::new();
    let every_flow = message(NetfilterProtoFamily::Unspec, ConntrackMessage::Get(Vec::new()));
    nl.dump_each(every_flow, &mut |m| deletes.extend(delete_if(m, doomed)))
        .map_err(DatapathError::netlink("list conntrack entries"))?;
    let n = deletes.len();
    let mut deletes = deletes.into_iter().peekable();
    while deletes.peek().is_some() {
        let chunk: Vec<_> = deletes.by_ref().take(DELETES_PER_DATAGRAM).collect();
        nl.batch(chunk).map_err(|e| DatapathError::netlink("delete conntrack entries")(e.source))?;
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
    flush(&|attrs| is_udp_to(attrs, ports))
}

/// Deletes the entries whose mark under `mask` is `mark` (a deleted chain's
/// connections: their next packet starts a fresh entry, which no chain that
/// later gets the same number takes for its own).
pub fn flush_mark(mark: u32, mask: u32) -> Result<usize> {
    flush(&|attrs| attrs.iter().any(|a| matches!(a, ConntrackAttribute::CtaMark(m) if m & mask == mark)))
}
