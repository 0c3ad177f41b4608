//! Set and map elements through nf_tables netlink: one batch, one
//! transaction, no process. This is the per-pod path (port forwards); the
//! per-network skeleton goes through `nft` once (tool.rs). Messages are
//! built with rust-netlink's netlink-packet-netfilter.

use super::hostports::Element;
use super::INET;
use crate::lingering::Lingering;
use crate::netlink::{BatchError, NetfilterSocket, NlError, Request};
use crate::{DatapathError, Result};
use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetElementAttribute, SetElementList, SetElementMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

const NFNL_SUBSYS_NFTABLES: u16 = 10;

fn delimiter(m: ControlMessage) -> Request<NetfilterMessage> {
    let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
    Request::unacknowledged(NetfilterMessage::new(header, m))
}

fn element_message(e: &Element, add: bool) -> NetfilterMessage {
    let mut elem = vec![SetElementAttribute::Key(DataAttribute::Value(e.key_bytes()))];
    if let Some(data) = e.data_bytes() {
        elem.push(SetElementAttribute::Data(DataAttribute::Value(data)));
    }
    let body = SetElementMessage {
        attributes: vec![
            SetElementList::Table(INET.name.to_string()),
            SetElementList::Set(e.set.clone()),
            SetElementList::Elements(vec![ListAttribute::Element(elem)]),
        ],
    };
    let m = if add { NfTablesMessage::NewSetElement(body) } else { NfTablesMessage::DeleteSetElement(body) };
    NetfilterMessage::new(NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0), m)
}

/// Adds (or deletes) the elements in `inet weavice` as one transaction: all
/// of them or none. Returns the socket, whose release may have to wait; a
/// failure names the element the kernel refused, when it was one.
fn transaction(elements: &[Element], add: bool) -> Result<NetfilterSocket, (Option<&Element>, NlError)> {
    let mut nl = NetfilterSocket::open().map_err(|e| (None, e))?;
    let flags = if add { NLM_F_CREATE } else { 0 };
    let mut batch = vec![delimiter(ControlMessage::BatchBegin)];
    batch.extend(elements.iter().map(|e| Request::new(element_message(e, add), flags)));
    batch.push(delimiter(ControlMessage::BatchEnd));
    // the kernel aborts the whole transaction at the first failure
    nl.batch(batch).map_err(|BatchError { index, source }| {
        // request 0 is the batch's first delimiter
        (index.and_then(|i| i.checked_sub(1)).and_then(|i| elements.get(i)), source)
    })?;
    Ok(nl)
}

pub fn add(elements: &[Element]) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    transaction(elements, true).map(drop).map_err(|(refused, e)| {
        let what = refused.map_or(String::new(), |el| format!(" ({} in {})", el.describe_key(), el.set));
        DatapathError::Firewall(format!("add port mapping elements{what}: {e}"))
    })
}

/// Deletes the elements; ones already gone are not an error.
pub fn remove(elements: &[Element]) -> Result<Lingering> {
    let mut lingering = Lingering::default();
    if elements.is_empty() {
        return Ok(lingering);
    }
    if let Ok(nl) = transaction(elements, false) {
        lingering.extend(Lingering::socket(nl.into_inner()));
        return Ok(lingering);
    }
    // one transaction fails whole when any element is missing: go one by one
    for e in elements {
        match transaction(std::slice::from_ref(e), false) {
            Ok(nl) => lingering.extend(Lingering::socket(nl.into_inner())),
            Err((_, err)) if err.errno() == Some(libc::ENOENT) => {}
            Err((_, err)) => {
                return Err(DatapathError::Firewall(format!(
                    "delete element {} from {}: {err}",
                    e.describe_key(),
                    e.set
                )))
            }
        }
    }
    Ok(lingering)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::forwards::tests::sample;
    use crate::firewall::nftables::hostports::elements;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};

    /// What weavice's own encoder (before netlink-packet-netfilter) sent for
    /// `hostport_v4 { tcp . 8080 : 10.0.0.5 . 80 }`: the crate's bytes must
    /// be the same.
    const HAND_ENCODED: [u8; 88] = [
        88, 0, 0, 0, 12, 10, 5, 4, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 12, 0, 1, 0, 119, 101, 97, 118, 105, 99, 101, 0,
        16, 0, 2, 0, 104, 111, 115, 116, 112, 111, 114, 116, 95, 118, 52, 0, 40, 0, 3, 128, 36, 0, 1, 128, 16, 0, 1,
        128, 12, 0, 1, 0, 6, 0, 0, 0, 31, 144, 0, 0, 16, 0, 2, 128, 12, 0, 1, 0, 10, 0, 0, 5, 0, 80, 0, 0,
    ];

    #[test]
    fn element_batches_are_byte_identical_to_the_hand_encoder() {
        let e = &elements(&sample())[0];
        let mut header = NetlinkHeader::default();
        header.flags = 1 | 4 | NLM_F_CREATE; // REQUEST | ACK | CREATE
        header.sequence_number = 2;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(element_message(e, true)));
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        assert_eq!(buf, HAND_ENCODED);
    }
}
