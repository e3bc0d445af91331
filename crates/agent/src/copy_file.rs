//! CopyFile as the Kata agent implements it (`src/agent/src/rpc.rs` `do_copy_file`), with every
//! guest path resolved under the agent's root directory.
//!
//! Kata behaviour kept: the destination must lie under `/run/kata-containers/shared/containers/`;
//! a missing parent is created and given `dir_mode & 0o777` and the owner; `file_mode`'s type
//! bits choose directory (`S_IFDIR`), symlink (`S_IFLNK`, target = `data`) or regular file;
//! regular files are written at `offset` into `<path with extension "tmp">` and renamed once the
//! temp file holds `file_size` bytes; permissions are `file_mode & 0o7777`; uid/gid are applied
//! (-1 keeps the current owner, as chown(2) does). Like Kata, chmod comes before chown, so the
//! kernel drops set-uid/set-gid bits of a file copied to another owner.
//!
//! Stricter than Kata, on purpose (kata-ts never writes outside the shared dir): `..` components
//! and existing symlinks on the way to the destination are refused, so a copied symlink cannot
//! redirect a later copy out of the shared dir (or out of `--root`).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::protocols::agent::CopyFileRequest;

/// Guest directory every CopyFile destination must be under (runtime-rs `DEFAULT_KATA_GUEST_SHARE_DIR`).
pub const CONTAINER_BASE: &str = "/run/kata-containers/shared/containers/";

const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Why a CopyFile request failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyFileError {
    /// The destination is outside the shared containers dir.
    #[error("Path {path:?} does not start with {CONTAINER_BASE}")]
    OutsideSharedDir { path: String },
    /// The destination has a `..` component.
    #[error("Path {path:?} must not contain '..'")]
    ParentComponent { path: String },
    /// An existing directory on the way to the destination is a symlink.
    #[error("Path {path:?} goes through the symlink {link:?}")]
    SymlinkInPath { path: String, link: PathBuf },
    /// `offset` or `file_size` is negative.
    #[error("Path {path:?}: negative {field} {value}")]
    Negative {
        path: String,
        field: &'static str,
        value: i64,
    },
    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl CopyFileError {
    /// True when the request itself is invalid (not a filesystem failure).
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(self, CopyFileError::Io { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CopyFileError + 'a {
    move |source| CopyFileError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The host path of a guest destination: `root` + the guest path, after the containment checks.
pub fn resolve(root: &Path, guest: &str) -> Result<PathBuf, CopyFileError> {
    let rel = Path::new(guest).strip_prefix(CONTAINER_BASE).map_err(|_| {
        CopyFileError::OutsideSharedDir {
            path: guest.to_string(),
        }
    })?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.as_os_str().is_empty() {
        return Err(CopyFileError::ParentComponent {
            path: guest.to_string(),
        });
    }
    let base = root.join(CONTAINER_BASE.trim_start_matches('/'));
    // Every existing ancestor below the root must be a real directory, not a symlink.
    let mut walk = root.to_path_buf();
    let parents = base.strip_prefix(root).unwrap_or(&base).join(rel);
    let mut comps = parents.components().peekable();
    while let Some(c) = comps.next() {
        if comps.peek().is_none() {
            break; // the destination itself may be a symlink we replace
        }
        walk.push(c);
        match fs::symlink_metadata(&walk) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(CopyFileError::SymlinkInPath {
                    path: guest.to_string(),
                    link: walk,
                });
            }
            Ok(_) => {}
            Err(_) => break, // does not exist yet: nothing below it exists either
        }
    }
    Ok(base.join(rel))
}

fn chown(path: &Path, uid: i32, gid: i32) -> Result<(), CopyFileError> {
    // -1 leaves the id unchanged, as chown(2) does with the Kata agent's `uid as u32`.
    let id = |v: i32| u32::try_from(v).ok();
    lchown(path, id(uid), id(gid)).map_err(io_err("lchown", path))
}

fn chmod(path: &Path, mode: u32) -> Result<(), CopyFileError> {
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

/// Applies one CopyFile request under `root`.
pub fn copy_file(root: &Path, req: &CopyFileRequest) -> Result<(), CopyFileError> {
    let path = resolve(root, &req.path)?;
    let negative = |field, value| CopyFileError::Negative {
        path: req.path.clone(),
        field,
        value,
    };
    let offset = u64::try_from(req.offset).map_err(|_| negative("offset", req.offset))?;
    let file_size =
        u64::try_from(req.file_size).map_err(|_| negative("file_size", req.file_size))?;

    if let Some(parent) = path.parent() {
        if !parent.exists() {
            fs::create_dir_all(parent).map_err(io_err("mkdir -p", parent))?;
            chmod(parent, req.dir_mode & 0o777)?;
            chown(parent, req.uid, req.gid)?;
        }
    }

    // Kata tests the type bits with `SFlag::contains`, so S_IFDIR is checked before S_IFLNK.
    if req.file_mode & S_IFDIR == S_IFDIR {
        match fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_err("mkdir", &path)(e));
            }
            _ => {}
        }
        chmod(&path, req.file_mode & 0o7777)?;
        return chown(&path, req.uid, req.gid);
    }

    if req.file_mode & S_IFLNK == S_IFLNK {
        // Kubernetes' atomic `..data` swap re-sends the link: replace what is there.
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&path).map_err(io_err("unlink", &path))?;
        }
        let target = PathBuf::from(OsStr::from_bytes(&req.data));
        symlink(&target, &path).map_err(io_err("symlink", &path))?;
        return chown(&path, req.uid, req.gid);
    }

    let mut tmp = path.clone();
    tmp.set_extension("tmp");
    if offset == 0 {
        // A fresh copy must not inherit bytes of an earlier, abandoned one.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("unlink", &tmp)(e)),
            _ => {}
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&tmp)
        .map_err(io_err("open", &tmp))?;
    file.write_all_at(&req.data, offset)
        .map_err(io_err("write", &tmp))?;
    let size = file.metadata().map_err(io_err("stat", &tmp))?.len();
    if size != file_size {
        return Ok(());
    }
    file.set_permissions(Permissions::from_mode(req.file_mode & 0o7777))
        .map_err(io_err("chmod", &tmp))?;
    chown(&tmp, req.uid, req.gid)?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("kata-ts-agent-copy-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempRoot(p)
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn req(path: &str, file_mode: u32, data: &[u8]) -> CopyFileRequest {
        CopyFileRequest {
            path: format!("{CONTAINER_BASE}{path}"),
            file_size: i64::try_from(data.len()).unwrap(),
            file_mode,
            dir_mode: 0o40750,
            uid: -1,
            gid: -1,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn resolve_rows() {
        let root = Path::new("/r");
        let rows: [(&str, Option<&str>); 6] = [
            (
                "/run/kata-containers/shared/containers/c1/f",
                Some("/r/run/kata-containers/shared/containers/c1/f"),
            ),
            ("/run/kata-containers/shared/containers", None),
            ("/run/kata-containers/shared/containers/", None),
            ("/run/kata-containers/shared/containersX/f", None),
            ("/run/kata-containers/shared/containers/../x", None),
            ("/etc/passwd", None),
        ];
        for (guest, want) in rows {
            assert_eq!(
                resolve(root, guest).ok().as_deref(),
                want.map(Path::new),
                "{guest}"
            );
        }
    }

    #[test]
    fn outside_the_shared_dir_is_an_invalid_argument_naming_the_base() {
        let root = TempRoot::new("outside");
        let mut r = req("x", 0o100644, b"x");
        r.path = "/etc/x".into();
        let e = copy_file(&root.0, &r).unwrap_err();
        assert!(e.is_invalid_argument());
        assert_eq!(
            e.to_string(),
            "Path \"/etc/x\" does not start with /run/kata-containers/shared/containers/"
        );
    }

    #[test]
    fn file_written_with_masked_mode_and_parent_dir_mode() {
        let root = TempRoot::new("file");
        copy_file(&root.0, &req("c/f", 0o100640, b"abc")).unwrap();
        let host = root.0.join("run/kata-containers/shared/containers/c/f");
        assert_eq!(fs::read(&host).unwrap(), b"abc");
        assert_eq!(fs::metadata(&host).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(
            fs::metadata(host.parent().unwrap()).unwrap().mode() & 0o7777,
            0o750
        );
    }

    #[test]
    fn chunks_land_at_their_offsets_and_the_rename_waits_for_the_last() {
        let root = TempRoot::new("chunks");
        let mut first = req("c/big.bin", 0o100600, b"hello ");
        first.file_size = 11;
        copy_file(&root.0, &first).unwrap();
        let host = root
            .0
            .join("run/kata-containers/shared/containers/c/big.bin");
        assert!(!host.exists());
        let mut second = req("c/big.bin", 0o100600, b"world");
        second.file_size = 11;
        second.offset = 6;
        copy_file(&root.0, &second).unwrap();
        assert_eq!(fs::read(&host).unwrap(), b"hello world");
        assert!(!host.with_extension("tmp").exists());
    }

    #[test]
    fn a_fresh_copy_at_offset_0_drops_a_stale_temp_file() {
        let root = TempRoot::new("stale");
        let mut partial = req("c/f.txt", 0o100644, b"0123456789");
        partial.file_size = 100;
        copy_file(&root.0, &partial).unwrap();
        copy_file(&root.0, &req("c/f.txt", 0o100644, b"ab")).unwrap();
        assert_eq!(
            fs::read(root.0.join("run/kata-containers/shared/containers/c/f.txt")).unwrap(),
            b"ab"
        );
    }

    #[test]
    fn negative_offset_is_invalid() {
        let root = TempRoot::new("neg");
        let mut r = req("c/f", 0o100644, b"x");
        r.offset = -1;
        assert!(matches!(
            copy_file(&root.0, &r),
            Err(CopyFileError::Negative {
                field: "offset",
                ..
            })
        ));
    }

    #[test]
    fn symlink_then_dir_through_it_is_refused() {
        let root = TempRoot::new("link");
        copy_file(&root.0, &req("c/l", 0o120777, b"/")).unwrap();
        let e = copy_file(&root.0, &req("c/l/etc", 0o40755, b"")).unwrap_err();
        assert!(matches!(e, CopyFileError::SymlinkInPath { .. }), "{e:?}");
    }
}
