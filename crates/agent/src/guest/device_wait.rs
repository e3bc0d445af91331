//! Finding hot-plugged block devices in sysfs (under `--root`), as the Kata agent does, and
//! waiting for them by polling (the Kata agent listens to uevents; polling sysfs needs no
//! netlink socket and is what a PID 1 agent sees anyway once the kernel has probed the disk).
//!
//! - `blk`: the source is a PCI path (`02/00`, `10/00/01/00`): slot[.function] per bus hop
//!   from the root bus, in hex (Kata `pci::Path`). The first hop is on bus `0000:00`; each
//!   bridge's secondary bus is the one entry of its `pci_bus/` directory (Kata
//!   `pcipath_to_sysfs`). The disk is `<device>/virtio*/block/<name>`.
//! - `scsi`: the source is `<id>:<lun>`; Kata asks every SCSI host to scan `0 <id> <lun>` and
//!   waits for `0:0:<id>:<lun>/block/<name>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::GuestError;
use super::guest_root::GuestRoot;

/// How often sysfs is looked at while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

const ROOT_BUS: &str = "/sys/devices/pci0000:00";
const SCSI_DEVICES: &str = "/sys/bus/scsi/devices";
const SCSI_HOSTS: &str = "/sys/class/scsi_host";
const PCI_RESCAN: &str = "/sys/bus/pci/rescan";

/// One hop of a PCI path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFn {
    pub slot: u8,
    pub function: u8,
}

/// Parses a Kata PCI path: `/`-separated `slot[.function]` in hex, slot < 32, function < 8.
pub fn parse_pci_path(text: &str) -> Result<Vec<SlotFn>, GuestError> {
    let bad = |why: &str| GuestError::BadValue {
        what: "PCI path",
        value: text.to_string(),
        why: why.to_string(),
    };
    if text.is_empty() {
        return Err(bad("empty"));
    }
    text.split('/')
        .map(|hop| {
            let (slot, function) = hop.split_once('.').unwrap_or((hop, "0"));
            let slot = u8::from_str_radix(slot, 16).map_err(|_| bad("slot is not hex"))?;
            let function =
                u8::from_str_radix(function, 16).map_err(|_| bad("function is not hex"))?;
            if slot > 0x1f || function > 7 {
                return Err(bad("slot or function out of range"));
            }
            Ok(SlotFn { slot, function })
        })
        .collect()
}

/// The sysfs directory of the device at `path`; `None` while a bridge on the way has no
/// secondary bus yet (still being probed).
pub fn pci_device_dir(root: &GuestRoot, path: &[SlotFn]) -> Result<Option<PathBuf>, GuestError> {
    let mut dir = root.resolve(ROOT_BUS)?;
    let mut bus = "0000:00".to_string();
    for (i, hop) in path.iter().enumerate() {
        dir.push(format!("{bus}:{:02x}.{:x}", hop.slot, hop.function));
        if i + 1 == path.len() {
            break;
        }
        let Some(child) = only_entry(&dir.join("pci_bus")) else {
            return Ok(None);
        };
        bus = child;
    }
    Ok(Some(dir))
}

fn only_entry(dir: &Path) -> Option<String> {
    let mut names = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok());
    let first = names.next()?;
    names.next().is_none().then_some(first)
}

fn first_entry(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The block device name (`vda`) of the virtio disk at `path`, if it is there yet.
pub fn find_pci_block(root: &GuestRoot, path: &[SlotFn]) -> Result<Option<String>, GuestError> {
    let Some(dev) = pci_device_dir(root, path)? else {
        return Ok(None);
    };
    let Ok(entries) = fs::read_dir(&dev) else {
        return Ok(None);
    };
    let mut virtio: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("virtio"))
        .map(|e| e.path().join("block"))
        .collect();
    virtio.sort();
    virtio.push(dev.join("block"));
    Ok(virtio.iter().find_map(|b| first_entry(b)))
}

/// Parses a SCSI address `<id>:<lun>`.
pub fn parse_scsi_addr(text: &str) -> Result<(u32, u32), GuestError> {
    let bad = || GuestError::BadValue {
        what: "SCSI address",
        value: text.to_string(),
        why: "want <id>:<lun>".into(),
    };
    let (id, lun) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        id.parse().map_err(|_| bad())?,
        lun.parse().map_err(|_| bad())?,
    ))
}

/// Asks every SCSI host to scan for `<id>:<lun>` (channel 0), as the Kata agent does; hosts
/// that refuse are skipped (the device may already be there).
pub fn scan_scsi(root: &GuestRoot, (id, lun): (u32, u32)) {
    let Ok(hosts) = root.resolve(SCSI_HOSTS).map(fs::read_dir) else {
        return;
    };
    for host in hosts.into_iter().flatten().flatten() {
        write_existing(&host.path().join("scan"), &format!("0 {id} {lun}"));
    }
}

/// Asks the kernel to rescan the PCI buses, as the Kata agent does before looking for a
/// hot-plugged PCI device (a device behind a bridge without hotplug support shows up only then).
pub fn rescan_pci(root: &GuestRoot) {
    if let Ok(p) = root.resolve(PCI_RESCAN) {
        write_existing(&p, "1");
    }
}

/// Writes to a sysfs attribute if it exists (never creates a file); failures are ignored.
fn write_existing(path: &Path, text: &str) {
    if let Ok(mut f) = fs::OpenOptions::new().write(true).open(path) {
        let _ = std::io::Write::write_all(&mut f, text.as_bytes());
    }
}

/// The block device name of SCSI disk `0:0:<id>:<lun>`, if it is there yet. Kata's guest has
/// one SCSI host (virtio-scsi, host 0); ours may have others first (q35's AHCI registers SCSI
/// hosts when its driver is loaded), so `<host>:0:<id>:<lun>` on another host is accepted when
/// host 0 has no such disk, preferring a host under a virtio device.
pub fn find_scsi_block(
    root: &GuestRoot,
    (id, lun): (u32, u32),
) -> Result<Option<String>, GuestError> {
    let devices = root.resolve(SCSI_DEVICES)?;
    let suffix = format!(":0:{id}:{lun}");
    let Ok(entries) = fs::read_dir(&devices) else {
        return Ok(None);
    };
    let mut hosts: Vec<(bool, u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let host: u32 = name.strip_suffix(&suffix)?.parse().ok()?;
            let real = fs::canonicalize(e.path()).unwrap_or_else(|_| e.path());
            let virtio = real.to_string_lossy().contains("/virtio");
            Some((host != 0 && !virtio, host, e.path()))
        })
        .collect();
    hosts.sort();
    Ok(hosts
        .iter()
        .find_map(|(_, _, p)| first_entry(&p.join("block"))))
}

/// Calls `probe` every [`POLL_INTERVAL`] until it yields a value or `timeout` passes.
pub fn poll_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, GuestError>,
) -> Result<Option<T>, GuestError> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe()? {
            return Ok(Some(v));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeSysfs(PathBuf);

    impl FakeSysfs {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("kata-ts-agent-sysfs-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            FakeSysfs(dir)
        }
        fn mkdir(&self, p: &str) {
            fs::create_dir_all(self.0.join(p.trim_start_matches('/'))).unwrap();
        }
        fn root(&self) -> GuestRoot {
            GuestRoot::new(self.0.clone())
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn parses_pci_paths() {
        assert_eq!(
            parse_pci_path("02/00").unwrap(),
            vec![
                SlotFn {
                    slot: 2,
                    function: 0
                },
                SlotFn {
                    slot: 0,
                    function: 0
                }
            ]
        );
        assert_eq!(
            parse_pci_path("1f.7").unwrap(),
            vec![SlotFn {
                slot: 0x1f,
                function: 7
            }]
        );
        for bad in ["", "02/", "zz", "20", "01.8", "02//00"] {
            assert!(parse_pci_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_a_virtio_disk_behind_bridges() {
        let fs_ = FakeSysfs::new("pci");
        let root = fs_.root();
        let path = parse_pci_path("10/00/01/00").unwrap();
        assert_eq!(
            find_pci_block(&root, &path).unwrap(),
            None,
            "nothing plugged yet"
        );
        let b0 = "/sys/devices/pci0000:00/0000:00:10.0";
        fs_.mkdir(&format!("{b0}/pci_bus/0000:01"));
        let b1 = format!("{b0}/0000:01:00.0");
        fs_.mkdir(&format!("{b1}/pci_bus/0000:02"));
        let b2 = format!("{b1}/0000:02:01.0");
        fs_.mkdir(&format!("{b2}/pci_bus/0000:03"));
        assert_eq!(
            find_pci_block(&root, &path).unwrap(),
            None,
            "device not probed yet"
        );
        fs_.mkdir(&format!("{b2}/0000:03:00.0/virtio4/block/vdb"));
        assert_eq!(
            find_pci_block(&root, &path).unwrap().as_deref(),
            Some("vdb")
        );
        fs_.mkdir("/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda");
        assert_eq!(
            find_pci_block(&root, &parse_pci_path("02").unwrap())
                .unwrap()
                .as_deref(),
            Some("vda")
        );
    }

    #[test]
    fn finds_a_scsi_disk_by_id_and_lun() {
        let fs_ = FakeSysfs::new("scsi");
        let root = fs_.root();
        let addr = parse_scsi_addr("1:2").unwrap();
        assert_eq!(find_scsi_block(&root, addr).unwrap(), None);
        fs_.mkdir("/sys/bus/scsi/devices/0:0:1:2/block/sdb");
        fs_.mkdir("/sys/bus/scsi/devices/0:0:1:3/block/sdc");
        assert_eq!(
            find_scsi_block(&root, addr).unwrap().as_deref(),
            Some("sdb")
        );
        fs_.mkdir("/sys/bus/scsi/devices/6:0:4:0/block/sdd");
        assert_eq!(
            find_scsi_block(&root, (4, 0)).unwrap().as_deref(),
            Some("sdd"),
            "virtio-scsi behind other SCSI hosts"
        );
        assert!(parse_scsi_addr("1").is_err());
        assert!(parse_scsi_addr("a:b").is_err());
    }

    #[test]
    fn poll_until_gives_up_after_the_timeout() {
        let start = Instant::now();
        let got: Option<()> = poll_until(Duration::from_millis(60), || Ok(None)).unwrap();
        assert!(got.is_none());
        assert!(start.elapsed() >= Duration::from_millis(60));
        let mut n = 0;
        assert_eq!(
            poll_until(Duration::from_secs(5), || {
                n += 1;
                Ok((n == 3).then_some(n))
            })
            .unwrap(),
            Some(3)
        );
    }
}
