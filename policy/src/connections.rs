//! Observed connections: flows aggregated by client, server, protocol and
//! the server's real port (after any DNAT), numbered in one fixed order so
//! the same journals give the same numbers.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One end of a connection, as the journal knows it at the flow's time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Pod {
        namespace: String,
        name: String,
        ip: IpAddr,
    },
    /// A weavice pod the runtime did not name (no `K8S_POD_*` arguments).
    Unnamed {
        ip: IpAddr,
    },
    /// An address no pod held then: outside the cluster, or a node.
    Outside {
        ip: IpAddr,
    },
}

impl Peer {
    pub fn ip(&self) -> IpAddr {
        match self {
            Peer::Pod { ip, .. } | Peer::Unnamed { ip } | Peer::Outside { ip } => *ip,
        }
    }

    pub fn pod(&self) -> Option<(&str, &str)> {
        match self {
            Peer::Pod { namespace, name, .. } => Some((namespace, name)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    TCP,
    UDP,
    SCTP,
    ICMP,
    Other(u8),
}

impl Protocol {
    /// Whether a NetworkPolicy port can name it.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::TCP | Protocol::UDP | Protocol::SCTP)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Protocol::Other(n) => write!(f, "proto-{n}"),
            p => write!(f, "{p:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub client: Peer,
    pub server: Peer,
    pub protocol: Protocol,
    /// The server's port after DNAT; 0 for protocols without ports.
    pub port: u16,
    /// The address and port the client asked for when DNAT changed it.
    pub via: Option<SocketAddr>,
}

/// What the journal shows of a connection: how many flows, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub flows: u64,
    pub first: String,
    pub last: String,
}

impl Evidence {
    pub fn merge(&mut self, other: &Evidence) {
        self.flows += other.flows;
        if other.first < self.first {
            self.first.clone_from(&other.first);
        }
        if other.last > self.last {
            self.last.clone_from(&other.last);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Connection {
    /// From 1, in the order of keys.
    pub id: usize,
    pub key: Key,
    pub evidence: Evidence,
}

/// Numbers the connections in key order.
pub fn numbered(map: HashMap<Key, Evidence>) -> Vec<Connection> {
    let mut all: Vec<(Key, Evidence)> = map.into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter().enumerate().map(|(i, (key, evidence))| Connection { id: i + 1, key, evidence }).collect()
}
