//! The TCP and UDP sockets of the calling thread's network namespace, from
//! sock_diag (what `ss -tuna` shows), not /proc: /proc/net follows the
//! process's namespace, not a thread's after setns. Run it inside a pod's
//! namespace with [`crate::netns::NetNs::run`].

use crate::netlink::SockDiagSocket;
use crate::{DatapathError, Result};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// TCP LISTEN, or a bound, unconnected UDP socket.
    Listening,
    /// TCP ESTABLISHED, or a connected UDP socket.
    Established,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub transport: Transport,
    pub state: State,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Kernel TCP states (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// Listening and established sockets, IPv4 and IPv6, TCP and UDP.
pub fn list() -> Result<Vec<Listed>> {
    let mut socket = SockDiagSocket::open().map_err(|e| DatapathError::Kernel(format!("sock_diag socket: {e}")))?;
    let mut out = Vec::new();
    for (family, id) in [(AF_INET, SocketId::new_v4()), (AF_INET6, SocketId::new_v6())] {
        for (protocol, transport) in [(IPPROTO_TCP, Transport::Tcp), (IPPROTO_UDP, Transport::Udp)] {
            let states = match transport {
                Transport::Tcp => StateFlags::LISTEN | StateFlags::ESTABLISHED,
                // UDP: unconnected sockets are in CLOSE, connected ones in ESTABLISHED
                Transport::Udp => StateFlags::CLOSE | StateFlags::ESTABLISHED,
            };
            let request =
                InetRequest { family, protocol, extensions: ExtensionFlags::empty(), states, socket_id: id.clone() };
            let replies = socket
                .dump(SockDiagMessage::InetRequest(request))
                .map_err(|e| DatapathError::Kernel(format!("sock_diag dump: {e}")))?;
            for reply in replies {
                let SockDiagMessage::InetResponse(r) = reply else { continue };
                let h = &r.header;
                let state = match (transport, h.state) {
                    (Transport::Tcp, TCP_LISTEN) | (Transport::Udp, TCP_CLOSE) => State::Listening,
                    (_, TCP_ESTABLISHED) => State::Established,
                    _ => continue,
                };
                out.push(Listed {
                    transport,
                    state,
                    local: SocketAddr::new(h.socket_id.source_address, h.socket_id.source_port),
                    remote: SocketAddr::new(h.socket_id.destination_address, h.socket_id.destination_port),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The calling thread's namespace's ephemeral ports
/// (`net.ipv4.ip_local_port_range`; /proc/sys/net follows the thread's
/// namespace): an unconnected UDP socket there is a client's.
pub fn ephemeral_ports() -> std::ops::RangeInclusive<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut ports = range.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
    match (ports.next(), ports.next()) {
        (Some(from), Some(to)) if from <= to => from..=to,
        _ => 32768..=60999,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_namespaces_listeners_are_listed() {
        // in this test's own namespace, on loopback: nothing leaves the host
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let (t, u) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
        let all = list().unwrap();
        assert!(
            all.iter().any(|s| s.transport == Transport::Tcp && s.state == State::Listening && s.local == t),
            "{all:?}"
        );
        assert!(
            all.iter().any(|s| s.transport == Transport::Udp && s.state == State::Listening && s.local == u),
            "{all:?}"
        );
    }
}
