//! Kata's `tcfilter` internetworking between a veth and its tap: an `ingress` qdisc on both and
//! a u32 match-all filter with `mirred egress redirect` each way, as runtime-rs
//! `network/network_model/tc_filter_model.rs` does (rtnetlink's `redirect` builds the same
//! `tc filter add dev <src> parent ffff: protocol all u32 match u8 0 0 action mirred egress
//! redirect dev <dst>`).

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle};
use rtnetlink::{Handle, LinkUnspec};

use crate::error::{netlink, NetnsError, Result};

/// `parent ffff:` (the ingress qdisc's handle).
const INGRESS_PARENT: u32 = 0xffff_0000;
/// ETH_P_ALL in network byte order, as Kata passes it.
const ETH_P_ALL_BE: u16 = 0x0003_u16.to_be();

pub(crate) async fn link_index(handle: &Handle, name: &str) -> Result<u32> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(NetnsError::NoSuchLink {
            name: name.to_owned(),
        }),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            Err(NetnsError::NoSuchLink {
                name: name.to_owned(),
            })
        }
        Err(e) => Err(netlink(format!("get link {name}"))(e)),
    }
}

/// Sets the tap's MTU to the veth's and brings it up.
pub(crate) async fn tap_up(handle: &Handle, tap: u32, mtu: u32) -> Result<()> {
    let msg: LinkMessage = LinkUnspec::new_with_index(tap).mtu(mtu).up().build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(netlink("set tap mtu/up"))
}

/// Adds the ingress qdiscs and the two redirect filters.
pub(crate) async fn connect(handle: &Handle, veth: u32, tap: u32) -> Result<()> {
    for (index, what) in [(tap, "tap"), (veth, "veth")] {
        let as_i32 = i32::try_from(index).map_err(|_| NetnsError::Worker("ifindex".into()))?;
        handle
            .qdisc()
            .add(as_i32)
            .ingress()
            .execute()
            .await
            .map_err(netlink(format!("add ingress qdisc on {what}")))?;
    }
    for (from, to, what) in [(tap, veth, "tap → veth"), (veth, tap, "veth → tap")] {
        let as_i32 = i32::try_from(from).map_err(|_| NetnsError::Worker("ifindex".into()))?;
        handle
            .traffic_filter(as_i32)
            .add()
            .parent(INGRESS_PARENT)
            .protocol(ETH_P_ALL_BE)
            .redirect(to)
            .map_err(netlink(format!("build redirect {what}")))?
            .execute()
            .await
            .map_err(netlink(format!("add redirect filter {what}")))?;
    }
    Ok(())
}

/// Removes the ingress qdisc of `index` (and with it its filters); absent is fine.
pub(crate) async fn remove_ingress(handle: &Handle, index: u32) -> Result<()> {
    let as_i32 = i32::try_from(index).map_err(|_| NetnsError::Worker("ifindex".into()))?;
    let mut req = handle.qdisc().del(as_i32);
    req.message_mut().header.parent = TcHandle::INGRESS;
    req.message_mut().header.handle = TcHandle::from(INGRESS_PARENT);
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::ENOENT || e.raw_code() == -libc::EINVAL =>
        {
            Ok(())
        }
        Err(e) => Err(netlink("delete ingress qdisc")(e)),
    }
}

/// Names of the qdisc kinds attached to `index` (tests and teardown checks).
pub(crate) async fn qdisc_kinds(handle: &Handle, index: u32) -> Result<Vec<String>> {
    let msgs: Vec<_> = handle
        .qdisc()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list qdiscs"))?;
    Ok(msgs
        .iter()
        .filter(|m| u32::try_from(m.header.index).ok() == Some(index))
        .flat_map(|m| {
            m.attributes.iter().filter_map(|a| match a {
                TcAttribute::Kind(k) => Some(k.clone()),
                _ => None,
            })
        })
        .collect())
}

/// Number of filters under the ingress qdisc of `index`. A u32 dump also lists its hash table
/// (`fh 800:`, minor 0); only the filter nodes (`fh 800::800`) count.
pub(crate) async fn ingress_filter_count(handle: &Handle, index: u32) -> Result<usize> {
    let as_i32 = i32::try_from(index).map_err(|_| NetnsError::Worker("ifindex".into()))?;
    let mut req = handle.traffic_filter(as_i32).get();
    req = req.ingress();
    let msgs: Vec<_> = req
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list filters"))?;
    Ok(msgs.iter().filter(|m| m.header.handle.minor != 0).count())
}

/// Deletes link `index`; absent is fine.
pub(crate) async fn delete_link(handle: &Handle, index: u32) -> Result<()> {
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        Err(e) => Err(netlink("delete tap")(e)),
    }
}
