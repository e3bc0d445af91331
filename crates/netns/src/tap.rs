//! Tap devices through /dev/net/tun (TUNSETIFF), in the calling thread's network namespace.
//! The tap is not persistent: it lives while one of its queue fds is open, so when QEMU (the
//! holder of the fds) dies the tap goes with it.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::error::{NetnsError, Result};

/// Checks a Linux interface name (IFNAMSIZ - 1 bytes, no `/`, whitespace or `:`).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(NetnsError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Opens `queues` fds of tap `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, plus IFF_MULTI_QUEUE
/// when more than one), creating it on the first. Same flags as Kata's tap endpoints.
pub fn open_tap(name: &str, queues: u32) -> Result<Vec<OwnedFd>> {
    check_name(name)?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
    if queues > 1 {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    let mut fds = Vec::new();
    for _ in 0..queues.max(1) {
        let raw = open(
            "/dev/net/tun",
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| NetnsError::Tap {
            name: name.to_owned(),
            operation: "open /dev/net/tun",
            source,
        })?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src.cast_signed(); // ASCII (check_name), so no wrap
        }
        req.ifr_ifru.ifru_flags = i16::try_from(flags).unwrap_or(i16::MAX);
        // SAFETY: TUNSETIFF reads (and writes back) one `ifreq`; `req` is valid for the call
        // and `fd` is an open /dev/net/tun descriptor.
        let rc = unsafe { libc::ioctl(raw, libc::TUNSETIFF, &mut req as *mut libc::ifreq) };
        if rc < 0 {
            return Err(NetnsError::Tap {
                name: name.to_owned(),
                operation: "TUNSETIFF",
                source: nix::Error::last(),
            });
        }
        fds.push(fd);
    }
    Ok(fds)
}

/// Opens /dev/vhost-net once per queue, or None when it cannot be opened (no module, no access):
/// QEMU then runs virtio-net in userspace.
pub fn open_vhost_net(queues: u32) -> Option<Vec<OwnedFd>> {
    let mut fds = Vec::new();
    for _ in 0..queues.max(1) {
        let raw = open(
            "/dev/vhost-net",
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
    }
    Some(fds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_would_refuse_are_refused() {
        for bad in [
            "",
            "a/b",
            "a b",
            "0123456789abcdef",
            "..",
            "eth0:1",
            "tab\t",
        ] {
            assert!(
                matches!(check_name(bad), Err(NetnsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["tap0_kata", "eth0", "0123456789abcde"] {
            check_name(good).unwrap();
        }
    }
}
