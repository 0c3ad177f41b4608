//! Which packet-mark bits weavice uses, and which other node software uses.
//!
//! Packet marks are shared by everything on the node. weavice only ORs its
//! bits in and matches them under a mask, never sets or compares the whole
//! mark, so other owners' bits survive. Chains take the bits no owner
//! below uses by default.

/// A set of mark bits and what they mean to their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkBits {
    pub owner: &'static str,
    pub mask: u32,
    pub purpose: &'static str,
}

/// "DNATed by the node": routed pods' frames carrying it may cross the
/// bridge (firewall isolation).
pub const DNAT: u32 = 0x0020_0000;
/// "bridged from or to a routed port" (the iptables backend's isolation).
pub const BRIDGED: u32 = 0x0040_0000;

/// A security-function chain's number (1..=[`MAX_CHAIN`]), in the conntrack
/// mark of its connections and in their packets' marks.
pub const CHAIN_ID: u32 = 0x0000_3fe0;
/// The packet travels its chain in the reply direction.
pub const CHAIN_REPLY: u32 = 0x0000_0010;
/// The chain position (1..=[`MAX_HOP`]) of the route function the packet
/// comes back from; 0 from an endpoint.
pub const CHAIN_HOP: u32 = 0x0000_000f;
/// Every chain bit: the mask of weavice's ip rules.
pub const CHAIN_ALL: u32 = CHAIN_ID | CHAIN_REPLY | CHAIN_HOP;
pub const MAX_CHAIN: u16 = (CHAIN_ID >> CHAIN_ID.trailing_zeros()) as u16;
pub const MAX_HOP: u8 = CHAIN_HOP as u8;

/// Chain `id`'s bits.
pub fn chain(id: u16) -> u32 {
    (u32::from(id) << CHAIN_ID.trailing_zeros()) & CHAIN_ID
}

pub const WEAVICE: &[MarkBits] = &[
    MarkBits { owner: "weavice", mask: DNAT, purpose: "DNATed by the node (routed-port bridge filter)" },
    MarkBits { owner: "weavice", mask: BRIDGED, purpose: "bridged from or to a routed port (iptables backend)" },
    MarkBits { owner: "weavice", mask: CHAIN_ID, purpose: "security-function chain number" },
    MarkBits { owner: "weavice", mask: CHAIN_REPLY, purpose: "security-function chain, reply direction" },
    MarkBits { owner: "weavice", mask: CHAIN_HOP, purpose: "security-function chain, the hop a packet returns from" },
];

/// Other owners' bits, by default (their sources are named in docs/datapath.md).
pub const FOREIGN: &[MarkBits] = &[
    MarkBits { owner: "kube-proxy", mask: 0x0000_4000, purpose: "masquerade (iptables and nftables modes)" },
    MarkBits { owner: "kubelet (before 1.28)", mask: 0x0000_8000, purpose: "KUBE-MARK-DROP" },
    // Felix hands out its mask from the lowest bit: accept, pass, drop,
    // scratch0, scratch1, then an endpoint block that it only uses with
    // kube-proxy in IPVS mode.
    MarkBits { owner: "Calico", mask: 0x001f_0000, purpose: "accept, pass, drop, scratch0, scratch1" },
    MarkBits { owner: "Calico (IPVS mode)", mask: 0xffe0_0000, purpose: "endpoint marks" },
];

/// Bits neither weavice nor a known owner uses by default.
pub fn free() -> u32 {
    !WEAVICE.iter().chain(FOREIGN).fold(0, |all, b| all | b.mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weavice_bits_are_distinct_and_clear_of_kube_proxy_and_calicos_defaults() {
        for b in WEAVICE {
            let others: Vec<_> = WEAVICE.iter().chain(FOREIGN).filter(|o| o.mask & b.mask != 0 && o != &b).collect();
            // Calico's endpoint block overlaps only in IPVS mode (documented)
            assert!(others.iter().all(|o| o.owner == "Calico (IPVS mode)"), "{b:?} collides with {others:?}");
        }
        assert_eq!(DNAT & BRIDGED, 0);
        let free = free();
        assert_eq!(free & (DNAT | BRIDGED | 0xc000), 0);
        assert_eq!(free, 0, "chains take every bit no one else uses");
        assert_eq!(CHAIN_ALL, 0x3fff);
        assert_eq!((MAX_CHAIN, MAX_HOP), (511, 15));
        assert_eq!(chain(1), 0x20);
        assert_eq!(chain(MAX_CHAIN) | CHAIN_REPLY | u32::from(MAX_HOP), CHAIN_ALL);
    }
}
