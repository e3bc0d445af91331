//! Root-only tests in throwaway network namespaces (`ip netns add` sets up the fixture; the code
//! under test uses netlink only). Run with `cargo test -p netns … -- --include-ignored` as root.

use std::io::Read;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A netns `kts-nt-<pid>-<n>` with `eth0` (10.231.<k>.2/24, default via .1) whose veth peer
/// `kh<pid><n>` stays outside with 10.231.<k>.1/24. Removed on drop, even when a test fails.
struct PodNetns {
    name: String,
    host_veth: String,
    subnet: u32,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PodNetns {
    fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let subnet = (pid * 7 + n) % 250 + 1;
        let me = Self {
            name: format!("kts-nt-{pid}-{n}"),
            host_veth: format!("kh{}{n}", pid % 1_000_000),
            subnet,
        };
        ip(&["netns", "add", &me.name]);
        ip(&[
            "link",
            "add",
            &me.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &me.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.231.{subnet}.1/24"),
            "dev",
            &me.host_veth,
        ]);
        ip(&["link", "set", &me.host_veth, "up"]);
        ip(&[
            "-n",
            &me.name,
            "addr",
            "add",
            &format!("10.231.{subnet}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &me.name, "link", "set", "eth0", "mtu", "1400", "up"]);
        ip(&["-n", &me.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &me.name,
            "route",
            "add",
            "default",
            "via",
            &format!("10.231.{subnet}.1"),
        ]);
        me
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn inspect_reports_the_veth_its_address_mtu_and_default_route() {
    let ns = PodNetns::new();
    let snap = inspect(&ns.path()).unwrap();
    let veths: Vec<_> = snap.veths().collect();
    assert_eq!(veths.len(), 1, "{snap:?}");
    let eth0 = veths[0];
    assert_eq!(eth0.name, "eth0");
    assert_eq!(eth0.mtu, 1400);
    assert!(eth0.up);
    assert_eq!(eth0.mac.len(), 17);
    let want: IpAddr = format!("10.231.{}.2", ns.subnet).parse().unwrap();
    assert_eq!(
        eth0.addresses,
        vec![IpPrefix {
            address: want,
            prefix_len: 24
        }]
    );
    let gw: IpAddr = format!("10.231.{}.1", ns.subnet).parse().unwrap();
    assert!(
        snap.routes
            .iter()
            .any(|r| r.destination.is_none() && r.gateway == Some(gw) && r.device == "eth0"),
        "{:?}",
        snap.routes
    );
    assert!(snap
        .links
        .iter()
        .any(|l| l.name == "lo" && l.kind.is_empty()));
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn attach_mirrors_the_veth_into_a_tap_and_detach_removes_everything() {
    let ns = PodNetns::new();
    let attached = attach(&ns.path(), 1, false).unwrap();
    assert_eq!(attached.pairs.len(), 1);
    let pair = &attached.pairs[0];
    assert_eq!(pair.tap_name, "tap0_kata");
    assert_eq!(pair.veth.name, "eth0");
    assert_eq!(pair.tap_fds.len(), 1);
    for link in ["eth0", "tap0_kata"] {
        let (kinds, filters) = tc_state(&ns.path(), link).unwrap().expect(link);
        assert!(kinds.iter().any(|k| k == "ingress"), "{link}: {kinds:?}");
        assert_eq!(filters, 1, "{link}");
    }
    let tap = attached
        .snapshot
        .links
        .iter()
        .find(|l| l.name == "tap0_kata");
    assert!(tap.is_none(), "the snapshot is taken before the tap exists");

    // A datagram from the host side to the pod IP makes the host ARP for it: the request
    // enters eth0 and must come out of the tap fd (virtio-net header + Ethernet frame).
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    let mut tap_file = std::fs::File::from(pair.tap_fds[0].as_fd().try_clone_to_owned().unwrap());
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&tap_file),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen_arp = false;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline && !seen_arp {
        let _ = sock.send_to(b"x", (format!("10.231.{}.2", ns.subnet), 9));
        std::thread::sleep(Duration::from_millis(100));
        while let Ok(n) = tap_file.read(&mut buf) {
            // IFF_VNET_HDR: a 10-byte virtio_net_hdr (the kernel's default size) precedes the
            // frame; the ethertype is at 12 in the frame.
            let frame = &buf[10..n];
            if frame.len() > 14 && frame[12..14] == [0x08, 0x06] {
                seen_arp = true;
            }
        }
    }
    assert!(seen_arp, "no ARP request came out of the tap");
    drop(tap_file);

    let names: Vec<(String, String)> = attached
        .pairs
        .iter()
        .map(|p| (p.veth.name.clone(), p.tap_name.clone()))
        .collect();
    drop(attached);
    detach(&ns.path(), &names).unwrap();
    let (kinds, filters) = tc_state(&ns.path(), "eth0").unwrap().unwrap();
    assert!(!kinds.iter().any(|k| k == "ingress"), "{kinds:?}");
    assert_eq!(filters, 0);
    assert_eq!(tc_state(&ns.path(), "tap0_kata").unwrap(), None);
    // Twice is fine: nothing left to remove.
    detach(&ns.path(), &names).unwrap();
}

#[test]
#[ignore = "needs root: creates network namespaces"]
fn a_persisting_tap_fd_does_not_survive_detach() {
    let ns = PodNetns::new();
    let attached = attach(&ns.path(), 2, false).unwrap();
    assert_eq!(attached.pairs[0].tap_fds.len(), 2, "multi-queue tap");
    // detach while the fds are still open (QEMU still running): the tap is deleted anyway.
    detach(&ns.path(), &[("eth0".into(), "tap0_kata".into())]).unwrap();
    assert_eq!(tc_state(&ns.path(), "tap0_kata").unwrap(), None);
}

#[test]
fn paths_that_are_not_network_namespaces_are_refused() {
    let dir = std::env::temp_dir().join(format!("netns-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("plain");
    std::fs::write(&file, b"").unwrap();
    let link = dir.join("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/proc/self/ns/net", &link).unwrap();
    let plain = inspect(&file).unwrap_err();
    let symlink = inspect(&link).unwrap_err();
    // A device node is refused from its O_PATH handle, never opened for I/O.
    let device = inspect(Path::new("/dev/null")).unwrap_err();
    let missing_detach = detach(&dir.join("gone"), &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(plain, NetnsError::NotNamespace { .. }), "{plain}");
    // The symlink itself is what O_PATH|O_NOFOLLOW opens: not an nsfs file, never followed.
    assert!(
        matches!(symlink, NetnsError::NotNamespace { .. }),
        "{symlink}"
    );
    assert!(
        matches!(device, NetnsError::NotNamespace { .. }),
        "{device}"
    );
    missing_detach.unwrap();
}

#[test]
fn tap_names_follow_kata() {
    assert_eq!(tap_name(0), "tap0_kata");
    assert_eq!(tap_name(3), "tap3_kata");
}
