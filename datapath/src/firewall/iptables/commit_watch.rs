//! Knowing that an iptables-nft tool's transaction is committed before the
//! tool exits. A tool that deleted rules waits, as it closes its netlink
//! socket, for nf_tables to destroy them after an RCU grace period (about
//! 20 ms here), which the caller does not need to sit through. nf_tables
//! announces every commit to its multicast group with the committing
//! process's PID (NFT_MSG_NEWGEN), so the caller goes on at that moment and
//! the tool finishes alone. iptables-legacy sends no such message: its
//! caller waits for the exit, as for a tool that failed. The watching
//! socket's own release would wait the same way: see [`Lingering`].

use crate::lingering::Lingering;
use crate::netlink::{NetfilterSocket, NlError};
use netlink_packet_netfilter::nftables::{GenAttribute, NfTablesMessage};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

const NFNLGRP_NFTABLES: u32 = 7;

pub struct CommitWatch {
    sock: NetfilterSocket,
}

pub enum Outcome {
    /// The process committed: its changes are in place.
    Committed,
    /// Its stderr closed or has something to say: wait for its exit status.
    Exited,
}

impl CommitWatch {
    /// Listens from before the tool starts, so its commit cannot be missed.
    pub fn new() -> Result<Self, NlError> {
        let mut sock = NetfilterSocket::open()?;
        sock.subscribe(NFNLGRP_NFTABLES)?;
        Ok(CommitWatch { sock })
    }

    /// Waits until `pid` commits or `stderr` (the tool's) becomes readable.
    pub fn wait(&mut self, pid: u32, stderr: RawFd) -> Outcome {
        loop {
            let mut fds = [
                libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: stderr, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two valid pollfd entries owned by this frame.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n < 0 || fds[1].revents != 0 {
                return Outcome::Exited;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let messages = self.sock.recv_messages();
                // a lost message (ENOBUFS under a flood) leaves the exit to end the wait
                if messages.is_ok_and(|m| m.iter().any(|m| committer(m) == Some(pid))) {
                    return Outcome::Committed;
                }
            } else if fds[0].revents != 0 {
                return Outcome::Exited;
            }
        }
    }

    pub fn into_lingering(self) -> Lingering {
        Lingering::socket(self.sock.into_inner())
    }
}

/// The PID a NEWGEN message names as the committing process.
fn committer(m: &NetfilterMessage) -> Option<u32> {
    let NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(gen)) = &m.inner else { return None };
    gen.attributes.iter().find_map(|a| match a {
        GenAttribute::ProcPid(pid) => Some(*pid),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkMessage;

    #[test]
    fn finds_the_pid_of_a_newgen() {
        let msg = |kind: u16, attrs: &[u8]| {
            let mut m = ((20 + attrs.len()) as u32).to_ne_bytes().to_vec();
            m.extend(kind.to_ne_bytes());
            m.extend([0u8; 10]); // flags, seq, portid
            m.extend([0u8; 4]); // nfgenmsg
            m.extend(attrs);
            m
        };
        let attr = |kind: u16, v: u32| {
            let mut a = 8u16.to_ne_bytes().to_vec();
            a.extend(kind.to_ne_bytes());
            a.extend(v.to_be_bytes());
            a
        };
        let mut gen = attr(1, 126);
        gen.extend(attr(2, 20139)); // NFTA_GEN_PROC_PID
        let decoded = |bytes: &[u8]| {
            NetlinkMessage::<NetfilterMessage>::deserialize(bytes).ok().and_then(|m| match m.payload {
                netlink_packet_core::NetlinkPayload::InnerMessage(m) => committer(&m),
                _ => None,
            })
        };
        assert_eq!(decoded(&msg((10 << 8) | 15, &gen)), Some(20139));
        assert_eq!(decoded(&msg((10 << 8) | 16, &gen)), None, "a GETGEN is not a commit");
    }
}
