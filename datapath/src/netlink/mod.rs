//! One synchronous netlink transport for every family weavice speaks (route,
//! netfilter, sock_diag): one sendto and one or two recvfroms per
//! request. The kernel does the work inside sendto, so an async runtime buys
//! nothing here but syscalls; rust-netlink's crates build and parse the
//! messages. A socket is bound to the namespace of the thread that opened it
//! and can be used from any thread afterwards.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_netfilter::NetfilterMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE, NETLINK_SOCK_DIAG};
use netlink_sys::SocketAddr;
use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};

/// A netlink protocol family and the messages it carries.
pub trait Family {
    const PROTOCOL: isize;
    type Message: NetlinkSerializable + NetlinkDeserializable + Debug;
}

/// rtnetlink: links, addresses, routes, rules.
pub enum Route {}

impl Family for Route {
    const PROTOCOL: isize = NETLINK_ROUTE;
    type Message = RouteNetlinkMessage;
}

/// nfnetlink: nf_tables and conntrack.
pub enum Netfilter {}

impl Family for Netfilter {
    const PROTOCOL: isize = NETLINK_NETFILTER;
    type Message = NetfilterMessage;
}

/// sock_diag: the sockets of a namespace.
pub enum SockDiag {}

impl Family for SockDiag {
    const PROTOCOL: isize = NETLINK_SOCK_DIAG;
    type Message = SockDiagMessage;
}

pub type RouteSocket = Socket<Route>;
pub type NetfilterSocket = Socket<Netfilter>;
pub type SockDiagSocket = Socket<SockDiag>;

#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// The kernel refused the request (its errno).
    #[error("{0}")]
    Kernel(io::Error),
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable netlink reply: {0}")]
    Decode(String),
}

impl NlError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

/// One request of a batch ([`Socket::batch`]).
#[derive(Debug)]
pub struct Request<M> {
    pub message: M,
    /// Flags beyond NLM_F_REQUEST (and NLM_F_ACK when `ack`).
    pub flags: u16,
    /// Whether the kernel acknowledges it; nfnetlink's batch delimiters are not.
    pub ack: bool,
    /// An errno that counts as success (EEXIST for "already there").
    pub tolerate: Option<i32>,
}

impl<M> Request<M> {
    pub fn new(message: M, flags: u16) -> Self {
        Request { message, flags, ack: true, tolerate: None }
    }

    pub fn tolerating(mut self, errno: i32) -> Self {
        self.tolerate = Some(errno);
        self
    }

    pub fn unacknowledged(message: M) -> Self {
        Request { message, flags: 0, ack: false, tolerate: None }
    }

    /// Answered only when it fails (most requests of a large batch: an
    /// acknowledgement is a datagram of its own, and hundreds of them
    /// overflow the receive buffer).
    pub fn quiet(mut self) -> Self {
        self.ack = false;
        self
    }
}

/// Why a batch failed, and which request the kernel refused (None: the
/// socket failed, not a request).
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct BatchError {
    pub index: Option<usize>,
    pub source: NlError,
}

/// Receive capacity: larger than any datagram the kernel sends (dumps included).
const RECV_CAPACITY: usize = 64 * 1024;

pub struct Socket<F: Family> {
    sock: netlink_sys::Socket,
    seq: u32,
    buf: Vec<u8>,
    family: PhantomData<F>,
}

impl<F: Family> Socket<F> {
    /// Opens a socket in the namespace the calling thread is in now.
    pub fn open() -> Result<Self, NlError> {
        let mut sock = netlink_sys::Socket::new(F::PROTOCOL)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Socket { sock, seq: 0, buf: Vec::with_capacity(RECV_CAPACITY), family: PhantomData })
    }

    /// A request answered by an acknowledgement (create, set, delete).
    pub fn ack(&mut self, msg: F::Message, flags: u16) -> Result<(), NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags).map(drop)
    }

    /// An exclusive create; the kernel echoes what it made (since Linux 6.3),
    /// which saves a lookup afterwards.
    pub fn create(&mut self, msg: F::Message) -> Result<Vec<F::Message>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO)
    }

    /// A request answered by messages and an acknowledgement (get by name).
    pub fn get(&mut self, msg: F::Message) -> Result<Vec<F::Message>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK)
    }

    pub fn dump(&mut self, msg: F::Message) -> Result<Vec<F::Message>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP)
    }

    /// Several requests in one datagram: the kernel runs them in order, so
    /// later ones may depend on earlier ones (a route on an address), and the
    /// round trips of all but one are saved. nfnetlink makes the batch one
    /// transaction when it is framed by its batch delimiters. Returns the
    /// first failure; `tolerate`d errnos count as success.
    pub fn batch(&mut self, reqs: Vec<Request<F::Message>>) -> Result<(), BatchError> {
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        let mut expected = Vec::with_capacity(reqs.len());
        for r in reqs {
            let flags = NLM_F_REQUEST | r.flags | if r.ack { NLM_F_ACK } else { 0 };
            self.seq = self.seq.wrapping_add(1);
            self.serialize_into(&mut out, r.message, flags);
            expected.push((r.ack, r.tolerate));
        }
        let fail = |index, source| BatchError { index, source };
        self.sock.send(&out, 0).map_err(|e| fail(None, e.into()))?;
        let mut pending = expected.iter().filter(|(ack, _)| *ack).count();
        while pending > 0 {
            let len = self.recv().map_err(|e| fail(None, e.into()))?;
            for frame in parse::<F::Message>(&self.buf[..len]).map_err(|e| fail(None, e))? {
                let index = frame.seq.wrapping_sub(first) as usize;
                let (Ok(NetlinkPayload::Error(e)), Some(&(ack, tolerate))) = (frame.payload, expected.get(index))
                else {
                    continue;
                };
                // a request without an ack is answered only when it fails
                // (nfnetlink refuses a whole batch at its first delimiter)
                let errno = e.raw_code().abs();
                if errno != 0 && tolerate != Some(errno) {
                    return Err(fail(Some(index), NlError::Kernel(io::Error::from_raw_os_error(errno))));
                }
                if ack {
                    pending -= 1;
                }
            }
        }
        Ok(())
    }

    /// Several get requests in one datagram; each one's answer by position,
    /// `None` where the kernel has no such object (or refused). Kept to
    /// what the receive buffer holds at once: a few dozen.
    pub fn get_each(&mut self, msgs: Vec<F::Message>) -> Result<Vec<Option<F::Message>>, NlError> {
        let first = self.seq.wrapping_add(1);
        let n = msgs.len();
        let mut out = Vec::new();
        for m in msgs {
            self.seq = self.seq.wrapping_add(1);
            // no ack: a found object is answered by itself, a missing one by an error
            self.serialize_into(&mut out, m, NLM_F_REQUEST);
        }
        self.sock.send(&out, 0)?;
        let mut answers: Vec<Option<F::Message>> = (0..n).map(|_| None).collect();
        let mut pending = n;
        while pending > 0 {
            let len = self.recv()?;
            for frame in parse::<F::Message>(&self.buf[..len])? {
                let i = frame.seq.wrapping_sub(first) as usize;
                match frame.payload {
                    Ok(NetlinkPayload::InnerMessage(m)) if i < n => answers[i] = Some(m),
                    Ok(NetlinkPayload::Error(_)) if i < n => {}
                    _ => continue,
                }
                pending -= 1;
            }
        }
        Ok(answers)
    }

    /// Joins a multicast group, to receive what the kernel announces there.
    pub fn subscribe(&mut self, group: u32) -> Result<(), NlError> {
        Ok(self.sock.add_membership(group)?)
    }

    /// The messages of the next datagram; those the crates cannot decode are skipped.
    pub fn recv_messages(&mut self) -> Result<Vec<F::Message>, NlError> {
        let len = self.recv()?;
        Ok(parse::<F::Message>(&self.buf[..len])?
            .into_iter()
            .filter_map(|f| match f.payload {
                Ok(NetlinkPayload::InnerMessage(m)) => Some(m),
                _ => None,
            })
            .collect())
    }

    /// The socket itself, for a caller that must choose when it is closed
    /// (see [`Lingering`](crate::lingering::Lingering)).
    pub fn into_inner(self) -> netlink_sys::Socket {
        self.sock
    }

    fn serialize_into(&self, out: &mut Vec<u8>, msg: F::Message, flags: u16) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let start = out.len();
        out.resize(start + req.buffer_len(), 0);
        req.serialize(&mut out[start..]);
    }

    /// One datagram into `buf`. Received into spare capacity, never zeroed
    /// first: zeroing 64 KiB cost 16 page faults per socket, ~50 µs here.
    fn recv(&mut self) -> io::Result<usize> {
        self.buf.clear();
        self.sock.recv(&mut self.buf, 0)
    }

    fn exchange(&mut self, msg: F::Message, flags: u16) -> Result<Vec<F::Message>, NlError> {
        let mut replies = Vec::new();
        self.exchange_each(msg, flags, &mut |m| replies.push(m))?;
        Ok(replies)
    }

    /// A dump whose replies go to `each` as they arrive, so a large table
    /// (conntrack) is never held whole.
    pub fn dump_each(&mut self, msg: F::Message, each: &mut dyn FnMut(F::Message)) -> Result<(), NlError> {
        self.exchange_each(msg, NLM_F_REQUEST | NLM_F_DUMP, each)
    }

    fn exchange_each(&mut self, msg: F::Message, flags: u16, each: &mut dyn FnMut(F::Message)) -> Result<(), NlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        self.serialize_into(&mut out, msg, flags);
        self.sock.send(&out, 0)?;
        loop {
            let len = self.recv()?;
            for frame in parse::<F::Message>(&self.buf[..len])? {
                if frame.seq != self.seq {
                    continue;
                }
                let payload = match frame.payload {
                    Ok(p) => p,
                    // one entry of a dump that a crate cannot decode is not the caller's
                    Err(_) if flags & NLM_F_DUMP != 0 => continue,
                    Err(e) => return Err(e),
                };
                match payload {
                    NetlinkPayload::InnerMessage(m) => each(m),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return Err(NlError::Kernel(io::Error::from_raw_os_error(e.raw_code().abs())))
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    _ => {}
                }
            }
        }
    }
}

impl<F: Family> AsRawFd for Socket<F> {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// One message of a datagram: its sequence number and what it carried, or
/// why that could not be decoded (an attribute a crate does not know must
/// not hide the acknowledgements around it).
struct Frame<M> {
    seq: u32,
    payload: Result<NetlinkPayload<M>, NlError>,
}

/// The messages of a datagram, each whole with its header; a broken length
/// ends it with an error.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<&[u8], NlError>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let len = buf.get(..4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])) as usize;
        if len < 16 || len > buf.len() {
            let e = NlError::Decode(format!("a message of {len} bytes in {} received", buf.len()));
            buf = &[];
            return Some(Err(e));
        }
        let message = &buf[..len];
        buf = buf.get(len.div_ceil(4) * 4..).unwrap_or_default();
        Some(Ok(message))
    })
}

/// Splits a datagram into its messages; a broken length fails the whole.
fn parse<M: NetlinkDeserializable>(buf: &[u8]) -> Result<Vec<Frame<M>>, NlError> {
    messages(buf)
        .map(|message| {
            let message = message?;
            let payload = NetlinkMessage::<M>::deserialize(message)
                .map(|m| m.payload)
                .map_err(|e| NlError::Decode(e.to_string()));
            Ok(Frame { seq: u32::from_ne_bytes([message[8], message[9], message[10], message[11]]), payload })
        })
        .collect()
}
