//! CopyFile as the Kata agent implements it (`src/agent/src/rpc.rs` `do_copy_file`), with every
//! guest path resolved under the agent's root directory.
//!
//! Kata behaviour kept: the destination must lie under `/run/kata-containers/shared/containers/`;
//! a missing parent is created and given `dir_mode & 0o777` and the owner; `file_mode`'s type
//! bits choose directory (`S_IFDIR`), symlink (`S_IFLNK`, target = `data`) or regular file;
//! regular files are written at `offset` into a temp file and renamed once it holds `file_size`
//! bytes; permissions are `file_mode & 0o7777`; uid/gid are applied (-1 keeps the current owner,
//! as chown(2) does). Like Kata, chmod comes before chown, so the kernel drops set-uid/set-gid
//! bits of a file copied to another owner.
//!
//! Stricter than Kata, on purpose, because the share is hostile (a container can plant any name
//! in its rw volumes and the agent runs as root): no link is followed and no existing
//! non-directory is opened on the way to or at the destination (see `beneath.rs`); temp files
//! have unguessable names, are created exclusively and live in memory per destination
//! (`streams.rs`), so `c.yaml` and `c.json` never share one; a chunk at offset > 0 must continue
//! a stream this agent holds; a directory copied over a link replaces the link.

mod beneath;
pub mod streams;

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::beneath::{Owner, StepError};
use self::streams::{Stream, Streams, MAX_STREAMS};
use crate::guest_path::{relative, GuestPathError};
use crate::protocols::agent::CopyFileRequest;

/// Guest directory every CopyFile destination must be under (runtime-rs `DEFAULT_KATA_GUEST_SHARE_DIR`).
pub const CONTAINER_BASE: &str = "/run/kata-containers/shared/containers/";
/// How long a multi-chunk stream may wait for its next chunk before its temp file is removed.
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(60);

const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Why a CopyFile request failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyFileError {
    /// The path is not absolute or has `..`.
    #[error(transparent)]
    Path(#[from] GuestPathError),
    /// The destination is outside the shared containers dir.
    #[error("Path {path:?} does not start with {CONTAINER_BASE}")]
    OutsideSharedDir { path: String },
    /// A name on the way to the destination is a symlink or not a directory.
    #[error("Path {path:?} goes through the symlink or non-directory {name:?}")]
    SymlinkInPath { path: String, name: PathBuf },
    /// `offset` or `file_size` is negative.
    #[error("Path {path:?}: negative {field} {value}")]
    Negative {
        path: String,
        field: &'static str,
        value: i64,
    },
    /// The chunk ends past `file_size`.
    #[error(
        "Path {path:?}: chunk at offset {offset} of {len} bytes ends past file_size {file_size}"
    )]
    PastSize {
        path: String,
        offset: u64,
        len: usize,
        file_size: u64,
    },
    /// A chunk at offset > 0 with no stream started at offset 0 (or one abandoned since).
    #[error("Path {path:?}: no copy in progress to continue at offset {offset}")]
    NoStream { path: String, offset: u64 },
    /// Too many unfinished multi-chunk copies.
    #[error("Path {path:?}: {MAX_STREAMS} copies already in progress")]
    TooManyStreams { path: String },
    /// A filesystem operation failed.
    #[error("{op} {name:?} for {path:?}: {source}")]
    Io {
        op: &'static str,
        path: String,
        name: PathBuf,
        source: io::Error,
    },
}

impl CopyFileError {
    /// True when the request itself is invalid (not a filesystem failure).
    pub fn is_invalid_argument(&self) -> bool {
        !matches!(
            self,
            CopyFileError::Io { .. } | CopyFileError::TooManyStreams { .. }
        )
    }

    fn from_step(path: &str, e: StepError) -> CopyFileError {
        let name = PathBuf::from(&e.name);
        if e.is_link_or_not_dir() && e.op == "open directory" {
            return CopyFileError::SymlinkInPath {
                path: path.to_string(),
                name,
            };
        }
        CopyFileError::Io {
            op: e.op,
            path: path.to_string(),
            name,
            source: e.into_io(),
        }
    }
}

/// What a request asks for, decided from `file_mode` before anything is touched.
#[derive(Debug, PartialEq, Eq)]
enum Kind<'a> {
    Dir,
    Symlink(&'a OsStr),
    File { offset: u64, file_size: u64 },
}

fn kind(req: &CopyFileRequest) -> Result<Kind<'_>, CopyFileError> {
    // Kata tests the type bits with `SFlag::contains`, so S_IFDIR is checked before S_IFLNK.
    if req.file_mode & S_IFDIR == S_IFDIR {
        return Ok(Kind::Dir);
    }
    if req.file_mode & S_IFLNK == S_IFLNK {
        return Ok(Kind::Symlink(OsStr::from_bytes(&req.data)));
    }
    let negative = |field, value| CopyFileError::Negative {
        path: req.path.clone(),
        field,
        value,
    };
    let offset = u64::try_from(req.offset).map_err(|_| negative("offset", req.offset))?;
    let file_size =
        u64::try_from(req.file_size).map_err(|_| negative("file_size", req.file_size))?;
    let end = u64::try_from(req.data.len())
        .ok()
        .and_then(|n| n.checked_add(offset));
    if !matches!(end, Some(e) if e <= file_size) {
        return Err(CopyFileError::PastSize {
            path: req.path.clone(),
            offset,
            len: req.data.len(),
            file_size,
        });
    }
    Ok(Kind::File { offset, file_size })
}

/// The destination relative to the root (the key of its stream), after the containment checks.
pub fn resolve(guest: &str) -> Result<PathBuf, CopyFileError> {
    let rel = relative(guest)?;
    let base = Path::new(CONTAINER_BASE.trim_start_matches('/'));
    match rel.strip_prefix(base) {
        Ok(below) if !below.as_os_str().is_empty() => Ok(rel),
        _ => Err(CopyFileError::OutsideSharedDir {
            path: guest.to_string(),
        }),
    }
}

/// The CopyFile side of the agent: its root and the streams in progress.
#[derive(Debug)]
pub struct CopyFiles {
    root: PathBuf,
    streams: Streams,
}

impl CopyFiles {
    pub fn new(root: PathBuf) -> CopyFiles {
        CopyFiles {
            root,
            streams: Streams::default(),
        }
    }

    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// Applies one CopyFile request under the root.
    pub fn apply(&self, req: &CopyFileRequest) -> Result<(), CopyFileError> {
        let rel = resolve(&req.path)?;
        let kind = kind(req)?;
        let step = |e| CopyFileError::from_step(&req.path, e);
        let owner = Owner::new(req.uid, req.gid);
        let mode = req.file_mode & 0o7777;
        if let Kind::File { offset, file_size } = kind {
            if offset > 0 {
                let stream = self.streams.take(&rel).ok_or(CopyFileError::NoStream {
                    path: req.path.clone(),
                    offset,
                })?;
                return self.write_chunk(req, rel, stream, offset, file_size);
            }
        }
        let names: Vec<&OsStr> = rel.iter().collect();
        let Some((name, parents)) = names.split_last() else {
            return Err(CopyFileError::OutsideSharedDir {
                path: req.path.clone(),
            });
        };
        let root = beneath::open_root(&self.root).map_err(step)?;
        let dir = beneath::walk_dirs(root, parents, req.dir_mode & 0o777, owner).map_err(step)?;
        match kind {
            Kind::Dir => beneath::make_dir(&dir, name, mode, owner).map_err(step),
            Kind::Symlink(target) => beneath::make_symlink(&dir, name, target, owner).map_err(step),
            Kind::File { file_size, .. } => {
                // A fresh copy replaces an unfinished one of the same destination.
                self.streams.discard(&rel);
                if !self.streams.has_room(&rel) {
                    return Err(CopyFileError::TooManyStreams {
                        path: req.path.clone(),
                    });
                }
                let (tmp, file) = beneath::create_temp(&dir, name).map_err(step)?;
                self.write_chunk(req, rel, Stream::new(dir, tmp, file), 0, file_size)
            }
        }
    }

    /// Writes a chunk into the stream's temp file; the chunk that completes it renames it into
    /// place, any other puts the stream back. A failure drops the stream and its temp file.
    fn write_chunk(
        &self,
        req: &CopyFileRequest,
        rel: PathBuf,
        stream: Stream,
        offset: u64,
        file_size: u64,
    ) -> Result<(), CopyFileError> {
        let io = |op, source| CopyFileError::Io {
            op,
            path: req.path.clone(),
            name: PathBuf::from(&stream.tmp),
            source,
        };
        stream
            .file
            .write_all_at(&req.data, offset)
            .map_err(|e| io("write", e))?;
        let size = stream.file.metadata().map_err(|e| io("stat", e))?.len();
        if size != file_size {
            self.streams.put_back(rel, stream);
            return Ok(());
        }
        let name = rel.file_name().unwrap_or_default();
        let owner = Owner::new(req.uid, req.gid);
        let mode = req.file_mode & 0o7777;
        beneath::finish_file(&stream.dir, &stream.file, &stream.tmp, name, mode, owner)
            .map_err(|e| CopyFileError::from_step(&req.path, e))?;
        stream.placed();
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
