//! Conntrack entries over ctnetlink. Stale UDP flows to a newly mapped host
//! port would keep bypassing the new DNAT (conntrack keeps the decision it
//! made for the flow's first packet), so ADD deletes them, as the reference
//! portmap does, without starting the `conntrack` tool.

use crate::netlink::{NetfilterSocket, Request};
use crate::{DatapathError, Result};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, ProtoTuple, Protocol, Tuple};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

/// A delete is about 80 bytes and its acknowledgement 36.
const DELETES_PER_DATAGRAM: usize = 256;

fn message(family: NetfilterProtoFamily, m: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), m)
}

/// The original tuple of a UDP flow to one of `ports`, and its family.
fn udp_to(m: NetfilterMessage, ports: &[u16]) -> Option<(NetfilterProtoFamily, Vec<Tuple>)> {
    let family = m.header.family;
    let netlink_packet_netfilter::NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = m.inner else {
        return None;
    };
    let orig = attrs.into_iter().find_map(|a| match a {
        ConntrackAttribute::CtaTupleOrig(t) => Some(t),
        _ => None,
    })?;
    let proto = orig.iter().find_map(|t| match t {
        Tuple::Proto(p) => Some(p),
        _ => None,
    })?;
    let udp = proto.contains(&ProtoTuple::Protocol(Protocol::Udp));
    let port = proto.iter().find_map(|p| match p {
        ProtoTuple::DestinationPort(port) => Some(*port),
        _ => None,
    })?;
    (udp && ports.contains(&port)).then_some((family, orig))
}

/// Deletes the UDP flows (both families) whose original destination port
/// is one of `ports`, as `conntrack -D -p udp --orig-port-dst PORT` would.
/// Returns how many were deleted.
pub fn flush_udp(ports: &[u16]) -> Result<usize> {
    if ports.is_empty() {
        return Ok(0);
    }
    let mut nl = NetfilterSocket::open().map_err(DatapathError::netlink("open a ctnetlink socket"))?;
    let flows = nl
        .dump(message(NetfilterProtoFamily::Unspec, ConntrackMessage::Get(Vec::new())))
        .map_err(DatapathError::netlink("list conntrack entries"))?;
    let doomed: Vec<Request<NetfilterMessage>> = flows
        .into_iter()
        .filter_map(|m| udp_to(m, ports))
        .map(|(family, orig)| {
            let delete = ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig)]);
            // gone meanwhile (it timed out, or another flush took it)
            Request::new(message(family, delete), 0).tolerating(libc::ENOENT)
        })
        .collect();
    let n = doomed.len();
    let mut doomed = doomed.into_iter().peekable();
    while doomed.peek().is_some() {
        // in datagrams whose acknowledgements fit the receive buffer
        let chunk: Vec<_> = doomed.by_ref().take(DELETES_PER_DATAGRAM).collect();
        nl.batch(chunk).map_err(|e| DatapathError::netlink("delete conntrack entries")(e.source))?;
    }
    Ok(n)
}
