//! Filesystem steps of CopyFile on directory descriptors. Every name below `--root` may have been
//! planted by a container (a symlink, FIFO or device in its rw volume), so nothing here follows
//! a link or opens an existing non-directory: directories are opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and `O_NOFOLLOW`
//! one name at a time, files are only ever created (`O_CREAT | O_EXCL | O_NOFOLLOW`) under an
//! unguessable temp name and renamed into place with `renameat`, and modes and owners are set
//! on descriptors (`fchmod`, `fchown`) or without following (`AT_SYMLINK_NOFOLLOW`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{
    chownat, fchmod, fchown, mkdirat, openat2, renameat, statat, symlinkat, unlinkat, AtFlags,
    FileType, Gid, Mode, OFlags, ResolveFlags, Uid,
};
use rustix::io::Errno;

/// Resolution for every open: stay below the directory, follow no link of any kind.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
/// Name bytes of the destination kept in its temp name (names are at most 255 bytes).
const TEMP_STEM_MAX: usize = 200;

/// A failed step: what, on which name, and the errno.
#[derive(Debug)]
pub struct StepError {
    pub op: &'static str,
    pub name: OsString,
    pub errno: Errno,
}

impl StepError {
    /// The step met a symlink, a magic link or a non-directory where it needed a directory.
    pub fn is_link_or_not_dir(&self) -> bool {
        matches!(self.errno, Errno::LOOP | Errno::XDEV | Errno::NOTDIR)
    }

    pub fn into_io(self) -> io::Error {
        io::Error::from(self.errno)
    }
}

fn step<'a>(op: &'static str, name: &'a OsStr) -> impl FnOnce(Errno) -> StepError + 'a {
    move |errno| StepError {
        op,
        name: name.to_os_string(),
        errno,
    }
}

/// Owner ids as chown(2) takes them: -1 (any negative) keeps the current one.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: Option<Uid>,
    pub gid: Option<Gid>,
}

impl Owner {
    pub fn new(uid: i32, gid: i32) -> Owner {
        Owner {
            uid: u32::try_from(uid).ok().map(Uid::from_raw),
            gid: u32::try_from(gid).ok().map(Gid::from_raw),
        }
    }
}

/// Opens the directory `name` in `dir` without following anything.
pub fn open_dir(dir: impl AsFd, name: &OsStr) -> Result<OwnedFd, StepError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    openat2(dir, name, flags, Mode::empty(), RESOLVE).map_err(step("open directory", name))
}

/// Opens `root` itself (the agent's own `--root`, trusted) as the base of every walk.
pub fn open_root(root: &Path) -> Result<OwnedFd, StepError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    rustix::fs::open(root, flags, Mode::empty()).map_err(step("open root", root.as_os_str()))
}

/// Walks `names` from `root`, creating what is missing (0755); the last directory, when this
/// call created it, gets `last_mode` and `owner` as Kata gives a missing parent `dir_mode`.
pub fn walk_dirs(
    root: OwnedFd,
    names: &[&OsStr],
    last_mode: u32,
    owner: Owner,
) -> Result<OwnedFd, StepError> {
    let mut cur = root;
    for (i, name) in names.iter().enumerate() {
        let (fd, created) = match open_dir(&cur, name) {
            Ok(fd) => (fd, false),
            Err(e) if e.errno == Errno::NOENT => {
                match mkdirat(&cur, *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(step("mkdir", name)(e)),
                }
                (open_dir(&cur, name)?, true)
            }
            Err(e) => return Err(e),
        };
        if created && i + 1 == names.len() {
            set_mode_owner(&fd, name, last_mode, owner)?;
        }
        cur = fd;
    }
    Ok(cur)
}

/// chmod, then chown (as Kata orders them: the kernel then drops set-id bits on a new owner).
fn set_mode_owner(fd: impl AsFd, name: &OsStr, mode: u32, owner: Owner) -> Result<(), StepError> {
    fchmod(&fd, Mode::from_raw_mode(mode)).map_err(step("chmod", name))?;
    fchown(&fd, owner.uid, owner.gid).map_err(step("chown", name))
}

/// Makes `name` in `dir` a directory with `mode` and `owner`. A non-directory already there (a
/// link the host since replaced by a directory, a planted FIFO) is unlinked, never followed.
pub fn make_dir(dir: &OwnedFd, name: &OsStr, mode: u32, owner: Owner) -> Result<(), StepError> {
    match mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(step("lstat", name))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                unlinkat(dir, name, AtFlags::empty()).map_err(step("unlink", name))?;
                mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(step("mkdir", name))?;
            }
        }
        Err(e) => return Err(step("mkdir", name)(e)),
    }
    // Opened O_NOFOLLOW: if the directory was swapped for a link meanwhile, this fails.
    let fd = open_dir(dir, name)?;
    set_mode_owner(&fd, name, mode, owner)
}

/// A fresh name next to `name`: `.<name>.<16 random hex digits>.tmp`.
pub fn temp_name(name: &OsStr) -> Result<OsString, StepError> {
    let mut random = [0u8; 8];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(step("getrandom", name))?;
    let stem = &name.as_bytes()[..name.len().min(TEMP_STEM_MAX)];
    let mut out = Vec::with_capacity(stem.len() + 22);
    out.push(b'.');
    out.extend_from_slice(stem);
    out.push(b'.');
    for b in random {
        out.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    out.extend_from_slice(b".tmp");
    Ok(OsString::from_vec(out))
}

/// Creates a new temp file next to `name`, exclusively (a planted name makes it fail, never
/// redirects it); returns its name and the open file.
pub fn create_temp(dir: &OwnedFd, name: &OsStr) -> Result<(OsString, File), StepError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let tmp = temp_name(name)?;
    let fd = openat2(dir, &tmp, flags, Mode::from_raw_mode(0o600), RESOLVE)
        .map_err(step("create", &tmp))?;
    Ok((tmp, File::from(fd)))
}

/// Gives the complete temp file its mode and owner and renames it over `name` (a link or file
/// there is replaced, not followed).
pub fn finish_file(
    dir: &OwnedFd,
    file: &File,
    tmp: &OsStr,
    name: &OsStr,
    mode: u32,
    owner: Owner,
) -> Result<(), StepError> {
    set_mode_owner(file, tmp, mode, owner)?;
    renameat(dir, tmp, dir, name).map_err(step("rename", tmp))
}

/// Creates the symlink `name` -> `target` under a temp name, owns it without following, and
/// renames it over `name` (Kubernetes' `..data` swap re-sends the link).
pub fn make_symlink(
    dir: &OwnedFd,
    name: &OsStr,
    target: &OsStr,
    owner: Owner,
) -> Result<(), StepError> {
    let tmp = temp_name(name)?;
    symlinkat(target, dir, &tmp).map_err(step("symlink", &tmp))?;
    let placed = chownat(dir, &tmp, owner.uid, owner.gid, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(step("chown", &tmp))
        .and_then(|()| renameat(dir, &tmp, dir, name).map_err(step("rename", &tmp)));
    if placed.is_err() {
        remove_temp(dir, &tmp);
    }
    placed
}

/// Removes a temp file this agent created (best effort: it may already be gone).
pub fn remove_temp(dir: &OwnedFd, tmp: &OsStr) {
    let _ = unlinkat(dir, tmp, AtFlags::empty());
}
