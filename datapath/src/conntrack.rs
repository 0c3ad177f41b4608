//! Conntrack entries over ctnetlink. Stale UDP flows to a newly mapped host
//! port would keep bypassing the new DNAT (conntrack keeps the decision it
//! made for the flow's first packet), so ADD deletes them, as the reference
//! portmap does, without starting the `conntrack` tool.

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

/// The delete for a UDP flow to one of `ports`: its original tuple and zone.
fn delete_if_udp_to(m: NetfilterMessage, ports: &[u16]) -> Option<Request<NetfilterMessage>> {
    let family = m.header.family;
    let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner else { return None };
    let mut key = Vec::new();
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(ref orig) => {
                let proto = orig.iter().find_map(|t| match t {
                    Tuple::Proto(p) => Some(p),
                    _ => None,
                })?;
                let port = proto.iter().find_map(|p| match p {
                    ProtoTuple::DestinationPort(port) => Some(*port),
                    _ => None,
                })?;
                if !proto.contains(&ProtoTuple::Protocol(Protocol::Udp)) || !ports.contains(&port) {
                    return None;
                }
                key.push(a);
            }
            ConntrackAttribute::Other(ref zone) if zone.kind() == CTA_ZONE => key.push(a),
            _ => {}
        }
    }
    // gone meanwhile (timed out, or another flush took it) is fine
    key.iter()
        .any(|a| matches!(a, ConntrackAttribute::CtaTupleOrig(_)))
        .then(|| Request::new(message(family, ConntrackMessage::Delete(key)), 0).tolerating(libc::ENOENT))
}

/// Deletes the UDP flows (both families, every zone) whose original
/// destination port is one of `ports`, as `conntrack -D -p udp
/// --orig-port-dst PORT` would. Returns how many were deleted.
pub fn flush_udp(ports: &[u16]) -> Result<usize> {
    if ports.is_empty() {
        return Ok(0);
    }
    let mut nl = NetfilterSocket::open().map_err(DatapathError::netlink("open a ctnetlink socket"))?;
    let mut doomed = Vec::new();
    let every_flow = message(NetfilterProtoFamily::Unspec, ConntrackMessage::Get(Vec::new()));
    nl.dump_each(every_flow, &mut |m| doomed.extend(delete_if_udp_to(m, ports)))
        .map_err(DatapathError::netlink("list conntrack entries"))?;
    let n = doomed.len();
    let mut doomed = doomed.into_iter().peekable();
    while doomed.peek().is_some() {
        let chunk: Vec<_> = doomed.by_ref().take(DELETES_PER_DATAGRAM).collect();
        nl.batch(chunk).map_err(|e| DatapathError::netlink("delete conntrack entries")(e.source))?;
    }
    Ok(n)
}
