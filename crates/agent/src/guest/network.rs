//! Pod networking in the guest, as Kata's agent does it for UpdateInterface / UpdateRoutes /
//! AddARPNeighbors: the NIC the host planned is found by its MAC (the veth's), renamed to the
//! veth's name, given its addresses and MTU and brought up; routes of the named devices are
//! replaced by the host's; permanent neighbours are added. Over rtnetlink, no `ip` binary.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::{RouteAttribute, RouteScope};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::protocols::types;

/// What failed, naming the interface, address or route.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The request itself is unusable (bad MAC, address, prefix).
    #[error("invalid {field}: {value:?}")]
    Invalid { field: &'static str, value: String },
    /// No NIC with this MAC appeared in time.
    #[error("no interface with MAC {mac} (waited {waited_ms} ms)")]
    NoSuchInterface { mac: String, waited_ms: u128 },
    /// No link with this name (routes, neighbours).
    #[error("no interface named {name:?}")]
    NoSuchDevice { name: String },
    /// A netlink request failed.
    #[error("netlink {operation}: {source}")]
    Netlink {
        operation: String,
        source: rtnetlink::Error,
    },
    /// The netlink socket could not be opened.
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
}

type Result<T> = std::result::Result<T, NetworkError>;

fn nl(operation: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let operation = operation.into();
    move |source| NetworkError::Netlink { operation, source }
}

fn handle() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetworkError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

fn parse_mac(mac: &str) -> Result<Vec<u8>> {
    let bytes: Option<Vec<u8>> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    match bytes {
        Some(b) if b.len() == 6 => Ok(b),
        _ => Err(NetworkError::Invalid {
            field: "hwAddr",
            value: mac.to_owned(),
        }),
    }
}

fn parse_ip(field: &'static str, text: &str) -> Result<IpAddr> {
    text.parse().map_err(|_| NetworkError::Invalid {
        field,
        value: text.to_owned(),
    })
}

/// `a.b.c.d/len` or a bare address (full length); "" or `default` is None.
fn parse_prefix(field: &'static str, text: &str) -> Result<Option<(IpAddr, u8)>> {
    if text.is_empty() || text == "default" {
        return Ok(None);
    }
    let (ip, len) = text.split_once('/').unwrap_or((text, ""));
    let ip = parse_ip(field, ip)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if len.is_empty() {
        max
    } else {
        len.parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| NetworkError::Invalid {
                field,
                value: text.to_owned(),
            })?
    };
    Ok(Some((ip, len)))
}

async fn links(h: &Handle) -> Result<Vec<LinkMessage>> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl("list links"))
}

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_mac(l: &LinkMessage) -> Option<&[u8]> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.as_slice()),
        _ => None,
    })
}

async fn index_by_name(h: &Handle, name: &str) -> Result<u32> {
    links(h)
        .await?
        .iter()
        .find(|l| link_name(l) == Some(name))
        .map(|l| l.header.index)
        .ok_or_else(|| NetworkError::NoSuchDevice {
            name: name.to_owned(),
        })
}

/// The NIC with `mac`, waiting for virtio-net to probe it (cold-plugged NICs are there at boot;
/// a hot-plugged one takes a moment).
async fn index_by_mac(h: &Handle, mac: &str) -> Result<u32> {
    let want = parse_mac(mac)?;
    let start = Instant::now();
    loop {
        if let Some(l) = links(h)
            .await?
            .iter()
            .find(|l| link_mac(l) == Some(want.as_slice()))
        {
            return Ok(l.header.index);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(NetworkError::NoSuchInterface {
                mac: mac.to_owned(),
                waited_ms: start.elapsed().as_millis(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// UpdateInterface: rename, MTU, addresses (replacing the link's), up. Returns what was applied.
pub async fn update_interface(iface: &types::Interface) -> Result<types::Interface> {
    let addrs: Vec<(IpAddr, u8)> = iface
        .IPAddresses
        .iter()
        .map(|a| {
            let text = if a.mask.is_empty() {
                a.address.clone()
            } else {
                format!("{}/{}", a.address, a.mask)
            };
            parse_prefix("IPAddresses", &text)?.ok_or(NetworkError::Invalid {
                field: "IPAddresses",
                value: text,
            })
        })
        .collect::<Result<_>>()?;
    let h = handle()?;
    let index = index_by_mac(&h, &iface.hwAddr).await?;
    // A link is renamed only while down.
    let down = LinkUnspec::new_with_index(index).down().build();
    h.link()
        .set(down)
        .execute()
        .await
        .map_err(nl("set link down"))?;
    let mut set = LinkUnspec::new_with_index(index);
    if !iface.name.is_empty() {
        set = set.name(iface.name.clone());
    }
    if iface.mtu > 0 {
        set = set.mtu(u32::try_from(iface.mtu).map_err(|_| NetworkError::Invalid {
            field: "mtu",
            value: iface.mtu.to_string(),
        })?);
    }
    h.link()
        .set(set.build())
        .execute()
        .await
        .map_err(nl(format!("rename/mtu {}", iface.name)))?;
    let existing: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl("list addresses"))?;
    for a in existing {
        let link_local = a.attributes.iter().any(|x| {
            matches!(x, AddressAttribute::Address(IpAddr::V6(v6)) if v6.segments()[0] & 0xffc0 == 0xfe80)
        });
        if !link_local {
            h.address()
                .del(a)
                .execute()
                .await
                .map_err(nl("delete address"))?;
        }
    }
    for (ip, len) in &addrs {
        h.address()
            .add(index, *ip, *len)
            .execute()
            .await
            .map_err(nl(format!("add address {ip}/{len}")))?;
    }
    let up = LinkUnspec::new_with_index(index).up().build();
    h.link()
        .set(up)
        .execute()
        .await
        .map_err(nl("set link up"))?;
    Ok(iface.clone())
}

/// UpdateRoutes: the main-table routes of every device the request names are replaced by the
/// request's, in its order (device routes first, so gateways are reachable).
pub async fn update_routes(routes: &[types::Route]) -> Result<Vec<types::Route>> {
    let h = handle()?;
    let mut devices = Vec::new();
    for r in routes {
        let index = index_by_name(&h, &r.device).await?;
        if !devices.contains(&index) {
            devices.push(index);
        }
    }
    for v6 in [false, true] {
        let query = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let existing: Vec<_> = h
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list routes"))?;
        for m in existing {
            let oif = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            let link_local6 = m.attributes.iter().any(|a| {
                matches!(a, RouteAttribute::Destination(rtnetlink::packet_route::route::RouteAddress::Inet6(d)) if d.segments()[0] & 0xffc0 == 0xfe80)
            });
            if m.header.table == 254 && !link_local6 && oif.is_some_and(|i| devices.contains(&i)) {
                // Already gone (e.g. with its address) is fine.
                let _ = h.route().del(m).execute().await;
            }
        }
    }
    for r in routes {
        let index = index_by_name(&h, &r.device).await?;
        let dest = parse_prefix("dest", &r.dest)?;
        let gateway = if r.gateway.is_empty() {
            None
        } else {
            Some(parse_ip("gateway", &r.gateway)?)
        };
        let source = if r.source.is_empty() {
            None
        } else {
            Some(parse_ip("source", &r.source)?)
        };
        let v6 = dest
            .map(|(ip, _)| ip.is_ipv6())
            .or(gateway.map(|g| g.is_ipv6()))
            .unwrap_or(false);
        let scope = RouteScope::from(u8::try_from(r.scope).unwrap_or(0));
        let msg = if v6 {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .output_interface(index)
                .scope(scope);
            if let Some((IpAddr::V6(d), len)) = dest {
                b = b.destination_prefix(d, len);
            }
            if let Some(IpAddr::V6(g)) = gateway {
                b = b.gateway(g);
            }
            if let Some(IpAddr::V6(s)) = source {
                b = b.pref_source(s);
            }
            b.build()
        } else {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .output_interface(index)
                .scope(scope);
            if let Some((IpAddr::V4(d), len)) = dest {
                b = b.destination_prefix(d, len);
            }
            if let Some(IpAddr::V4(g)) = gateway {
                b = b.gateway(g);
            }
            if let Some(IpAddr::V4(s)) = source {
                b = b.pref_source(s);
            }
            b.build()
        };
        match h.route().add(msg).replace().execute().await {
            Ok(()) => {}
            Err(e) => {
                return Err(nl(format!(
                    "add route {:?} via {:?} dev {}",
                    r.dest, r.gateway, r.device
                ))(e))
            }
        }
    }
    Ok(routes.to_vec())
}

/// AddARPNeighbors: each neighbour added (replacing) as permanent on its device.
pub async fn add_arp_neighbors(neighbours: &[types::ARPNeighbor]) -> Result<()> {
    let h = handle()?;
    for n in neighbours {
        let Some(to) = n.toIPAddress.as_ref() else {
            return Err(NetworkError::Invalid {
                field: "toIPAddress",
                value: String::new(),
            });
        };
        let ip = parse_ip("toIPAddress", &to.address)?;
        let mac = parse_mac(&n.lladdr)?;
        let index = index_by_name(&h, &n.device).await?;
        h.neighbours()
            .add(index, ip)
            .link_layer_address(&mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("add neighbour {ip} dev {}", n.device)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_macs_are_parsed_or_refused_by_name() {
        assert_eq!(parse_prefix("dest", "").unwrap(), None);
        assert_eq!(
            parse_prefix("dest", "10.0.0.0/24").unwrap(),
            Some(("10.0.0.0".parse().unwrap(), 24))
        );
        assert_eq!(
            parse_prefix("dest", "10.0.0.1").unwrap(),
            Some(("10.0.0.1".parse().unwrap(), 32))
        );
        assert!(parse_prefix("dest", "10.0.0.0/33").is_err());
        assert!(parse_prefix("dest", "nonsense/8").is_err());
        assert_eq!(
            parse_mac("02:00:0a:00:00:01").unwrap(),
            vec![2, 0, 10, 0, 0, 1]
        );
        assert!(parse_mac("02:00:0a:00:00").is_err());
        assert!(parse_mac("zz:00:0a:00:00:01").is_err());
    }

    /// Runs `f` on a thread inside a throwaway netns `kts-agent-net-<pid>` holding a link `nic9`
    /// with MAC 02:00:0a:00:00:07 (a veth whose peer `peer9` is up; made with `ip`; removed even when the test fails).
    fn in_netns<F, T>(f: F) -> (T, String)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        use std::process::Command;
        let name = format!("kts-agent-net-{}", std::process::id());
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .output();
            }
        }
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &name]);
        let _gone = Gone(name.clone());
        ip(&[
            "-n",
            &name,
            "link",
            "add",
            "nic9",
            "address",
            "02:00:0a:00:00:07",
            "type",
            "veth",
            "peer",
            "name",
            "peer9",
        ]);
        ip(&["-n", &name, "link", "set", "peer9", "up"]);
        let path = format!("/run/netns/{name}");
        let out = std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap();
        let shown = |args: &[&str]| {
            let o = Command::new("ip")
                .args(["-n", &name])
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let state = [
            shown(&["-o", "addr", "show"]),
            shown(&["-o", "link", "show"]),
            shown(&["route", "show"]),
            shown(&["neigh", "show"]),
        ]
        .join("\n");
        (out, state)
    }

    #[test]
    #[ignore = "needs root: creates a network namespace"]
    fn interface_routes_and_neighbours_are_applied_as_requested() {
        let ((), state) = in_netns(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut iface = types::Interface::new();
                iface.name = "eth0".into();
                iface.hwAddr = "02:00:0a:00:00:07".into();
                iface.mtu = 1400;
                let mut a = types::IPAddress::new();
                a.address = "10.233.0.7".into();
                a.mask = "24".into();
                iface.IPAddresses.push(a);
                update_interface(&iface).await.unwrap();
                let mut link_route = types::Route::new();
                link_route.dest = "10.233.0.0/24".into();
                link_route.device = "eth0".into();
                link_route.scope = 253;
                let mut default = types::Route::new();
                default.gateway = "10.233.0.1".into();
                default.device = "eth0".into();
                update_routes(&[link_route, default]).await.unwrap();
                let mut n = types::ARPNeighbor::new();
                let mut to = types::IPAddress::new();
                to.address = "10.233.0.1".into();
                n.toIPAddress = protobuf::MessageField::some(to);
                n.device = "eth0".into();
                n.lladdr = "02:00:0a:00:00:01".into();
                add_arp_neighbors(&[n]).await.unwrap();
                let mut missing = types::Interface::new();
                missing.hwAddr = "02:00:0a:00:00:99".into();
                // A MAC nobody has: NOT_FOUND after the wait, nothing changed.
                assert!(matches!(
                    update_interface(&missing).await,
                    Err(NetworkError::NoSuchInterface { .. })
                ));
            });
        });
        assert!(state.contains("eth0") && !state.contains("nic9"), "{state}");
        assert!(state.contains("inet 10.233.0.7/24"), "{state}");
        assert!(state.contains("mtu 1400"), "{state}");
        assert!(state.contains("default via 10.233.0.1 dev eth0"), "{state}");
        assert!(
            state.contains("10.233.0.1 dev eth0 lladdr 02:00:0a:00:00:01 PERMANENT"),
            "{state}"
        );
    }
}
