//! Routes in any table: `nl.route()`. The pod's routes live in the main
//! table; security-function chains put their next hops and blackholes in
//! tables of their own.

use crate::netlink::{Request, RouteSocket};
use crate::{DatapathError, Result};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;
use std::net::IpAddr;

/// The kernel's main routing table (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Unicast,
    /// Packets matching it are dropped (fail-closed next hops).
    Blackhole,
    /// The lookup goes on with the next rule (a skipped hop, fail-open).
    Throw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    /// None: on-link (scope link) through `oif`.
    pub gw: Option<IpAddr>,
    /// The output interface; None for a blackhole or a gateway resolved by the kernel.
    pub oif: Option<u32>,
    pub table: u32,
    pub kind: RouteKind,
    /// None: the kernel's default (0 for IPv4, 1024 for IPv6).
    pub metric: Option<u32>,
}

impl Route {
    /// `dst via gw` in the main table.
    pub fn via(dst: IpNet, gw: IpAddr) -> Self {
        Route { dst, gw: Some(gw), oif: None, table: MAIN_TABLE, kind: RouteKind::Unicast, metric: None }
    }

    /// `dst` on-link, in the main table (give it an interface with [`Route::dev`]).
    pub fn on_link(dst: IpNet) -> Self {
        Route { dst, gw: None, oif: None, table: MAIN_TABLE, kind: RouteKind::Unicast, metric: None }
    }

    /// `blackhole dst`, in the main table.
    pub fn blackhole(dst: IpNet) -> Self {
        Route { dst, gw: None, oif: None, table: MAIN_TABLE, kind: RouteKind::Blackhole, metric: None }
    }

    /// `throw dst`, in the main table.
    pub fn throw(dst: IpNet) -> Self {
        Route { dst, gw: None, oif: None, table: MAIN_TABLE, kind: RouteKind::Throw, metric: None }
    }

    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    pub fn in_table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }

    /// A route of a higher metric is used only when no lower one is there.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// As `ip route` would print it, for messages.
    pub fn describe(&self) -> String {
        let mut s = match self.kind {
            RouteKind::Unicast => self.dst.to_string(),
            RouteKind::Blackhole => format!("blackhole {}", self.dst),
            RouteKind::Throw => format!("throw {}", self.dst),
        };
        if let Some(gw) = self.gw {
            s += &format!(" via {gw}");
        }
        if self.table != MAIN_TABLE {
            s += &format!(" table {}", self.table);
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        s
    }

    fn message(&self) -> Result<RouteMessage> {
        let mixed = || DatapathError::Invalid(format!("route {} mixes address families", self.describe()));
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.dst.addr(), self.dst.prefix_len())
            .map_err(|_| mixed())?
            .table_id(self.table);
        if let Some(oif) = self.oif {
            b = b.output_interface(oif);
        }
        if let Some(m) = self.metric {
            b = b.priority(m);
        }
        match (self.kind, self.gw) {
            (RouteKind::Blackhole, _) => b = b.kind(RouteType::BlackHole),
            (RouteKind::Throw, _) => b = b.kind(RouteType::Throw),
            (RouteKind::Unicast, Some(gw)) if gw.is_ipv4() == self.dst.addr().is_ipv4() => {
                b = b.gateway(gw).map_err(|_| mixed())?
            }
            (RouteKind::Unicast, Some(_)) => return Err(mixed()),
            (RouteKind::Unicast, None) => b = b.scope(RouteScope::Link),
        }
        Ok(b.build())
    }
}

/// The request adding the route (an identical one already there is fine), for a batch.
pub fn add_request(r: &Route) -> Result<Request<RouteNetlinkMessage>> {
    Ok(Request::new(RouteNetlinkMessage::NewRoute(r.message()?), NLM_F_CREATE | NLM_F_EXCL).tolerating(libc::EEXIST))
}

/// Which routes [`RouteHandle::list`] returns.
#[derive(Debug, Clone, Copy)]
pub struct RouteFilter {
    pub v4: bool,
    pub table: u32,
    /// Only routes through this interface.
    pub oif: Option<u32>,
}

/// `ip route` on one socket.
pub struct RouteHandle<'a>(&'a mut RouteSocket);

impl RouteSocket {
    pub fn route(&mut self) -> RouteHandle<'_> {
        RouteHandle(self)
    }
}

impl RouteHandle<'_> {
    /// Adds the route; an identical one already there is fine.
    pub fn add(&mut self, r: &Route) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::NewRoute(r.message()?), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            res => res.map_err(DatapathError::netlink(format!("add route {}", r.describe()))),
        }
    }

    /// Adds the route, or replaces the one to the same destination in the
    /// same table (atomically: no packet finds neither).
    pub fn replace(&mut self, r: &Route) -> Result<()> {
        self.0
            .ack(RouteNetlinkMessage::NewRoute(r.message()?), NLM_F_CREATE | NLM_F_REPLACE)
            .map_err(DatapathError::netlink(format!("replace route {}", r.describe())))
    }

    /// Deletes the route; one already gone is not an error.
    pub fn delete(&mut self, r: &Route) -> Result<()> {
        match self.0.ack(RouteNetlinkMessage::DelRoute(r.message()?), 0) {
            Err(e) if e.errno() == Some(libc::ESRCH) => Ok(()),
            res => res.map_err(DatapathError::netlink(format!("delete route {}", r.describe()))),
        }
    }

    pub fn list(&mut self, f: RouteFilter) -> Result<Vec<Route>> {
        let mut filter = RouteMessage::default();
        filter.header.address_family = if f.v4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let replies =
            self.0.dump(RouteNetlinkMessage::GetRoute(filter)).map_err(DatapathError::netlink("list routes"))?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewRoute(m) = m else { continue };
            let mut r = Route {
                dst: if f.v4 { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) },
                gw: None,
                oif: None,
                table: u32::from(m.header.table),
                metric: None,
                kind: match m.header.kind {
                    RouteType::BlackHole => RouteKind::Blackhole,
                    RouteType::Throw => RouteKind::Throw,
                    _ => RouteKind::Unicast,
                },
            };
            let mut dst = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = ip_of(d),
                    RouteAttribute::Gateway(g) => r.gw = ip_of(g),
                    RouteAttribute::Oif(i) => r.oif = Some(*i),
                    RouteAttribute::Table(t) => r.table = *t,
                    RouteAttribute::Priority(p) => r.metric = Some(*p),
                    _ => {}
                }
            }
            if r.table != f.table || (f.oif.is_some() && r.oif != f.oif) {
                continue;
            }
            if let Ok(dst) = IpNet::new(dst.unwrap_or(r.dst.addr()), m.header.destination_prefix_length) {
                r.dst = dst;
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_described_and_checked_for_family() {
        let v4: IpNet = "0.0.0.0/0".parse().unwrap();
        let r = Route::via(v4, "10.0.0.1".parse().unwrap()).in_table(201);
        assert_eq!(r.describe(), "0.0.0.0/0 via 10.0.0.1 table 201");
        assert!(r.message().is_ok());
        let e = Route::via(v4, "fd00::1".parse().unwrap()).message().unwrap_err().to_string();
        assert!(e.contains("mixes address families"), "{e}");
        assert_eq!(Route::blackhole(v4).describe(), "blackhole 0.0.0.0/0");
    }
}
