//! Set and map elements as data: the fields of a (concatenated) key or
//! value, and how each is written in an nft script, listed by `nft -j` and
//! laid out in netlink (elements.rs sends them).

use super::expr::concat;
use super::Table;
use crate::link::format_mac;
use conf::Protocol;
use serde_json::{json, Value};
use std::net::IpAddr;

/// One field of a concatenated key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Addr(IpAddr),
    Proto(Protocol),
    Port(u16),
    /// An interface name (`iifname`), NUL-padded to IFNAMSIZ.
    IfName(String),
    Mac([u8; 6]),
    /// 128 bits of raw payload (an IPv6 address read at an offset: the
    /// target of a neighbour advertisement).
    Raw128(u128),
    /// 48 bits of raw payload (a MAC read at an offset: the link-layer
    /// address option of a neighbour solicitation or advertisement).
    RawMac([u8; 6]),
    /// A packet mark (a map's data): host byte order, as nftables keeps marks.
    Mark(u32),
}

/// IFNAMSIZ: the kernel's interface name buffer.
const IFNAMSIZ: usize = 16;

impl Field {
    /// As an nft script writes it.
    pub fn text(&self) -> String {
        match self {
            Field::Addr(ip) => ip.to_string(),
            Field::Proto(p) => p.to_string(),
            Field::Port(p) => p.to_string(),
            Field::IfName(n) => format!("\"{n}\""),
            Field::Mac(m) => format_mac(m),
            Field::Raw128(v) => format!("{v:#x}"),
            Field::RawMac(m) => format!("{:#x}", raw48(m)),
            Field::Mark(m) => format!("{m:#x}"),
        }
    }

    /// As `nft -j` lists it.
    fn json(&self) -> Value {
        match self {
            Field::Port(p) => json!(p),
            Field::IfName(n) => json!(n),
            // nft lists an integer up to 64 bits as a number, a longer one as hex
            Field::RawMac(m) => json!(raw48(m)),
            Field::Mark(m) => json!(m),
            other => json!(other.text()),
        }
    }

    /// As nftables lays a field out in a concatenation: network byte order,
    /// padded to a 4-byte register.
    fn bytes(&self) -> Vec<u8> {
        let mut b = match self {
            Field::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Field::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Field::Proto(p) => vec![match p {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => 132,
            }],
            Field::Port(p) => p.to_be_bytes().to_vec(),
            Field::IfName(n) => {
                let mut b = n.as_bytes().to_vec();
                b.resize(IFNAMSIZ, 0);
                b
            }
            Field::Mac(m) | Field::RawMac(m) => m.to_vec(),
            Field::Raw128(v) => v.to_be_bytes().to_vec(),
            Field::Mark(m) => m.to_ne_bytes().to_vec(),
        };
        b.resize(b.len().div_ceil(4) * 4, 0);
        b
    }
}

fn raw48(m: &[u8; 6]) -> u64 {
    m.iter().fold(0, |v, b| v << 8 | u64::from(*b))
}

/// An element of a set (key) or map (key and data) in one of weavice's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub table: Table,
    pub set: String,
    pub key: Vec<Field>,
    pub data: Option<Vec<Field>>,
}

fn bytes(fields: &[Field]) -> Vec<u8> {
    fields.iter().flat_map(Field::bytes).collect()
}

fn json_of(fields: &[Field]) -> Value {
    match fields {
        [one] => one.json(),
        many => concat(many.iter().map(Field::json).collect()),
    }
}

impl Element {
    pub fn key_bytes(&self) -> Vec<u8> {
        bytes(&self.key)
    }

    pub fn data_bytes(&self) -> Option<Vec<u8>> {
        self.data.as_deref().map(bytes)
    }

    /// As `nft -j` lists it: `[key, data]` in a map, the key in a set.
    pub fn json(&self) -> Value {
        match &self.data {
            Some(d) => json!([json_of(&self.key), json_of(d)]),
            None => json_of(&self.key),
        }
    }

    pub fn describe_key(&self) -> String {
        self.key.iter().map(Field::text).collect::<Vec<_>>().join(" . ")
    }

    /// Whether its target (the data of a map element, else the key) starts
    /// with `ip`: a forward to `ip`, or `ip`'s hairpin entry.
    pub fn concerns(&self, ip: &IpAddr) -> bool {
        self.data.as_deref().unwrap_or(&self.key).first() == Some(&Field::Addr(*ip))
    }

    /// Whether its key starts with the interface name `port`.
    pub fn is_of_port(&self, port: &str) -> bool {
        matches!(self.key.first(), Some(Field::IfName(n)) if n == port)
    }
}
