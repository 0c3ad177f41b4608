//! Policy-routing rules (`ip rule`): `nl.rule()`. Security-function chains
//! steer a connection's packets by their mark and incoming interface into a
//! table per hop.

use crate::netlink::RouteSocket;
use crate::{DatapathError, Result};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// `ip rule add pref PRIORITY [iif IIF] [fwmark MARK/MASK] lookup TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub v4: bool,
    pub priority: u32,
    pub iif: Option<String>,
    /// (mark, mask): the packet matches when `mark & mask == mark`.
    pub fwmark: Option<(u32, u32)>,
    pub table: u32,
}

impl Rule {
    pub fn describe(&self) -> String {
        let mut s = format!("{} pref {}", if self.v4 { "ipv4" } else { "ipv6" }, self.priority);
        if let Some(iif) = &self.iif {
            s += &format!(" iif {iif}");
        }
        if let Some((mark, mask)) = self.fwmark {
            s += &format!(" fwmark {mark:#x}/{mask:#x}");
        }
        s + &format!(" lookup {}", self.table)
    }

    fn message(&self) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = if self.v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.action = RuleAction::ToTable;
        // table ids above 255 only fit the attribute
        m.header.table = u8::try_from(self.table).unwrap_or(0);
        m.attributes.push(RuleAttribute::Table(self.table));
        m.attributes.push(RuleAttribute::Priority(self.priority));
        if let Some(iif) = &self.iif {
            m.attributes.push(RuleAttribute::Iifname(iif.clone()));
        }
        if let Some((mark, mask)) = self.fwmark {
            m.attributes.push(RuleAttribute::FwMark(mark));
            m.attributes.push(RuleAttribute::FwMask(mask));
        }
        m
    }

    fn from_message(m: RuleMessage) -> Option<Self> {
        let mut r = Rule {
            v4: m.header.family == AddressFamily::Inet,
            priority: 0,
            iif: None,
            fwmark: None,
            table: u32::from(m.header.table),
        };
        if m.header.action != RuleAction::ToTable {
            return None;
        }
        let (mut mark, mut mask) = (None, u32::MAX);
        for a in m.attributes {
            match a {
                RuleAttribute::Table(t) => r.table = t,
                RuleAttribute::Priority(p) => r.priority = p,
                RuleAttribute::Iifname(i) => r.iif = Some(i),
                RuleAttribute::FwMark(v) => mark = Some(v),
                RuleAttribute::FwMask(v) => mask = v,
                _ => {}
            }
        }
        r.fwmark = mark.map(|m| (m, mask));
        Some(r)
    }
}

/// `ip rule` on one socket.
pub struct RuleHandle<'a>(&'a mut RouteSocket);

impl RouteSocket {
    pub fn rule(&mut self) -> RuleHandle<'_> {
        RuleHandle(self)
    }
}

impl RuleHandle<'_> {
    /// Adds the rule; an identical one already there is fine.
    pub fn add(&mut self, r: &Rule) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::NewRule(r.message()), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            res => res.map_err(DatapathError::netlink(format!("add rule {}", r.describe()))),
        }
    }

    /// Deletes the rule; one already gone is not an error.
    pub fn delete(&mut self, r: &Rule) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::DelRule(r.message()), 0) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            res => res.map_err(DatapathError::netlink(format!("delete rule {}", r.describe()))),
        }
    }

    /// The family's rules that look up a table (the kernel's own included).
    pub fn list(&mut self, v4: bool) -> Result<Vec<Rule>> {
        let mut filter = RuleMessage::default();
        filter.header.family = if v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let replies =
            self.0.dump(RouteNetlinkMessage::GetRule(filter)).map_err(DatapathError::netlink("list rules"))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(m) => Rule::from_message(m),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_survives_its_message() {
        let r =
            Rule { v4: true, priority: 1000, iif: Some("wv0".into()), fwmark: Some((0x10000, 0x0fff1000)), table: 201 };
        assert_eq!(Rule::from_message(r.message()), Some(r.clone()));
        assert_eq!(r.describe(), "ipv4 pref 1000 iif wv0 fwmark 0x10000/0xfff1000 lookup 201");
        let big = Rule { v4: false, priority: 5, iif: None, fwmark: None, table: 70000 };
        assert_eq!(Rule::from_message(big.message()), Some(big));
    }
}
