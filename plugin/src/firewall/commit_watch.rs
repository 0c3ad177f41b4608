//! Knowing that an iptables-nft tool's transaction is committed before the
//! tool exits. A tool that deleted rules waits, as it closes its netlink
//! socket, for nf_tables to destroy them after an RCU grace period (about
//! 20 ms here), which the caller does not need to sit through. nf_tables
//! announces every commit to its multicast group with the committing
//! process's PID (NFT_MSG_NEWGEN), so the caller goes on at that moment and
//! the tool finishes alone. iptables-legacy sends no such message: its
//! caller waits for the exit, as for a tool that failed. The watching
//! socket's own release would wait the same way: it lingers (linger.rs).

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

const NFNLGRP_NFTABLES: u32 = 7;
const NFT_MSG_NEWGEN: u16 = (10 << 8) | 15;
const NFTA_GEN_PROC_PID: u16 = 2;

pub struct CommitWatch {
    sock: Option<Socket>,
}

pub enum Outcome {
    /// The process committed: its changes are in place.
    Committed,
    /// Its stderr closed or has something to say: wait for its exit status.
    Exited,
}

impl CommitWatch {
    /// Listens from before the tool starts, so its commit cannot be missed.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.add_membership(NFNLGRP_NFTABLES)?;
        Ok(CommitWatch { sock: Some(sock) })
    }

    /// Waits until `pid` commits or `stderr` (the tool's) becomes readable.
    pub fn wait(&self, pid: u32, stderr: RawFd) -> Outcome {
        let Some(sock) = &self.sock else { return Outcome::Exited };
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            let mut fds = [
                libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
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
                buf.clear();
                // a lost message (ENOBUFS under a flood) leaves the exit to end the wait
                if let Ok(len) = sock.recv(&mut buf, 0) {
                    if commits_of(&buf[..len]).any(|p| p == pid) {
                        return Outcome::Committed;
                    }
                }
            } else if fds[0].revents != 0 {
                return Outcome::Exited;
            }
        }
    }
}

impl Drop for CommitWatch {
    fn drop(&mut self) {
        if let Some(sock) = self.sock.take() {
            super::linger::keep(sock);
        }
    }
}

/// The committing PIDs of the NEWGEN messages in a datagram.
fn commits_of(buf: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let mut off = 0;
    std::iter::from_fn(move || {
        while off + 20 <= buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().ok()?) as usize;
            let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().ok()?);
            if len < 20 || off + len > buf.len() {
                return None;
            }
            let msg = &buf[off..off + len];
            off += len.div_ceil(4) * 4;
            if kind == NFT_MSG_NEWGEN {
                if let Some(pid) = attr_be32(&msg[20..], NFTA_GEN_PROC_PID) {
                    return Some(pid);
                }
            }
        }
        None
    })
}

fn attr_be32(mut attrs: &[u8], want: u16) -> Option<u32> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == want && len == 8 {
            return Some(u32::from_be_bytes(attrs[4..8].try_into().ok()?));
        }
        attrs = attrs.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pid_of_a_newgen_among_other_messages() {
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
        gen.extend(attr(NFTA_GEN_PROC_PID, 20139));
        let mut buf = msg((10 << 8) | 6, &attr(1, 5)); // a NEWRULE
        buf.extend(msg(NFT_MSG_NEWGEN, &gen));
        assert_eq!(commits_of(&buf).collect::<Vec<_>>(), vec![20139]);
        assert_eq!(commits_of(&buf[..10]).count(), 0, "truncated input yields nothing");
    }
}
