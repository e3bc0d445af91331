//! Pod networking on the host, as Kata's default `tcfilter` internetworking: inside a pod's
//! network namespace (opened safely, entered on a dedicated thread) list the veths with their
//! addresses, routes and neighbours, create one tap per veth, and mirror traffic between them
//! with tc (`ingress` qdisc + u32 match-all + `mirred egress redirect`, both ways). The tap fds
//! go to QEMU (`-netdev tap,fd=…`); `detach` removes the filters and the tap.

mod error;
mod inspect;
mod ns;
mod tap;
mod tcfilter;

use std::os::fd::OwnedFd;
use std::path::Path;

pub use error::{NetnsError, Result};
pub use inspect::{IpPrefix, Link, Neighbour, Route, Snapshot};
pub use ns::NetnsFile;
pub use tap::check_name;

/// One veth connected to its tap.
#[derive(Debug)]
pub struct TapPair {
    /// The veth as `inspect` saw it (MAC, MTU, addresses).
    pub veth: Link,
    pub tap_name: String,
    /// One fd per queue; the tap exists while one is open.
    pub tap_fds: Vec<OwnedFd>,
    /// /dev/vhost-net fds (one per queue) when it could be opened.
    pub vhost_fds: Option<Vec<OwnedFd>>,
}

/// Everything `attach` did: what the namespace holds, and the tap of each veth.
#[derive(Debug)]
pub struct Attached {
    pub snapshot: Snapshot,
    pub pairs: Vec<TapPair>,
}

/// The tap name of the `n`th veth, as Kata names them (`tap0_kata`, …).
pub fn tap_name(n: usize) -> String {
    format!("tap{n}_kata")
}

/// Reads the namespace at `netns_path`: links, addresses, routes, neighbours.
pub fn inspect(netns_path: &Path) -> Result<Snapshot> {
    NetnsFile::open(netns_path)?
        .run(|| ns::with_netlink(|h| async move { inspect::snapshot(&h).await }))
}

/// For each veth of the namespace: a tap (`tap<n>_kata`, `queues` queues, the veth's MTU, up),
/// ingress qdiscs on both, and the two redirect filters. On failure what was set up for every
/// veth is removed again. `vhost` asks for /dev/vhost-net fds (None when it cannot be opened).
pub fn attach(netns_path: &Path, queues: u32, vhost: bool) -> Result<Attached> {
    NetnsFile::open(netns_path)?.run(move || {
        ns::with_netlink(|h| async move {
            let snapshot = inspect::snapshot(&h).await?;
            let veths: Vec<Link> = snapshot.veths().cloned().collect();
            let mut pairs = Vec::new();
            for (n, veth) in veths.into_iter().enumerate() {
                match connect_one(&h, &veth, &tap_name(n), queues, vhost).await {
                    Ok(pair) => pairs.push(pair),
                    Err(e) => {
                        for p in &pairs {
                            let _ = disconnect_one(&h, &p.veth.name, &p.tap_name).await;
                        }
                        let _ = disconnect_one(&h, &veth.name, &tap_name(n)).await;
                        return Err(e);
                    }
                }
            }
            Ok(Attached { snapshot, pairs })
        })
    })
}

async fn connect_one(
    h: &rtnetlink::Handle,
    veth: &Link,
    tap: &str,
    queues: u32,
    vhost: bool,
) -> Result<TapPair> {
    let tap_fds = tap::open_tap(tap, queues)?;
    let tap_index = tcfilter::link_index(h, tap).await?;
    tcfilter::tap_up(h, tap_index, veth.mtu).await?;
    tcfilter::connect(h, veth.index, tap_index).await?;
    let vhost_fds = if vhost {
        tap::open_vhost_net(queues)
    } else {
        None
    };
    Ok(TapPair {
        veth: veth.clone(),
        tap_name: tap.to_owned(),
        tap_fds,
        vhost_fds,
    })
}

async fn disconnect_one(h: &rtnetlink::Handle, veth: &str, tap: &str) -> Result<()> {
    if let Ok(index) = tcfilter::link_index(h, veth).await {
        tcfilter::remove_ingress(h, index).await?;
    }
    match tcfilter::link_index(h, tap).await {
        Ok(index) => tcfilter::delete_link(h, index).await,
        Err(NetnsError::NoSuchLink { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Undoes `attach` for the given (veth, tap) names: the veth's ingress qdisc (with its filters)
/// and the tap are removed; what is already gone is skipped. A namespace that no longer exists
/// (deleted by CNI) counts as torn down.
pub fn detach(netns_path: &Path, pairs: &[(String, String)]) -> Result<()> {
    for (veth, tap) in pairs {
        check_name(veth)?;
        check_name(tap)?;
    }
    let file = match NetnsFile::open(netns_path) {
        Ok(f) => f,
        Err(NetnsError::Open {
            source: nix::Error::ENOENT,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let pairs = pairs.to_vec();
    file.run(move || {
        ns::with_netlink(|h| async move {
            for (veth, tap) in &pairs {
                disconnect_one(&h, veth, tap).await?;
            }
            Ok(())
        })
    })
}

/// What tc state a link carries (for tests and leftover checks): its qdisc kinds and the number
/// of filters on its ingress qdisc; None when the link does not exist.
pub fn tc_state(netns_path: &Path, link: &str) -> Result<Option<(Vec<String>, usize)>> {
    check_name(link)?;
    let link = link.to_owned();
    NetnsFile::open(netns_path)?.run(move || {
        ns::with_netlink(|h| async move {
            let index = match tcfilter::link_index(&h, &link).await {
                Ok(i) => i,
                Err(NetnsError::NoSuchLink { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let kinds = tcfilter::qdisc_kinds(&h, index).await?;
            let filters = if kinds.iter().any(|k| k == "ingress") {
                tcfilter::ingress_filter_count(&h, index).await?
            } else {
                0
            };
            Ok(Some((kinds, filters)))
        })
    })
}

#[cfg(test)]
mod tests;
