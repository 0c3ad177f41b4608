//! Set and map elements through nf_tables netlink: one batch, one
//! transaction (per 1024 elements), no process. This is the per-pod path
//! (port forwards, identities); the per-network skeleton goes through `nft`
//! once (tool.rs). Messages are
//! built with rust-netlink's netlink-packet-netfilter.

use super::element::Element;
use super::{antispoof, hostports, steering, Table, BRIDGE, INET};
use crate::lingering::Lingering;
use crate::netlink::{BatchError, NetfilterSocket, NlError, Request};
use crate::{DatapathError, Result};
use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetElementAttribute, SetElementList, SetElementMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};
use std::net::IpAddr;

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
            SetElementList::Table(e.table.name.to_string()),
            SetElementList::Set(e.set.clone()),
            SetElementList::Elements(vec![ListAttribute::Element(elem)]),
        ],
    };
    about(e.table, if add { NfTablesMessage::NewSetElement(body) } else { NfTablesMessage::DeleteSetElement(body) })
}

/// A message about one of weavice's tables.
fn about(table: Table, m: NfTablesMessage) -> NetfilterMessage {
    let family = if table == BRIDGE { NetfilterProtoFamily::Bridge } else { NetfilterProtoFamily::Inet };
    NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), m)
}

/// Elements per transaction: a batch must fit the socket's send buffer
/// (212992 bytes by default), and an element's message is about 90 bytes.
const PER_TRANSACTION: usize = 1024;

/// Adds (or deletes) the elements, in either of weavice's tables, as one
/// transaction: all of them or none. Only the last element asks for an
/// acknowledgement; the kernel answers a failing one anyway. A failure names the element the
/// kernel refused, when it was one.
fn transaction<'e>(
    nl: &mut NetfilterSocket,
    elements: &'e [Element],
    add: bool,
) -> Result<(), (Option<&'e Element>, NlError)> {
    let flags = if add { NLM_F_CREATE } else { 0 };
    let last = elements.len().saturating_sub(1);
    let mut batch = vec![delimiter(ControlMessage::BatchBegin)];
    batch.extend(elements.iter().enumerate().map(|(i, e)| {
        let r = Request::new(element_message(e, add), flags);
        if i == last {
            r
        } else {
            r.quiet()
        }
    }));
    batch.push(delimiter(ControlMessage::BatchEnd));
    nl.batch(batch).map_err(|BatchError { index, source }| {
        // request 0 is the batch's first delimiter
        (index.and_then(|i| i.checked_sub(1)).and_then(|i| elements.get(i)), source)
    })
}

/// A failed transaction, naming the element the kernel refused.
fn failed(verb: &str, refused: Option<&Element>, e: NlError) -> DatapathError {
    let what = refused.map_or(String::new(), |el| format!(" ({} in {})", el.describe_key(), el.set));
    let msg = format!("{verb} pod elements{what}: {e}");
    if e.errno() == Some(libc::ENOENT) {
        DatapathError::NotInstalled(msg)
    } else {
        DatapathError::Firewall(msg)
    }
}

fn open() -> Result<NetfilterSocket> {
    NetfilterSocket::open().map_err(DatapathError::netlink("open an nf_tables socket"))
}

/// Adds the elements, a transaction per [`PER_TRANSACTION`]; after a
/// failure the caller removes them all (removal tolerates absence).
pub fn add(elements: &[Element]) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    let mut nl = open()?;
    for chunk in elements.chunks(PER_TRANSACTION) {
        transaction(&mut nl, chunk, true).map_err(|(refused, e)| failed("add", refused, e))?;
    }
    Ok(())
}

/// An element as the kernel stores it: its key and, in a map, its data.
type Stored = (Vec<u8>, Option<Vec<u8>>);

/// What a set or map of one of weavice's tables holds now; nothing when it
/// does not exist (no table of weavice's on this node, a flushed ruleset).
fn listed(nl: &mut NetfilterSocket, table: Table, set: &str) -> Result<Vec<Stored>> {
    match dump(nl, table, set) {
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
        r => r.map_err(DatapathError::netlink(format!("list the elements of {set}"))),
    }
}

fn dump(nl: &mut NetfilterSocket, table: Table, set: &str) -> Result<Vec<Stored>, NlError> {
    let which = SetElementMessage {
        attributes: vec![SetElementList::Table(table.name.to_string()), SetElementList::Set(set.to_string())],
    };
    let mut out = Vec::new();
    nl.dump_each(about(table, NfTablesMessage::GetSetElement(which)), &mut |m| {
        let NetfilterMessageInner::NfTables(NfTablesMessage::NewSetElement(m)) = m.inner else { return };
        for list in m.attributes {
            let SetElementList::Elements(elements) = list else { continue };
            for element in elements {
                let ListAttribute::Element(attrs) = element else { continue };
                let value = |want_key: bool| {
                    attrs.iter().find_map(|a| match (a, want_key) {
                        (SetElementAttribute::Key(DataAttribute::Value(v)), true)
                        | (SetElementAttribute::Data(DataAttribute::Value(v)), false) => Some(v.clone()),
                        _ => None,
                    })
                };
                if let Some(key) = value(true) {
                    out.push((key, value(false)));
                }
            }
        }
    })?;
    Ok(out)
}

/// Deletes every forward to one of `pod_ips` and their hairpin entries, and
/// the identities of `ports`, found by listing the sets (for an attachment
/// whose state is lost).
pub fn remove_lost(pod_ips: &[IpAddr], ports: &[String]) -> Result<Lingering> {
    let mut nl = open()?;
    let mut found = Vec::new();
    let sets = hostports::SETS.iter().map(|s| (INET, *s)).chain(antispoof::SETS.iter().map(|s| (BRIDGE, *s)));
    let ours = |e: &Element| pod_ips.iter().any(|ip| e.concerns(ip)) || ports.iter().any(|p| e.is_of_port(p));
    for (table, set) in sets {
        found.extend(decoded(&mut nl, table, set)?.into_iter().filter(ours));
    }
    remove(&found)
}

/// The elements a set of one of weavice's tables holds now (none when the
/// set does not exist).
pub fn held(table: Table, set: &str) -> Result<Vec<Element>> {
    decoded(&mut open()?, table, set)
}

fn decoded(nl: &mut NetfilterSocket, table: Table, set: &str) -> Result<Vec<Element>> {
    let held = listed(nl, table, set)?;
    Ok(held.iter().filter_map(|(key, data)| decode(table, set, key, data.as_deref())).collect())
}

fn decode(table: Table, set: &str, key: &[u8], data: Option<&[u8]>) -> Option<Element> {
    let own =
        if table == BRIDGE { antispoof::decode_element(set, key) } else { hostports::decode_element(set, key, data) };
    own.or_else(|| steering::decode_element(table, set, key, data))
}

/// Deletes the elements; ones already gone are not an error. The socket,
/// whose release may wait for the kernel, is handed back.
pub fn remove(elements: &[Element]) -> Result<Lingering> {
    if elements.is_empty() {
        return Ok(Lingering::default());
    }
    let mut nl = open()?;
    let mut lingering = Lingering::default();
    for chunk in elements.chunks(PER_TRANSACTION) {
        if transaction(&mut nl, chunk, false).is_ok() {
            continue;
        }
        // A transaction fails whole when any element is missing: delete what
        // is there of ours (key and target both), on a fresh socket (the old
        // one may hold a flood of errors, or have overflowed).
        lingering.extend(Lingering::socket(std::mem::replace(&mut nl, open()?).into_inner()));
        let mut present = Vec::new();
        let mut sets: Vec<(Table, &str)> = Vec::new();
        for e in chunk {
            if !sets.contains(&(e.table, e.set.as_str())) {
                sets.push((e.table, e.set.as_str()));
            }
        }
        for (table, set) in sets {
            let held = listed(&mut nl, table, set)?;
            // a map element without data is deleted by its key
            let here = |e: &&Element| {
                e.table == table
                    && e.set == set
                    && held.iter().any(|(k, d)| *k == e.key_bytes() && (e.data.is_none() || *d == e.data_bytes()))
            };
            present.extend(chunk.iter().filter(here).cloned());
        }
        if !present.is_empty() {
            transaction(&mut nl, &present, false).map_err(|(refused, e)| failed("delete", refused, e))?;
        }
    }
    lingering.extend(Lingering::socket(nl.into_inner()));
    Ok(lingering)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::nftables::hostports::elements;
    use crate::firewall::pod::tests::sample;
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
