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

/// Where the chain bits sit: a contiguous mask of at least 7 bits, its
/// lowest 4 the hop, the next the reply bit, the rest the chain number.
/// [`ChainMarks::DEFAULT`] is the layout above; a node may choose another
/// (`weavice-agent chain marks --set`) while it has no chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawChainMarks")]
pub struct ChainMarks {
    pub mask: u32,
}

/// A layout as a file has it, checked on the way in.
#[derive(serde::Deserialize)]
struct RawChainMarks {
    mask: u32,
}

impl TryFrom<RawChainMarks> for ChainMarks {
    type Error = String;

    fn try_from(raw: RawChainMarks) -> Result<Self, String> {
        ChainMarks::new(raw.mask)
    }
}

impl Default for ChainMarks {
    fn default() -> Self {
        ChainMarks::DEFAULT
    }
}

impl ChainMarks {
    pub const DEFAULT: ChainMarks = ChainMarks { mask: CHAIN_ALL };

    /// Checks a mask: contiguous, 7 bits at least, clear of weavice's own bits.
    pub fn new(mask: u32) -> Result<ChainMarks, String> {
        let shift = mask.trailing_zeros();
        let contiguous = mask != 0 && (mask >> shift).wrapping_add(1) & (mask >> shift) == 0;
        if !contiguous || mask.count_ones() < 7 {
            return Err(format!(
                "mark mask {mask:#x}: give one run of at least 7 bits (4 for the hop, 1 for the direction, the rest chain numbers)"
            ));
        }
        if mask & (DNAT | BRIDGED) != 0 {
            return Err(format!("mark mask {mask:#x} covers weavice's own bits {:#x}", DNAT | BRIDGED));
        }
        Ok(ChainMarks { mask })
    }

    fn shift(&self) -> u32 {
        self.mask.trailing_zeros()
    }

    pub fn hop_mask(&self) -> u32 {
        0xf << self.shift()
    }

    pub fn reply(&self) -> u32 {
        1 << (self.shift() + 4)
    }

    pub fn id_mask(&self) -> u32 {
        self.mask & !(self.hop_mask() | self.reply())
    }

    /// Chain `id`'s bits.
    pub fn chain(&self, id: u16) -> u32 {
        (u32::from(id) << (self.shift() + 5)) & self.id_mask()
    }

    /// The bits of hop `k` (a route function's position, 0 for an endpoint).
    pub fn hop(&self, k: u8) -> u32 {
        (u32::from(k) << self.shift()) & self.hop_mask()
    }

    /// The highest chain number the mask holds (the routing tables hold
    /// [`MAX_CHAIN`] at most).
    pub fn max_chain(&self) -> u16 {
        u16::try_from(self.id_mask() >> (self.shift() + 5)).unwrap_or(u16::MAX).min(MAX_CHAIN)
    }

    /// The other owners whose default bits the mask covers.
    pub fn overlaps(&self) -> Vec<&'static MarkBits> {
        FOREIGN.iter().filter(|b| b.mask & self.mask != 0).collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits neither weavice nor a known owner uses by default.
    fn free() -> u32 {
        !WEAVICE.iter().chain(FOREIGN).fold(0, |all, b| all | b.mask)
    }

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
        let d = ChainMarks::DEFAULT;
        assert_eq!(d.chain(1), 0x20);
        assert_eq!(d.chain(MAX_CHAIN) | CHAIN_REPLY | u32::from(MAX_HOP), CHAIN_ALL);
        let bad: Result<ChainMarks, _> = serde_json::from_str(r#"{"mask": 0}"#);
        assert!(bad.is_err(), "a file is checked as a command line is");
    }

    #[test]
    fn a_chosen_mask_lays_out_hop_reply_and_chain() {
        let d = ChainMarks::DEFAULT;
        assert_eq!((d.hop_mask(), d.reply(), d.id_mask(), d.chain(1), d.hop(2)), (0xf, 0x10, 0x3fe0, 0x20, 2));
        assert_eq!(d.max_chain(), 511);
        let m = ChainMarks::new(0x7f00_0000).unwrap();
        assert_eq!((m.hop_mask(), m.reply(), m.id_mask()), (0x0f00_0000, 0x1000_0000, 0x6000_0000));
        assert_eq!((m.chain(3), m.hop(1)), (0x6000_0000, 0x0100_0000));
        assert_eq!(m.max_chain(), 3);
        assert!(m.overlaps().iter().any(|b| b.owner.starts_with("Calico")));
        for bad in [0, 0x3f, 0x5fff, 0x00ff_0000] {
            assert!(ChainMarks::new(bad).is_err(), "{bad:#x}");
        }
    }
}
