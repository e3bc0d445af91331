//! CopyFile requests for a host tree (reference §3, vectors §2.6 HEAD column) and the record of
//! what each destination already holds, so a re-sync sends only entries that changed.
//!
//! Order: directories breadth-first (parents before children), then regular files, then
//! symlinks. Symlinks go last so a kubelet `..data` swap reaches the guest only after the new
//! `..<timestamp>` directory is complete there.

use std::collections::HashMap;
use std::path::PathBuf;

use transport::varint::put_varint;

use crate::guest::{GuestPath, GuestPathError};
use crate::tree::{Entry, Kind};

pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFLNK: u32 = 0o120_000;
/// dir_mode of a copied tree's top directory (runtime-rs `DIR_MODE_PERMS`).
pub const TOP_DIR_MODE: u32 = S_IFDIR | 0o750;
/// Largest `data` of one request (runtime-go `grpcMaxDataSize`); ttrpc refuses > 4 MiB messages.
pub const CHUNK_BYTES: u64 = (4 << 20) - (64 << 10);
/// An entry changed this close to the scan may change again within the same timestamp tick
/// without its fingerprint showing it (git's "racily clean" problem): it is resent next time.
const RACY_NS: i128 = 100_000_000;

/// The fields of one `CopyFileRequest` except `offset` and `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub path: GuestPath,
    pub file_size: u64,
    pub file_mode: u32,
    pub dir_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn put_uint(out: &mut Vec<u8>, tag: u8, v: u64) {
    if v != 0 {
        out.push(tag);
        put_varint(out, v);
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    if !b.is_empty() {
        out.push(tag);
        put_varint(out, u64::try_from(b.len()).unwrap_or(u64::MAX));
        out.extend_from_slice(b);
    }
}

/// uid/gid travel as proto `int32`; host ids above `i32::MAX` keep their bit pattern, as the
/// Kata runtimes' `as i32` does.
fn int32_field(id: u32) -> u64 {
    u64::from_ne_bytes(i64::from(i32::from_ne_bytes(id.to_ne_bytes())).to_ne_bytes())
}

impl CopyRequest {
    /// Proto3 encoding of `grpc.CopyFileRequest` with `offset` and `data`.
    pub fn encode(&self, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut out = self.encode_head(offset, data.len());
        out.extend_from_slice(data);
        out
    }

    /// The encoding up to `data`'s bytes (every field, then `data`'s tag and length): followed
    /// by the `data_len` bytes themselves it is [`CopyRequest::encode`], so a file chunk is sent
    /// from its read buffer without being copied into the message.
    pub fn encode_head(&self, offset: u64, data_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.path.as_str().len() + 64);
        put_bytes(&mut out, 0x0a, self.path.as_str().as_bytes());
        put_uint(&mut out, 0x10, self.file_size);
        put_uint(&mut out, 0x18, u64::from(self.file_mode));
        put_uint(&mut out, 0x20, u64::from(self.dir_mode));
        put_uint(&mut out, 0x28, int32_field(self.uid));
        put_uint(&mut out, 0x30, int32_field(self.gid));
        put_uint(&mut out, 0x38, offset);
        if data_len > 0 {
            out.push(0x42);
            put_varint(&mut out, u64::try_from(data_len).unwrap_or(u64::MAX));
        }
        out
    }
}

/// One unit of work: a directory or symlink is one request, a file one request per chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub rel: PathBuf,
    pub request: CopyRequest,
    /// Symlinks: the target text sent as `data`.
    pub link: Option<Vec<u8>>,
}

/// What a sync of one destination sends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Directories, breadth-first.
    pub dirs: Vec<Step>,
    pub files: Vec<Step>,
    pub links: Vec<Step>,
    /// Entries that cannot be copied (special files, names that cannot be guest paths).
    pub skipped: Vec<PathBuf>,
}

impl Plan {
    /// Number of entries sent.
    pub fn len(&self) -> usize {
        self.dirs.len() + self.files.len() + self.links.len()
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a destination was sent for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    link: Option<Vec<u8>>,
}

impl Fingerprint {
    fn of(e: &Entry) -> Fingerprint {
        // A directory's size and times change with its children, which are compared themselves.
        let times = e.kind != Kind::Dir;
        Fingerprint {
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: if times { e.size } else { 0 },
            ino: e.ino,
            mtime_ns: if times { e.mtime_ns } else { 0 },
            ctime_ns: if times { e.ctime_ns } else { 0 },
            link: e.link.clone(),
        }
    }
}

/// What one destination holds, as far as this process sent it.
#[derive(Debug, Default, Clone)]
pub struct Sent {
    entries: HashMap<PathBuf, Fingerprint>,
}

impl Sent {
    /// Forgets everything: the next plan sends the whole tree.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of entries recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn unchanged(&self, e: &Entry) -> bool {
        self.entries.get(&e.rel) == Some(&Fingerprint::of(e))
    }

    /// Records a successful sync of `scan` (taken at `scan_ns`, wall clock) minus `failed`:
    /// entries gone from the host are forgotten, racy ones are left unrecorded.
    pub fn commit(&mut self, scan: &[Entry], failed: &[PathBuf], scan_ns: i128) {
        self.entries.clear();
        for e in scan {
            if e.ctime_ns > scan_ns - RACY_NS || failed.contains(&e.rel) {
                continue;
            }
            self.entries.insert(e.rel.clone(), Fingerprint::of(e));
        }
    }
}

fn step(
    dest: &GuestPath,
    e: &Entry,
    file_mode: u32,
    dir_mode: u32,
) -> Result<Step, GuestPathError> {
    let path = if e.rel.as_os_str().is_empty() {
        dest.clone()
    } else {
        dest.join(&e.rel)?
    };
    Ok(Step {
        rel: e.rel.clone(),
        request: CopyRequest {
            path,
            file_size: e.size,
            file_mode,
            dir_mode,
            uid: e.uid,
            gid: e.gid,
        },
        link: e.link.clone(),
    })
}

/// Plans the requests that bring `dest` from `sent` to `scan` (the root entry first).
pub fn plan(dest: &GuestPath, scan: &[Entry], sent: &Sent) -> Plan {
    let mut p = Plan::default();
    for e in scan {
        if sent.unchanged(e) {
            continue;
        }
        let top = e.rel.as_os_str().is_empty();
        let s = match e.kind {
            Kind::Dir if top => step(dest, e, e.mode, TOP_DIR_MODE),
            Kind::Dir => step(dest, e, e.mode, e.mode),
            Kind::File => step(dest, e, e.mode, 0),
            Kind::Symlink => step(dest, e, S_IFLNK, 0),
            Kind::Other => {
                p.skipped.push(e.rel.clone());
                continue;
            }
        };
        let Ok(s) = s else {
            p.skipped.push(e.rel.clone());
            continue;
        };
        match e.kind {
            Kind::Dir => p.dirs.push(s),
            Kind::File => p.files.push(s),
            _ => p.links.push(s),
        }
    }
    p
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
