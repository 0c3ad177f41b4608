//! Health probes through route functions. A function whose pod and link are
//! up may still not forward (a hung process, `ip_forward` off), so the probe
//! goes through it: a UDP datagram from the range's network address to the
//! node's gateway address, sent as an Ethernet frame from the bridge to the
//! function's MAC. A function that forwards sends it back to its default
//! gateway, the node, where the daemon's socket on the gateway address gets
//! it. The probe is IPv4 (a network with IPv4).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// What a probe goes through, and what it carries to be recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub mac: [u8; 6],
    pub token: u64,
}

/// The probing end on one bridge.
pub struct Prober {
    raw: OwnedFd,
    bridge_index: i32,
    bridge_mac: [u8; 6],
    /// The range's network address: no pod's, and routed through the bridge.
    source: Ipv4Addr,
    socket: UdpSocket,
    gateway: SocketAddrV4,
}

const MAGIC: &[u8; 8] = b"wvprobe1";

impl Prober {
    /// `gateway` is the node's address on the bridge, `source` the range's network address.
    pub fn new(bridge_index: u32, bridge_mac: [u8; 6], gateway: Ipv4Addr, source: Ipv4Addr) -> io::Result<Prober> {
        let socket = UdpSocket::bind(SocketAddrV4::new(gateway, 0))?;
        let gateway = match socket.local_addr()? {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => return Err(io::Error::other("an IPv6 socket for an IPv4 gateway")),
        };
        // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let raw = unsafe { OwnedFd::from_raw_fd(fd) };
        let bridge_index = i32::try_from(bridge_index).map_err(io::Error::other)?;
        Ok(Prober { raw, bridge_index, bridge_mac, source, socket, gateway })
    }

    /// Whether it probes through the bridge of this index and MAC.
    pub fn is_for(&self, index: u32, mac: &[u8; 6]) -> bool {
        i32::try_from(index).is_ok_and(|i| i == self.bridge_index) && *mac == self.bridge_mac
    }

    /// Sends one probe to each target and waits up to `timeout` for them to
    /// come back; whether each did.
    pub fn probe(&self, targets: &[Target], timeout: Duration) -> Vec<bool> {
        let mut back = vec![false; targets.len()];
        for t in targets {
            if let Err(e) = self.send(t) {
                log::warn!("probe to {}: {e}", datapath::link::format_mac(&t.mac));
            }
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64];
        while back.iter().any(|b| !b) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.socket.set_read_timeout(Some(left)).is_err() {
                break;
            }
            let Ok(n) = self.socket.recv(&mut buf) else { break };
            if n == 16 && buf[..8] == MAGIC[..] {
                let token = u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
                for (i, t) in targets.iter().enumerate() {
                    back[i] |= t.token == token;
                }
            }
        }
        back
    }

    fn send(&self, t: &Target) -> io::Result<()> {
        let frame = frame(&t.mac, &self.bridge_mac, self.source, self.gateway, t.token);
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_ifindex = self.bridge_index;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&t.mac);
        // SAFETY: the frame and address outlive the call; the length is the struct's.
        let n = unsafe {
            libc::sendto(
                self.raw.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Ethernet, IPv4 and UDP headers and the 16-byte payload (magic, token).
fn frame(to: &[u8; 6], from: &[u8; 6], src: Ipv4Addr, dst: SocketAddrV4, token: u64) -> Vec<u8> {
    let mut payload = MAGIC.to_vec();
    payload.extend(token.to_be_bytes());
    let udp_len = 8 + payload.len() as u16;
    let total = 20 + udp_len;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend(src.octets());
    ip.extend(dst.ip().octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut out = Vec::with_capacity(14 + usize::from(total));
    out.extend(to);
    out.extend(from);
    out.extend(0x0800u16.to_be_bytes());
    out.extend(ip);
    // UDP: the source port is the destination's (where replies would go);
    // checksum 0, none, which IPv4 allows
    out.extend(dst.port().to_be_bytes());
    out.extend(dst.port().to_be_bytes());
    out.extend(udp_len.to_be_bytes());
    out.extend([0, 0]);
    out.extend(payload);
    out
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_frame_is_a_valid_ipv4_udp_datagram() {
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 22, 0, 1), 4242);
        let f = frame(&[2, 0, 0, 0, 0, 9], &[2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 22, 0, 0), dst, 7);
        assert_eq!(f.len(), 14 + 20 + 8 + 16);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(checksum(&f[14..34]), 0, "the header checksum sums to zero");
        assert_eq!(&f[26..30], &[10, 22, 0, 0]);
        assert_eq!(&f[36..38], &4242u16.to_be_bytes());
        assert_eq!(&f[42..50], MAGIC);
        assert_eq!(u64::from_be_bytes(f[50..58].try_into().unwrap()), 7);
    }
}
