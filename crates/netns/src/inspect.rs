//! What a pod's network namespace holds: its veths (name, MAC, MTU, addresses), routes and
//! neighbours — the facts Kata hands the guest through UpdateInterface / UpdateRoutes /
//! AddARPNeighbors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::{netlink, Result};

/// An IP address with its prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPrefix {
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// One link of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, empty when the link has none (lo has all zeros).
    pub mac: String,
    pub mtu: u32,
    /// rtnetlink kind (`veth`, `tun`, …), empty for none (lo, physical).
    pub kind: String,
    pub up: bool,
    /// Global-scope addresses (link-local IPv6 are left out: the guest makes its own).
    pub addresses: Vec<IpPrefix>,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination, None for the default route.
    pub destination: Option<IpPrefix>,
    pub gateway: Option<IpAddr>,
    pub source: Option<IpAddr>,
    /// Output device name.
    pub device: String,
    /// rtnetlink scope (0 universe, 253 link, 254 host).
    pub scope: u8,
    pub ipv6: bool,
}

/// One neighbour entry (permanent or reachable) with a link-layer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub address: IpAddr,
    pub mac: String,
    pub device: String,
    /// NUD state bits (`NUD_PERMANENT` = 0x80, …).
    pub state: u16,
}

/// Everything `inspect` saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
}

impl Snapshot {
    /// The links a tap is created for: veths (Kata's tcfilter model handles veth endpoints).
    pub fn veths(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| l.kind == "veth")
    }
}

pub(crate) fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn link_of(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        kind: String::new(),
        up: msg.header.flags.contains(LinkFlags::Up),
        addresses: Vec::new(),
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Address(a) => link.mac = format_mac(a),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = match kind {
                            InfoKind::Veth => "veth".into(),
                            InfoKind::Tun => "tun".into(),
                            other => other.to_string(),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Reads the namespace's links, addresses, routes and neighbours (call inside the namespace).
pub(crate) async fn snapshot(handle: &Handle) -> Result<Snapshot> {
    let mut links: Vec<Link> = handle
        .link()
        .get()
        .execute()
        .map_ok(|m| link_of(&m))
        .try_collect()
        .await
        .map_err(netlink("list links"))?;
    let addrs: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list addresses"))?;
    for a in addrs {
        let Some(link) = links.iter_mut().find(|l| l.index == a.header.index) else {
            continue;
        };
        let ip = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip {
            if let IpAddr::V6(v6) = ip {
                if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    continue;
                }
            }
            link.addresses.push(IpPrefix {
                address: ip,
                prefix_len: a.header.prefix_len,
            });
        }
    }
    let name_of = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
            .unwrap_or_default()
    };
    let mut routes = Vec::new();
    for v6 in [false, true] {
        let query = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let msgs: Vec<_> = handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(netlink("list routes"))?;
        for m in msgs {
            // Main table unicast routes only (local/broadcast entries are the kernel's own).
            if m.header.table != 254 || m.header.kind != RouteType::Unicast {
                continue;
            }
            let mut r = Route {
                destination: None,
                gateway: None,
                source: None,
                device: String::new(),
                scope: m.header.scope.into(),
                ipv6: m.header.address_family == AddressFamily::Inet6,
            };
            for attr in &m.attributes {
                match attr {
                    RouteAttribute::Destination(d) => {
                        r.destination = route_ip(d).map(|address| IpPrefix {
                            address,
                            prefix_len: m.header.destination_prefix_length,
                        });
                    }
                    RouteAttribute::Gateway(g) => r.gateway = route_ip(g),
                    RouteAttribute::PrefSource(s) => r.source = route_ip(s),
                    RouteAttribute::Oif(i) => r.device = name_of(*i),
                    _ => {}
                }
            }
            if r.ipv6
                && r.destination
                    .as_ref()
                    .is_some_and(|d| is_link_local6(d.address))
            {
                continue;
            }
            routes.push(r);
        }
    }
    let msgs: Vec<_> = handle
        .neighbours()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list neighbours"))?;
    let mut neighbours = Vec::new();
    for m in msgs {
        if !matches!(
            m.header.state,
            NeighbourState::Permanent | NeighbourState::Reachable
        ) {
            continue;
        }
        let mut ip = None;
        let mut mac = None;
        for attr in &m.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                    ip = Some((*v4).into())
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                    ip = Some((*v6).into())
                }
                NeighbourAttribute::LinkLayerAddress(l) => mac = Some(format_mac(l)),
                _ => {}
            }
        }
        if let (Some(address), Some(mac)) = (ip, mac) {
            let device = name_of(m.header.ifindex);
            neighbours.push(Neighbour {
                address,
                mac,
                device,
                state: m.header.state.into(),
            });
        }
    }
    links.sort_by_key(|l| l.index);
    Ok(Snapshot {
        links,
        routes,
        neighbours,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

fn is_link_local6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}
