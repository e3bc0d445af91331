//! Listing a host tree as lstat sees it: symlinks are entries, never followed, so nothing
//! outside the tree is read. Order is breadth-first by name, parents before children.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices: not copied.
    Other,
}

/// One host entry, from `lstat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the tree root; empty for the root itself.
    pub rel: PathBuf,
    pub kind: Kind,
    /// Full `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: byte length; symlinks: length of the target text.
    pub size: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    /// Symlinks: the target text.
    pub link: Option<Vec<u8>>,
}

/// Why a tree could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root itself could not be read.
    #[error("lstat {path:?}: {source}")]
    Root { path: PathBuf, source: io::Error },
}

fn nanos(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

fn entry(path: &Path, rel: PathBuf) -> io::Result<Entry> {
    let m = fs::symlink_metadata(path)?;
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    let link = match kind {
        Kind::Symlink => Some(fs::read_link(path)?.as_os_str().as_bytes().to_vec()),
        _ => None,
    };
    let size = match (&kind, &link) {
        (Kind::Symlink, Some(l)) => u64::try_from(l.len()).unwrap_or(u64::MAX),
        (Kind::File, _) => m.len(),
        _ => 0,
    };
    Ok(Entry {
        rel,
        kind,
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        size,
        ino: m.ino(),
        mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
        ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
        link,
    })
}

/// Lists `root` (a directory or a single file) and everything below it. Entries that vanish
/// while listing are left out: the change that removed them is seen by the watcher.
pub fn scan(root: &Path) -> Result<Vec<Entry>, ScanError> {
    let top = entry(root, PathBuf::new()).map_err(|source| ScanError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let is_dir = top.kind == Kind::Dir;
    let mut out = vec![top];
    if !is_dir {
        return Ok(out);
    }
    let mut queue = VecDeque::from([PathBuf::new()]);
    while let Some(rel) = queue.pop_front() {
        let Ok(dir) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        let mut names: Vec<_> = dir.filter_map(|d| d.ok().map(|d| d.file_name())).collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            let Ok(e) = entry(&root.join(&child), child.clone()) else {
                continue;
            };
            if e.kind == Kind::Dir {
                queue.push_back(child);
            }
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn scan_lists_parents_first_and_never_follows_symlinks() {
        let t = TempDir::new("scan");
        fs::create_dir_all(t.0.join("a/b")).unwrap();
        fs::write(t.0.join("a/b/f"), b"xyz").unwrap();
        symlink("/etc", t.0.join("out")).unwrap();
        let rels: Vec<_> = scan(&t.0)
            .unwrap()
            .into_iter()
            .map(|e| (e.rel, e.kind, e.size))
            .collect();
        assert_eq!(
            rels,
            vec![
                (PathBuf::new(), Kind::Dir, 0),
                (PathBuf::from("a"), Kind::Dir, 0),
                (PathBuf::from("out"), Kind::Symlink, 4),
                (PathBuf::from("a/b"), Kind::Dir, 0),
                (PathBuf::from("a/b/f"), Kind::File, 3),
            ]
        );
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let err = scan(Path::new("/nonexistent-kata-ts-watch")).unwrap_err();
        assert!(err.to_string().contains("nonexistent-kata-ts-watch"));
    }
}
