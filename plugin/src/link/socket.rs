//! A synchronous rtnetlink socket: one sendto and one or two recvfroms per
//! request. The kernel does the work inside sendto, so an async runtime buys
//! nothing here but syscalls; rtnetlink's builders still make the messages.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NlError {
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

/// Bound to the namespace the calling thread was in when it was opened.
/// Receive buffer: larger than any datagram the kernel sends (dumps included).
const RECV_CAPACITY: usize = 64 * 1024;

pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Self, NlError> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { sock, seq: 0, buf: Vec::with_capacity(RECV_CAPACITY) })
    }

    /// One datagram into `buf`. Received into spare capacity, never zeroed
    /// first: zeroing 64 KiB cost 16 page faults per socket, ~50 µs here.
    fn recv(&mut self) -> io::Result<usize> {
        self.buf.clear();
        self.sock.recv(&mut self.buf, 0)
    }

    /// A request answered by an acknowledgement (create, set, delete).
    pub fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags).map(drop)
    }

    /// Several acknowledged requests in one datagram: the kernel runs them in
    /// order, so later ones may depend on earlier ones (a route on an address),
    /// and the round trips of all but one are saved. Returns the first failure
    /// and its index; `tolerated` errnos count as success.
    pub fn ack_all(&mut self, reqs: Vec<(RouteNetlinkMessage, u16, Option<i32>)>) -> Result<(), (usize, NlError)> {
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        let mut tolerated = Vec::with_capacity(reqs.len());
        for (msg, flags, tolerate) in reqs {
            self.seq = self.seq.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = self.seq;
            let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
            req.finalize();
            let start = out.len();
            out.resize(start + req.buffer_len(), 0);
            req.serialize(&mut out[start..]);
            tolerated.push(tolerate);
        }
        let n = tolerated.len();
        self.sock.send(&out, 0).map_err(|e| (0, e.into()))?;
        let mut acked = 0;
        while acked < n {
            let len = self.recv().map_err(|e| (acked, e.into()))?;
            let mut offset = 0;
            while offset < len {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..len])
                    .map_err(|e| (acked, NlError::Decode(e.to_string())))?;
                let size = reply.header.length as usize;
                if size == 0 {
                    return Err((acked, NlError::Decode("zero-length message".into())));
                }
                offset += (size + 3) & !3;
                let idx = reply.header.sequence_number.wrapping_sub(first) as usize;
                if let (NetlinkPayload::Error(e), true) = (reply.payload, idx < n) {
                    let errno = e.raw_code().abs();
                    if errno != 0 && tolerated[idx] != Some(errno) {
                        return Err((idx, NlError::Kernel(io::Error::from_raw_os_error(errno))));
                    }
                    acked += 1;
                }
            }
        }
        Ok(())
    }

    /// An exclusive create; the kernel echoes what it made (since Linux 6.3),
    /// which saves a lookup afterwards.
    pub fn create(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO)
    }

    /// A request answered by messages and an acknowledgement (get by name).
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK)
    }

    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP)
    }

    fn exchange(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;

        let mut replies = Vec::new();
        loop {
            let n = self.recv()?;
            let mut offset = 0;
            while offset < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                    .map_err(|e| NlError::Decode(e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(NlError::Decode("zero-length message".into()));
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(replies),
                    NetlinkPayload::Error(e) => {
                        return Err(NlError::Kernel(io::Error::from_raw_os_error(e.raw_code().abs())))
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    _ => {}
                }
            }
        }
    }
}
