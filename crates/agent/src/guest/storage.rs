//! Storages (`grpc.Storage`) by driver, as the Kata agent's storage handlers
//! (`src/agent/src/storage/*.rs`) carry them out: find or wait for the backing device, create
//! the mount point, mount with the request's fstype and options.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;

use super::device_wait::{
    find_pci_block, find_scsi_block, parse_pci_path, parse_scsi_addr, poll_until, rescan_pci,
    scan_scsi,
};
use super::error::{io_err, GuestError, StorageName};
use super::guest_root::GuestRoot;
use super::mount::{create_dirs, create_target, mount_with_options, MountRecord};
use super::mount_options::{option_value, parse_mount_options};
use crate::protocols::agent::Storage;

/// Storage drivers this agent carries out (reported by GetGuestDetails).
pub const STORAGE_DRIVERS: &[&str] = &[
    "blk",
    "mmioblk",
    "nvdimm",
    "scsi",
    "ephemeral",
    "local",
    "virtio-fs",
    "9p",
    "watchable-bind",
    "bind",
];

/// The storage's name for error messages.
pub fn storage_name(s: &Storage) -> StorageName {
    StorageName {
        driver: s.driver.clone(),
        source: s.source.clone(),
        mount_point: s.mount_point.clone(),
    }
}

/// Carries out one storage; the record says how to undo it.
pub fn mount_storage(
    root: &GuestRoot,
    s: &Storage,
    device_timeout: Duration,
) -> Result<MountRecord, GuestError> {
    let name = storage_name(s);
    carry_out(root, s, device_timeout).map_err(|e| e.in_storage(&name))
}

fn carry_out(root: &GuestRoot, s: &Storage, timeout: Duration) -> Result<MountRecord, GuestError> {
    if s.mount_point.is_empty() {
        return Err(GuestError::Missing {
            field: "Storage.mount_point",
        });
    }
    let target = root.resolve(&s.mount_point)?;
    match s.driver.as_str() {
        "blk" => {
            let path = parse_pci_path(&s.source)?;
            if find_pci_block(root, &path)?.is_none() {
                rescan_pci(root);
            }
            let dev = wait_device(s, timeout, || find_pci_block(root, &path))?;
            mount_device(root, s, &dev, &target, timeout)
        }
        "scsi" => {
            let addr = parse_scsi_addr(&s.source)?;
            scan_scsi(root, addr);
            let dev = wait_device(s, timeout, || find_scsi_block(root, addr))?;
            mount_device(root, s, &dev, &target, timeout)
        }
        // The source is the device node itself (`/dev/vdb`, `/dev/pmem0`).
        "mmioblk" | "nvdimm" => {
            let node = root.resolve(&s.source)?;
            wait_device(s, timeout, || Ok(node.exists().then_some(())))?;
            mount_at(s, &node.to_string_lossy(), &target, &s.fstype, false)
        }
        "ephemeral" | "virtio-fs" | "9p" => {
            let fstype = match (s.fstype.as_str(), s.driver.as_str()) {
                ("", "virtio-fs") => "virtiofs",
                ("", "9p") => "9p",
                ("", _) => "tmpfs",
                (f, _) => f,
            };
            mount_at(s, &s.source, &target, fstype, false)
        }
        "watchable-bind" | "bind" => {
            let source = root.resolve(&s.source)?;
            let file = !fs::metadata(&source)
                .map_err(io_err("stat bind source", &source))?
                .is_dir();
            mount_at(s, &source.to_string_lossy(), &target, "bind", file)
        }
        "local" => local(s, &target),
        other => Err(GuestError::BadValue {
            what: "storage driver",
            value: other.to_string(),
            why: "unsupported".into(),
        }),
    }
}

/// UpdateEphemeralMounts (Kata `update_ephemeral_mounts`): remounts an `ephemeral` tmpfs with
/// the storage's options, e.g. a new `size=` for a resized memory-backed volume. Other drivers
/// are skipped, as in Kata.
pub fn remount_ephemeral(root: &GuestRoot, s: &Storage) -> Result<(), GuestError> {
    if s.driver != "ephemeral" {
        return Ok(());
    }
    let name = storage_name(s);
    let target = root
        .resolve(&s.mount_point)
        .map_err(|e| e.in_storage(&name))?;
    let mut opts = parse_mount_options(&s.options);
    opts.flags.insert(MsFlags::MS_REMOUNT);
    mount_with_options("tmpfs", &target, "tmpfs", &opts).map_err(|e| e.in_storage(&name))
}

/// Waits for `probe` to find the device; the timeout error names the storage.
fn wait_device<T>(
    s: &Storage,
    timeout: Duration,
    probe: impl FnMut() -> Result<Option<T>, GuestError>,
) -> Result<T, GuestError> {
    poll_until(timeout, probe)?.ok_or_else(|| GuestError::DeviceTimeout {
        storage: storage_name(s),
        device: format!("{} {}", s.driver, s.source),
        timeout_ms: timeout.as_millis(),
    })
}

/// Mounts `/dev/<name>`: a filesystem, or (fstype `bind`, a raw block volume) the node itself
/// bound onto a file. The disk's sysfs entry and device node appear before the disk can be
/// opened (the kernel holds back its uevent until then, which is what Kata's agent waits for);
/// opening too early gives ENXIO (or ENOENT before devtmpfs made the node), so wait until an
/// open succeeds.
fn mount_device(
    root: &GuestRoot,
    s: &Storage,
    name: &str,
    target: &Path,
    timeout: Duration,
) -> Result<MountRecord, GuestError> {
    let node = root.resolve(&format!("/dev/{name}"))?;
    wait_device(s, timeout, || match fs::File::open(&node) {
        Ok(_) => Ok(Some(())),
        Err(e)
            if e.raw_os_error() == Some(nix::libc::ENXIO)
                || e.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(io_err("open device", &node)(e)),
    })?;
    let node = node.to_string_lossy();
    if s.fstype == "bind" {
        mount_at(s, &node, target, "bind", true)
    } else {
        mount_at(s, &node, target, &s.fstype, false)
    }
}

fn mount_at(
    s: &Storage,
    source: &str,
    target: &Path,
    fstype: &str,
    file: bool,
) -> Result<MountRecord, GuestError> {
    let mut opts = parse_mount_options(&s.options);
    if fstype == "bind" {
        opts.flags.insert(MsFlags::MS_BIND);
    }
    let created = create_target(target, file)?;
    if let Err(e) = mount_with_options(source, target, fstype, &opts) {
        super::mount::remove_created(&created);
        return Err(e);
    }
    Ok(MountRecord {
        target: target.to_path_buf(),
        created,
        mounted: true,
    })
}

/// `local`: a directory, with `mode=<octal>` from the options when given (Kata
/// `local_storage_handler`).
fn local(s: &Storage, target: &Path) -> Result<MountRecord, GuestError> {
    let mode = option_value(&s.options, "mode")
        .map(|m| {
            u32::from_str_radix(m, 8).map_err(|e| GuestError::BadValue {
                what: "mode option",
                value: m.to_string(),
                why: e.to_string(),
            })
        })
        .transpose()?;
    let created = create_dirs(target)?;
    if let Some(mode) = mode {
        fs::set_permissions(target, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", target))?;
    }
    Ok(MountRecord {
        target: PathBuf::from(target),
        created,
        mounted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(driver: &str, source: &str, mount_point: &str, options: &[&str]) -> Storage {
        Storage {
            driver: driver.into(),
            source: source.into(),
            mount_point: mount_point.into(),
            options: options.iter().map(|o| (*o).to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn local_creates_the_directory_with_its_mode() {
        let dir = std::env::temp_dir().join(format!("kata-ts-agent-local-{}", std::process::id()));
        let root = GuestRoot::new(dir.clone());
        let rec = mount_storage(
            &root,
            &storage("local", "", "/run/x/local", &["mode=0777"]),
            Duration::ZERO,
        )
        .unwrap();
        let meta = fs::metadata(dir.join("run/x/local")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o777);
        assert!(!rec.mounted);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_blk_device_times_out_naming_the_storage() {
        let dir = std::env::temp_dir().join(format!("kata-ts-agent-blk-{}", std::process::id()));
        let root = GuestRoot::new(dir.clone());
        let err = mount_storage(
            &root,
            &storage("blk", "02/00", "/run/r", &[]),
            Duration::from_millis(30),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"blk\"") && msg.contains("\"02/00\"") && msg.contains("\"/run/r\""),
            "{msg}"
        );
        assert_eq!(err.code(), ttrpc::Code::NOT_FOUND);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_drivers_and_bad_sources_are_invalid_arguments() {
        let root = GuestRoot::new("/nonexistent-kata-ts".into());
        for s in [
            storage("image_guest_pull", "x", "/run/a", &[]),
            storage("blk", "zz", "/run/a", &[]),
            storage("scsi", "1", "/run/a", &[]),
        ] {
            let err = mount_storage(&root, &s, Duration::ZERO).unwrap_err();
            assert_eq!(err.code(), ttrpc::Code::INVALID_ARGUMENT, "{err}");
            assert!(
                err.to_string().contains(&format!("{:?}", s.driver)),
                "{err}"
            );
        }
    }
}
