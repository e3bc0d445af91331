//! mount(2) with Kata's option handling, mount-point creation that remembers what it created,
//! and unmounting with a lazy fallback.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::error::{io_err, GuestError};
use super::mount_options::MountOptions;

/// Flags a bind mount only honours on a second, MS_REMOUNT call.
const BIND_REMOUNT_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

fn mount_err(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> impl FnOnce(Errno) -> GuestError {
    let (source_path, target, fstype, data) = (
        source.to_string(),
        target.to_path_buf(),
        fstype.to_string(),
        data.to_string(),
    );
    move |errno| GuestError::Mount {
        source_path,
        target,
        fstype,
        flags: flags.bits(),
        data,
        errno,
    }
}

/// Mounts `source` on `target`: one mount(2) with the flags and data, a bind remount when a
/// bind mount asks for ro/nosuid/…, then the propagation change if any.
pub fn mount_with_options(
    source: &str,
    target: &Path,
    fstype: &str,
    opts: &MountOptions,
) -> Result<(), GuestError> {
    let bind = opts.flags.contains(MsFlags::MS_BIND);
    let fs = (!bind && !fstype.is_empty()).then_some(fstype);
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    mount(Some(source), target, fs, opts.flags, data)
        .map_err(mount_err(source, target, fstype, opts.flags, &opts.data))?;
    let extra = opts.flags & BIND_REMOUNT_FLAGS;
    if bind && !extra.is_empty() {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(mount_err(
            source,
            target,
            "bind-remount",
            flags,
            "",
        ))?;
    }
    if !opts.propagation.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .map_err(mount_err(
            source,
            target,
            "propagation",
            opts.propagation,
            "",
        ))?;
    }
    Ok(())
}

/// `mkdir -p`, returning the directories it created (outermost first) so they can be removed.
pub fn create_dirs(path: &Path) -> Result<Vec<PathBuf>, GuestError> {
    let mut missing: Vec<PathBuf> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    fs::create_dir_all(path).map_err(io_err("mkdir -p", path))?;
    Ok(missing)
}

/// Creates a mount target: a directory, or an empty file (for a file bind) with its parents.
pub fn create_target(path: &Path, file: bool) -> Result<Vec<PathBuf>, GuestError> {
    if !file {
        return create_dirs(path);
    }
    let mut created = match path.parent() {
        Some(parent) => create_dirs(parent)?,
        None => Vec::new(),
    };
    if fs::symlink_metadata(path).is_err() {
        fs::File::create(path).map_err(io_err("create mount point", path))?;
        created.push(path.to_path_buf());
    }
    Ok(created)
}

/// Removes what [`create_dirs`]/[`create_target`] created, innermost first, keeping anything
/// that is not empty (best effort: cleanup must not fail a removal).
pub fn remove_created(created: &[PathBuf]) {
    for p in created.iter().rev() {
        let is_dir = fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false);
        let _ = if is_dir {
            fs::remove_dir(p)
        } else {
            fs::remove_file(p)
        };
    }
}

/// Unmounts `target`; a busy mount is detached lazily. Not mounted is fine.
pub fn unmount(target: &Path) -> Result<(), GuestError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        Err(_) => umount2(target, MntFlags::MNT_DETACH).map_err(|errno| GuestError::Io {
            op: "umount -l",
            path: target.to_path_buf(),
            source: errno.into(),
        }),
    }
}

/// A mount this agent made, with the directories/files it created for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub target: PathBuf,
    pub created: Vec<PathBuf>,
    /// False for a storage that only created a directory (`local`).
    pub mounted: bool,
}

/// Undoes records in reverse order; returns the first failure after trying them all.
pub fn undo_records(records: &[MountRecord]) -> Result<(), GuestError> {
    let mut first = None;
    for r in records.iter().rev() {
        if r.mounted {
            if let Err(e) = unmount(&r.target) {
                first.get_or_insert(e);
                continue;
            }
        }
        remove_created(&r.created);
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_reports_only_new_directories_and_remove_undoes_them() {
        let base = std::env::temp_dir().join(format!("kata-ts-agent-mkdir-{}", std::process::id()));
        fs::create_dir_all(&base).unwrap();
        let created = create_target(&base.join("a/b/file"), true).unwrap();
        assert_eq!(
            created,
            vec![base.join("a"), base.join("a/b"), base.join("a/b/file")]
        );
        assert!(base.join("a/b/file").is_file());
        remove_created(&created);
        assert!(!base.join("a").exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
