//! Pod networking: the `netns` crate's inspect / attach (tap + tcfilter per veth) / detach.
//! Codes: NETNS_OPEN, NETNS_NOT_NAMESPACE, NETNS_ENTER, NETNS_NETLINK, NETNS_NO_LINK,
//! NETNS_INVALID_NAME, NETNS_TAP, NETNS_WORKER.

use std::os::fd::{IntoRawFd, OwnedFd};
use std::path::Path;

use napi_derive::napi;
use netns::NetnsError;

use crate::error::{coded, guard, Result};

/// An IP address (text) with its prefix length.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetIpPrefix {
    pub address: String,
    pub prefix_len: u32,
}

/// One link of a pod network namespace.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetLink {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    /// `veth`, `tun`, …; empty for none.
    pub kind: String,
    pub up: bool,
    pub addresses: Vec<NetIpPrefix>,
}

/// One main-table route; `destination` absent for the default route.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetRoute {
    pub destination: Option<NetIpPrefix>,
    pub gateway: Option<String>,
    pub source: Option<String>,
    pub device: String,
    pub scope: u32,
    pub ipv6: bool,
}

/// One permanent or reachable neighbour.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetNeighbour {
    pub address: String,
    pub mac: String,
    pub device: String,
    pub state: u32,
}

/// What a pod network namespace holds.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetnsSnapshot {
    pub links: Vec<NetLink>,
    pub routes: Vec<NetRoute>,
    pub neighbours: Vec<NetNeighbour>,
}

/// A veth connected to its tap. The fds are the caller's: pass them to QEMU, then close them.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetTapPair {
    pub veth: NetLink,
    pub tap_name: String,
    pub tap_fds: Vec<i32>,
    /// Empty when /dev/vhost-net was not asked for or cannot be opened.
    pub vhost_fds: Vec<i32>,
}

/// The result of `netnsAttach`.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetnsAttached {
    pub snapshot: NetnsSnapshot,
    pub pairs: Vec<NetTapPair>,
}

/// A (veth, tap) pair to detach.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetTapNames {
    pub veth: String,
    pub tap: String,
}

/// The tc state of one link: its qdisc kinds and the filter count on its ingress qdisc.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct NetTcState {
    pub qdiscs: Vec<String>,
    pub ingress_filters: u32,
}

fn to_js(e: NetnsError) -> napi::Error<crate::error::Code> {
    let code = match &e {
        NetnsError::Open { .. } => "NETNS_OPEN",
        NetnsError::NotNamespace { .. } => "NETNS_NOT_NAMESPACE",
        NetnsError::Enter { .. } => "NETNS_ENTER",
        NetnsError::Netlink { .. } | NetnsError::Socket(_) => "NETNS_NETLINK",
        NetnsError::NoSuchLink { .. } => "NETNS_NO_LINK",
        NetnsError::InvalidName { .. } => "NETNS_INVALID_NAME",
        NetnsError::Tap { .. } => "NETNS_TAP",
        NetnsError::Worker(_) => "NETNS_WORKER",
    };
    coded(code, e.to_string())
}

fn prefix(p: &netns::IpPrefix) -> NetIpPrefix {
    NetIpPrefix {
        address: p.address.to_string(),
        prefix_len: u32::from(p.prefix_len),
    }
}

fn link(l: &netns::Link) -> NetLink {
    NetLink {
        index: l.index,
        name: l.name.clone(),
        mac: l.mac.clone(),
        mtu: l.mtu,
        kind: l.kind.clone(),
        up: l.up,
        addresses: l.addresses.iter().map(prefix).collect(),
    }
}

fn snapshot(s: &netns::Snapshot) -> NetnsSnapshot {
    NetnsSnapshot {
        links: s.links.iter().map(link).collect(),
        routes: s
            .routes
            .iter()
            .map(|r| NetRoute {
                destination: r.destination.as_ref().map(prefix),
                gateway: r.gateway.map(|g| g.to_string()),
                source: r.source.map(|g| g.to_string()),
                device: r.device.clone(),
                scope: u32::from(r.scope),
                ipv6: r.ipv6,
            })
            .collect(),
        neighbours: s
            .neighbours
            .iter()
            .map(|n| NetNeighbour {
                address: n.address.to_string(),
                mac: n.mac.clone(),
                device: n.device.clone(),
                state: u32::from(n.state),
            })
            .collect(),
    }
}

fn raw(fds: Vec<OwnedFd>) -> Vec<i32> {
    fds.into_iter().map(IntoRawFd::into_raw_fd).collect()
}

/// Links, addresses, routes and neighbours of the network namespace at `path`.
#[napi(catch_unwind)]
pub fn netns_inspect(path: String) -> Result<NetnsSnapshot> {
    guard(|| {
        netns::inspect(Path::new(&path))
            .map(|s| snapshot(&s))
            .map_err(to_js)
    })
}

/// For each veth of the namespace at `path`: a tap `tap<n>_kata` with `queues` queues mirrored
/// with tc both ways. Returns the tap (and vhost-net) fds, which the caller must close.
#[napi(catch_unwind)]
pub fn netns_attach(path: String, queues: u32, vhost: bool) -> Result<NetnsAttached> {
    guard(|| {
        let attached = netns::attach(Path::new(&path), queues, vhost).map_err(to_js)?;
        let snap = snapshot(&attached.snapshot);
        let pairs = attached
            .pairs
            .into_iter()
            .map(|p| NetTapPair {
                veth: link(&p.veth),
                tap_name: p.tap_name,
                tap_fds: raw(p.tap_fds),
                vhost_fds: p.vhost_fds.map(raw).unwrap_or_default(),
            })
            .collect();
        Ok(NetnsAttached {
            snapshot: snap,
            pairs,
        })
    })
}

/// Removes each veth's ingress qdisc (with its filters) and each tap; a missing namespace or
/// link is already torn down.
#[napi(catch_unwind)]
pub fn netns_detach(path: String, pairs: Vec<NetTapNames>) -> Result<()> {
    guard(|| {
        let names: Vec<(String, String)> = pairs.into_iter().map(|p| (p.veth, p.tap)).collect();
        netns::detach(Path::new(&path), &names).map_err(to_js)
    })
}

/// The tc state of `link` in the namespace at `path`; null when the link does not exist.
#[napi(catch_unwind)]
pub fn netns_tc_state(path: String, link: String) -> Result<Option<NetTcState>> {
    guard(|| {
        let state = netns::tc_state(Path::new(&path), &link).map_err(to_js)?;
        Ok(state.map(|(qdiscs, filters)| NetTcState {
            qdiscs,
            ingress_filters: u32::try_from(filters).unwrap_or(u32::MAX),
        }))
    })
}
