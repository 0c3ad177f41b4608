//! Conntrack's announcements over ctnetlink: a connection made (NEW), its
//! state changed (UPDATE) or ended (DESTROY), and a listing of the table,
//! decoded into [`Flow`]s. netlink-packet-netfilter decodes the tuples,
//! status and TCP state; the counters, CTA_ID and timestamps it leaves raw
//! are decoded here. The socket's own drop counter (`/proc/net/netlink`)
//! says exactly how many announcements the kernel could not deliver.

use crate::netlink::NetfilterSocket;
use crate::{sysctl, DatapathError, Result};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, Nla, NlasIterator, NLM_F_CREATE};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

const NFNLGRP_CONNTRACK_NEW: u32 = 1;
const NFNLGRP_CONNTRACK_UPDATE: u32 = 2;
const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;

const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
const CTA_TIMESTAMP: u16 = 20;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_TIMESTAMP_START: u16 = 1;
const CTA_TIMESTAMP_STOP: u16 = 2;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
/// Attribute kinds carry the nested and byte-order flags in their top bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One direction of a connection as conntrack keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tuple5 {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub protocol: u8,
    /// Ports for TCP, UDP, SCTP; 0 otherwise.
    pub sport: u16,
    pub dport: u16,
    /// Type and code for ICMP and ICMPv6.
    pub icmp: Option<(u8, u8)>,
}

/// Packets and bytes one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A connection as one announcement or listing entry describes it; what it
/// leaves out is `None` (counters and times come with `nf_conntrack_acct`
/// and `nf_conntrack_timestamp` on, at DESTROY and in listings).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flow {
    /// Conntrack's id of the entry: with `start`, the connection's identity.
    pub id: u32,
    pub original: Tuple5,
    pub reply: Tuple5,
    pub tcp_state: Option<u8>,
    pub counters: Option<(Counters, Counters)>,
    /// Nanoseconds since the epoch.
    pub start: Option<u64>,
    pub stop: Option<u64>,
    pub mark: u32,
}

/// The announcements a record needs. Of conntrack's UPDATEs only a TCP
/// connection reaching TIME_WAIT or CLOSE is passed on (its entry stays two
/// minutes more): the others are told apart from the raw message, without
/// decoding it, and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    New,
    Closed,
    Destroy,
}

/// Datagrams taken per system call, and the room for each (an announcement
/// is a few hundred bytes).
const BATCH: usize = 64;
const SLOT: usize = 4096;
/// Entry requests per datagram: their answers must fit the default receive
/// buffer (about 1 KiB each of its 208 KiB).
const GETS_PER_DATAGRAM: usize = 64;
/// ctnetlink message types (subsystem 1 in the high byte).
const CT_NEW: u16 = 1 << 8;
const CT_DELETE: u16 = (1 << 8) | 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
/// nlmsghdr and nfgenmsg, before the attributes.
const HEADERS: usize = 16 + 4;

/// What one wait for announcements ended with.
pub enum Received {
    /// The flows of the datagrams that were there; `more` when they filled
    /// a whole batch (more are likely waiting).
    Flows { flows: Vec<(Event, Flow)>, more: bool },
    /// Nothing came within the wait.
    Idle,
    /// The kernel dropped announcements (ENOBUFS): the drop counter says how
    /// many; a listing finds what is still open.
    Overrun,
}

/// A subscription to every conntrack announcement of the calling thread's
/// namespace.
pub struct Events {
    sock: NetfilterSocket,
    inode: u64,
    /// [`BATCH`] slots of [`SLOT`] bytes.
    buf: Vec<u8>,
    /// For questions about one entry (its counters at a TCP close).
    query: NetfilterSocket,
}

impl Events {
    /// Subscribes with a receive buffer of `rcvbuf` bytes (forced past
    /// rmem_max: bursts of DESTROYs outrun any reader with the default), and
    /// waits of at most `wait` in [`recv`](Self::recv).
    pub fn subscribe(rcvbuf: usize, wait: Duration) -> Result<Events> {
        let fail = DatapathError::netlink("subscribe to conntrack events");
        let mut sock = NetfilterSocket::open().map_err(fail)?;
        let fd = sock.as_raw_fd();
        let size = libc::c_int::try_from(rcvbuf).unwrap_or(libc::c_int::MAX);
        let tv = libc::timeval { tv_sec: wait.as_secs() as libc::time_t, tv_usec: wait.subsec_micros() as _ };
        // SAFETY: plain setsockopt calls with values owned by this frame.
        unsafe {
            setsockopt(fd, libc::SO_RCVBUFFORCE, &size)?;
            setsockopt(fd, libc::SO_RCVTIMEO, &tv)?;
        }
        for group in [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY] {
            sock.subscribe(group).map_err(DatapathError::netlink("subscribe to conntrack events"))?;
        }
        // SAFETY: fstat into a zeroed stat owned by this frame.
        let inode = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return Err(DatapathError::netlink("subscribe to conntrack events")(io::Error::last_os_error().into()));
            }
            st.st_ino
        };
        let query = super::open()?;
        let answer_within = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: as above; an answer that never comes is an error, not a hang
        unsafe { setsockopt(query.as_raw_fd(), libc::SO_RCVTIMEO, &answer_within)? };
        Ok(Events { sock, inode, buf: vec![0; BATCH * SLOT], query })
    }

    /// The announcements that came, up to [`BATCH`] datagrams per system
    /// call (a busy node sends tens of thousands a second).
    pub fn recv(&mut self) -> Result<Received> {
        let fd = self.sock.as_raw_fd();
        let base = self.buf.as_mut_ptr();
        let mut iovecs: Vec<libc::iovec> = (0..BATCH)
            // SAFETY: each slot lies within `buf`, which outlives the call.
            .map(|i| libc::iovec { iov_base: unsafe { base.add(i * SLOT) }.cast(), iov_len: SLOT })
            .collect();
        // SAFETY: zeroed mmsghdr is valid (null name, no control data).
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: BATCH headers, each with one iovec into `buf`; the first
        // datagram waits (SO_RCVTIMEO), the rest are taken if already there.
        let n = unsafe {
            libc::recvmmsg(fd, headers.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(Received::Idle),
                Some(libc::ENOBUFS) => Ok(Received::Overrun),
                _ => Err(DatapathError::netlink("receive conntrack events")(e.into())),
            };
        }
        let mut flows = Vec::new();
        for (i, h) in headers.iter().take(n as usize).enumerate() {
            let len = (h.msg_len as usize).min(SLOT);
            for (ty, flags, message) in messages(&self.buf[i * SLOT..i * SLOT + len]) {
                let event = match (ty, flags & NLM_F_CREATE != 0) {
                    (CT_NEW, true) => Event::New,
                    (CT_NEW, false) if peek_tcp_state(message).is_some_and(tcp_closed) => Event::Closed,
                    // every other change: nothing a record needs
                    (CT_NEW, false) => continue,
                    (CT_DELETE, _) => Event::Destroy,
                    _ => continue,
                };
                match NetlinkMessage::<NetfilterMessage>::deserialize(message) {
                    Ok(m) => {
                        if let NetlinkPayload::InnerMessage(NetfilterMessage {
                            inner:
                                NetfilterMessageInner::Conntrack(ConntrackMessage::New(a) | ConntrackMessage::Delete(a)),
                            ..
                        }) = m.payload
                        {
                            flows.push((event, decode(&a)));
                        }
                    }
                    // one undecodable announcement is not the end of the subscription
                    Err(e) => log::warn!("conntrack event not decoded: {e}"),
                }
            }
        }
        Ok(Received::Flows { flows, more: n as usize == BATCH })
    }

    /// The entries of `flows` as the table holds them now (with their
    /// counters), found by their original tuples; `None` for one gone.
    pub fn get(&mut self, flows: &[Flow]) -> Vec<Option<Flow>> {
        let mut found = Vec::with_capacity(flows.len());
        for chunk in flows.chunks(GETS_PER_DATAGRAM) {
            let requests: Vec<NetfilterMessage> = chunk.iter().map(get_request).collect();
            match self.query.get_each(requests) {
                Ok(answers) => found.extend(answers.into_iter().map(|a| {
                    a.and_then(|m| match m.inner {
                        NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) => Some(decode(&attrs)),
                        _ => None,
                    })
                })),
                Err(e) => {
                    log::warn!("conntrack entries not read: {e}");
                    found.extend(chunk.iter().map(|_| None));
                }
            }
        }
        found
    }

    /// Announcements the kernel dropped for this socket so far (its Drops
    /// column in `/proc/net/netlink`).
    pub fn drops(&self) -> Option<u64> {
        let table = std::fs::read_to_string("/proc/net/netlink").ok()?;
        drops_of(&table, self.inode)
    }
}

/// A request for the entry with `flow`'s original tuple.
fn get_request(flow: &Flow) -> NetfilterMessage {
    let o = &flow.original;
    let mut ips = Vec::new();
    ips.extend(o.src.map(IPTuple::SourceAddress));
    ips.extend(o.dst.map(IPTuple::DestinationAddress));
    let family =
        if o.src.is_some_and(|a| a.is_ipv6()) { NetfilterProtoFamily::IPv6 } else { NetfilterProtoFamily::IPv4 };
    let key = ConntrackAttribute::CtaTupleOrig(vec![
        Tuple::Ip(ips),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(o.protocol.into()),
            ProtoTuple::SourcePort(o.sport),
            ProtoTuple::DestinationPort(o.dport),
        ]),
    ]);
    NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), ConntrackMessage::Get(vec![key]))
}

/// # Safety
/// `fd` must be a socket.
unsafe fn setsockopt<T>(fd: i32, option: libc::c_int, value: &T) -> Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    if libc::setsockopt(fd, libc::SOL_SOCKET, option, (value as *const T).cast(), len) != 0 {
        return Err(DatapathError::netlink("set up the conntrack event socket")(io::Error::last_os_error().into()));
    }
    Ok(())
}

/// The Drops column of the socket with inode `inode` in a
/// `/proc/net/netlink` table.
fn drops_of(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(9)?.parse::<u64>().ok()? == inode).then(|| cols.get(8)?.parse().ok())?
    })
}

/// Every entry of the table (both families), to `each`.
pub fn list(each: &mut dyn FnMut(Flow)) -> Result<()> {
    super::each_entry(&mut super::open()?, &mut |_, attrs| each(decode(&attrs)))
}

/// Turns on per-connection counters and start/stop times in the calling
/// thread's namespace (both off by default); they apply to connections
/// made from then on.
pub fn enable_accounting() -> Result<()> {
    sysctl::set("net.netfilter.nf_conntrack_acct", "1")?;
    sysctl::set("net.netfilter.nf_conntrack_timestamp", "1")
}

/// The netlink messages of a datagram: (type, flags, the whole message);
/// a broken one ends the datagram.
fn messages(datagram: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    crate::netlink::messages(datagram)
        .map_while(Result::ok)
        .map(|m| (u16::from_ne_bytes([m[4], m[5]]), u16::from_ne_bytes([m[6], m[7]]), m))
}

/// The attribute `kind` among the attributes in `attrs`.
fn attribute(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let this = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        let value = attrs.get(4..len.max(4))?;
        if this == kind {
            return Some(value);
        }
        attrs = attrs.get(len.div_ceil(4) * 4..)?;
    }
    None
}

/// The TCP state an announcement carries, read from the raw message.
fn peek_tcp_state(message: &[u8]) -> Option<u8> {
    let info = attribute(message.get(HEADERS..)?, CTA_PROTOINFO)?;
    let tcp = attribute(info, CTA_PROTOINFO_TCP)?;
    attribute(tcp, CTA_PROTOINFO_TCP_STATE)?.first().copied()
}

fn raw(nla: &impl Nla) -> Vec<u8> {
    let mut v = vec![0; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// (kind, value) of each attribute nested in `value`.
fn nested(value: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    NlasIterator::new(value).flatten().filter_map(|n| {
        let (kind, len) = (n.kind() & NLA_TYPE_MASK, usize::from(n.length()));
        Some((kind, n.into_inner().get(4..len)?))
    })
}

fn tuple(parts: &[Tuple]) -> Tuple5 {
    let mut t = Tuple5::default();
    for part in parts {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => t.src = Some(*a),
                        IPTuple::DestinationAddress(a) => t.dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(protos) => {
                let mut icmp = (None, None);
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(p) => t.protocol = u8::from(*p),
                        ProtoTuple::SourcePort(port) => t.sport = *port,
                        ProtoTuple::DestinationPort(port) => t.dport = *port,
                        ProtoTuple::Other(nla) => {
                            let v = raw(nla).first().copied();
                            match nla.kind() & NLA_TYPE_MASK {
                                CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => icmp.0 = v,
                                CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => icmp.1 = v,
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
                if let (Some(ty), code) = icmp {
                    t.icmp = Some((ty, code.unwrap_or(0)));
                }
            }
            _ => {}
        }
    }
    t
}

fn counters(value: &[u8]) -> Counters {
    let mut c = Counters::default();
    for (kind, v) in nested(value) {
        match kind {
            CTA_COUNTERS_PACKETS => c.packets = be_u64(v).unwrap_or(0),
            CTA_COUNTERS_BYTES => c.bytes = be_u64(v).unwrap_or(0),
            _ => {}
        }
    }
    c
}

/// A flow from an entry's attributes.
pub fn decode(attrs: &[ConntrackAttribute]) -> Flow {
    let mut f = Flow::default();
    let (mut orig_counters, mut reply_counters) = (None, None);
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => f.original = tuple(t),
            ConntrackAttribute::CtaTupleReply(t) => f.reply = tuple(t),
            ConntrackAttribute::CtaMark(m) => f.mark = *m,
            ConntrackAttribute::CtaProtoInfo(infos) => {
                for info in infos {
                    if let ProtoInfo::TCP(tcp) = info {
                        f.tcp_state = tcp.iter().find_map(|t| match t {
                            ProtoInfoTCP::State(s) => Some(*s),
                            _ => None,
                        });
                    }
                }
            }
            ConntrackAttribute::Other(nla) => {
                let value = raw(nla);
                match nla.kind() & NLA_TYPE_MASK {
                    CTA_ID => f.id = value.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                    CTA_COUNTERS_ORIG => orig_counters = Some(counters(&value)),
                    CTA_COUNTERS_REPLY => reply_counters = Some(counters(&value)),
                    CTA_TIMESTAMP => {
                        for (kind, v) in nested(&value) {
                            match kind {
                                CTA_TIMESTAMP_START => f.start = be_u64(v),
                                CTA_TIMESTAMP_STOP => f.stop = be_u64(v),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if orig_counters.is_some() || reply_counters.is_some() {
        f.counters = Some((orig_counters.unwrap_or_default(), reply_counters.unwrap_or_default()));
    }
    f
}

/// TCP states in which conntrack holds a connection that has ended
/// (TIME_WAIT, CLOSE): its entry stays for minutes more.
pub fn tcp_closed(state: u8) -> bool {
    matches!(state, 7 | 8)
}

/// Conntrack's name of a TCP state (`conntrack -L` prints these).
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "SYN_SENT",
        2 => "SYN_RECV",
        3 => "ESTABLISHED",
        4 => "FIN_WAIT",
        5 => "CLOSE_WAIT",
        6 => "LAST_ACK",
        7 => "TIME_WAIT",
        8 => "CLOSE",
        9 => "SYN_SENT2",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_state_is_read_from_the_raw_message() {
        // nlmsghdr, nfgenmsg, then CTA_ID and CTA_PROTOINFO { TCP { STATE 7 } }
        let mut m = vec![0u8; HEADERS];
        m.extend_from_slice(&[8, 0, 12, 0, 0, 0, 0, 1]);
        m.extend_from_slice(&[16, 0, 4, 0x80, 12, 0, 1, 0x80, 5, 0, 1, 0, 7, 0, 0, 0]);
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(peek_tcp_state(&m), Some(7));
        let got: Vec<_> = messages(&m).map(|(_, _, msg)| msg.len()).collect();
        assert_eq!(got, vec![m.len()]);
        assert_eq!(peek_tcp_state(&m[..HEADERS + 8]), None, "no protoinfo");
    }

    #[test]
    fn drops_are_read_from_the_sockets_line() {
        let table = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n\
            00000000c0ffee00 0   4195       00000000 0        0        0     2        0        12345\n\
            00000000c0ffee01 12  4196       00000007 0        0        0     2        5319     67890\n";
        assert_eq!(drops_of(table, 67890), Some(5319));
        assert_eq!(drops_of(table, 12345), Some(0));
        assert_eq!(drops_of(table, 1), None);
    }

    #[test]
    fn counters_ids_and_times_are_decoded_from_raw_attributes() {
        use netlink_packet_core::DefaultNla;
        let nest = |items: &[(u16, u64)]| -> Vec<u8> {
            let mut out = Vec::new();
            for (kind, v) in items {
                out.extend_from_slice(&12u16.to_ne_bytes());
                out.extend_from_slice(&kind.to_ne_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            out
        };
        let attrs = vec![
            ConntrackAttribute::Other(DefaultNla::new(CTA_ID, 0xdead_beefu32.to_be_bytes().to_vec())),
            ConntrackAttribute::Other(DefaultNla::new(CTA_COUNTERS_ORIG | 0x8000, nest(&[(1, 14), (2, 1200)]))),
            ConntrackAttribute::Other(DefaultNla::new(CTA_COUNTERS_REPLY | 0x8000, nest(&[(1, 12), (2, 3400)]))),
            ConntrackAttribute::Other(DefaultNla::new(CTA_TIMESTAMP | 0x8000, nest(&[(1, 100), (2, 250)]))),
        ];
        let f = decode(&attrs);
        assert_eq!(f.id, 0xdead_beef);
        assert_eq!(f.counters, Some((Counters { packets: 14, bytes: 1200 }, Counters { packets: 12, bytes: 3400 })));
        assert_eq!((f.start, f.stop), (Some(100), Some(250)));
    }
}
