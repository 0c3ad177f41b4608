//! Set and map elements through nf_tables netlink: one batch, one
//! transaction, no process. This is the per-pod path (port mappings); the
//! per-network skeleton still goes through `nft -f` (nftables.rs) once.

use super::portmap::Element;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::io;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// nlmsghdr + nfgenmsg + attributes.
fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family);
    m.push(0); // NFNETLINK_V0
    m.extend_from_slice(&res_id.to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

fn element_attrs(table: &str, e: &Element) -> Vec<u8> {
    let mut elem = nla(NFTA_SET_ELEM_KEY | NLA_F_NESTED, &nla(NFTA_DATA_VALUE, &e.key_bytes()));
    if let Some(data) = e.data_bytes() {
        elem.extend(nla(NFTA_SET_ELEM_DATA | NLA_F_NESTED, &nla(NFTA_DATA_VALUE, &data)));
    }
    let list = nla(NFTA_LIST_ELEM | NLA_F_NESTED, &elem);
    let mut attrs = nla(NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
    attrs.extend(nla(NFTA_SET_ELEM_LIST_SET, &cstr(&e.set)));
    attrs.extend(nla(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, &list));
    attrs
}

/// Adds (or deletes) the elements in table `inet <table>` as one transaction:
/// all of them or none. The error carries the kernel's errno.
pub fn apply(table: &str, elements: &[Element], add: bool) -> io::Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let (kind, flags) = if add { (NFT_MSG_NEWSETELEM, NLM_F_CREATE) } else { (NFT_MSG_DELSETELEM, 0) };
    let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
    let mut batch = message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, NFNL_SUBSYS_NFTABLES, &[]);
    for (i, e) in elements.iter().enumerate() {
        let seq = 2 + i as u32;
        batch.extend(message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, NFPROTO_INET, 0, &element_attrs(table, e)));
    }
    let end_seq = 2 + elements.len() as u32;
    batch.extend(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, 0, NFNL_SUBSYS_NFTABLES, &[]));
    sock.send(&batch, 0)?;

    // One acknowledgement per element, or the first error (then the kernel
    // has aborted the whole transaction).
    let mut acked = 0;
    // spare capacity, not zeroed: every zeroed page is a fault
    let mut buf = Vec::with_capacity(64 * 1024);
    while acked < elements.len() {
        buf.clear();
        let n = sock.recv(&mut buf, 0)?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
            let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap_or_default());
            if len < 16 || off + len > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink reply"));
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or_default());
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                acked += 1;
            }
            off += len.div_ceil(4) * 4;
        }
    }
    if !add {
        super::linger::keep(sock);
    }
    Ok(())
}
