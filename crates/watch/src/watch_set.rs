//! Recursive inotify over one tree. A directory is watched before it is listed, so an entry
//! created between the two is either listed or reported by the new watch; directories created
//! or renamed into the tree later get the same treatment (a tree renamed in as a whole is
//! walked, not only its top). Symlinks are never followed (`IN_DONT_FOLLOW`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify, WatchDescriptor};

/// Events that can change what the guest should hold; `IN_MODIFY` keeps the debounce open
/// while a large file is being written.
fn mask() -> F {
    F::IN_CREATE
        | F::IN_DELETE
        | F::IN_MODIFY
        | F::IN_CLOSE_WRITE
        | F::IN_ATTRIB
        | F::IN_MOVED_FROM
        | F::IN_MOVED_TO
        | F::IN_DELETE_SELF
        | F::IN_MOVE_SELF
        | F::IN_ONLYDIR
        | F::IN_DONT_FOLLOW
}

/// Why the watch set failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchSetError {
    /// `inotify_init1` failed (per-user instance limit, …).
    #[error("inotify_init1: {0}")]
    Init(Errno),
    /// `inotify_add_watch` failed for a reason other than the directory vanishing.
    #[error("inotify_add_watch {path:?}: {errno} (fs.inotify.max_user_watches?)")]
    AddWatch { path: PathBuf, errno: Errno },
    /// Reading events failed.
    #[error("read inotify events: {0}")]
    Read(Errno),
}

/// What a batch of events asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Something in the tree may have changed.
    pub changed: bool,
    /// The kernel dropped events (`IN_Q_OVERFLOW`): only a full resync is safe.
    pub overflow: bool,
}

/// The inotify instance and the directory each watch stands for.
#[derive(Debug)]
pub struct WatchSet {
    root: PathBuf,
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

impl WatchSet {
    /// An empty, non-blocking set for the tree at `root`.
    pub fn new(root: &Path) -> Result<WatchSet, WatchSetError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(WatchSetError::Init)?;
        Ok(WatchSet {
            root: root.to_path_buf(),
            inotify,
            dirs: HashMap::new(),
        })
    }

    /// The inotify descriptor, for poll(2).
    pub fn inotify(&self) -> &Inotify {
        &self.inotify
    }

    /// Number of watched directories.
    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Watches the directory `rel` (relative to the root) and every directory below it.
    /// Re-adding a watched directory is harmless (the kernel returns the same descriptor, and
    /// its path is updated, which is how a renamed directory gets its new name).
    pub fn watch_tree(&mut self, rel: &Path) -> Result<(), WatchSetError> {
        let mut stack = vec![rel.to_path_buf()];
        while let Some(rel) = stack.pop() {
            let path = self.root.join(&rel);
            match self.inotify.add_watch(&path, mask()) {
                Ok(wd) => {
                    self.dirs.insert(wd, rel.clone());
                }
                // Gone, replaced by a file or a symlink: its own events say so.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(errno) => return Err(WatchSetError::AddWatch { path, errno }),
            }
            let Ok(list) = fs::read_dir(&path) else {
                continue;
            };
            for d in list.flatten() {
                if d.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(rel.join(d.file_name()));
                }
            }
        }
        Ok(())
    }

    /// Drops the watches of `rel` and everything below it (moved out or renamed).
    fn unwatch_tree(&mut self, rel: &Path) {
        let gone: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.starts_with(rel))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            let _ = self.inotify.rm_watch(wd);
        }
    }

    /// Applies one event: new directories are watched, moved-away ones forgotten. `wd` is None
    /// for events without a watch (`IN_Q_OVERFLOW`).
    pub fn apply(
        &mut self,
        wd: Option<WatchDescriptor>,
        mask: F,
        name: Option<&Path>,
    ) -> Result<Outcome, WatchSetError> {
        if mask.contains(F::IN_Q_OVERFLOW) {
            // Directories created during the lost events have no watch yet.
            self.watch_tree(Path::new(""))?;
            return Ok(Outcome {
                changed: true,
                overflow: true,
            });
        }
        let Some(wd) = wd else {
            return Ok(Outcome::default());
        };
        if mask.contains(F::IN_IGNORED) {
            self.dirs.remove(&wd);
            return Ok(Outcome::default());
        }
        let child = match (self.dirs.get(&wd), name) {
            (Some(dir), Some(name)) => Some(dir.join(name)),
            _ => None,
        };
        if let (Some(child), true) = (&child, mask.contains(F::IN_ISDIR)) {
            if mask.contains(F::IN_MOVED_FROM) {
                self.unwatch_tree(child);
            } else if mask.intersects(F::IN_CREATE | F::IN_MOVED_TO) {
                self.watch_tree(child)?;
            }
        }
        Ok(Outcome {
            changed: true,
            overflow: false,
        })
    }

    /// Reads and applies every queued event (the descriptor is non-blocking).
    pub fn drain(&mut self) -> Result<Outcome, WatchSetError> {
        let mut out = Outcome::default();
        loop {
            let events = match self.inotify.read_events() {
                Ok(e) => e,
                Err(Errno::EAGAIN) => return Ok(out),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(WatchSetError::Read(e)),
            };
            for e in events {
                let wd = (!e.mask.contains(F::IN_Q_OVERFLOW)).then_some(e.wd);
                let o = self.apply(wd, e.mask, e.name.as_deref().map(Path::new))?;
                out.changed |= o.changed;
                out.overflow |= o.overflow;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn watch_tree_watches_every_directory_but_not_symlinked_ones() {
        let t = TempDir::new("ws-tree");
        fs::create_dir_all(t.0.join("a/b/c")).unwrap();
        fs::create_dir_all(t.0.join("..2026_01_01")).unwrap();
        std::os::unix::fs::symlink("/etc", t.0.join("etc")).unwrap();
        let mut ws = WatchSet::new(&t.0).unwrap();
        ws.watch_tree(Path::new("")).unwrap();
        assert_eq!(ws.len(), 5, "root, a, a/b, a/b/c, ..2026_01_01");
    }

    #[test]
    fn a_directory_created_and_filled_at_once_is_watched_to_its_depth() {
        let t = TempDir::new("ws-new");
        let mut ws = WatchSet::new(&t.0).unwrap();
        ws.watch_tree(Path::new("")).unwrap();
        fs::create_dir_all(t.0.join("n/m/o")).unwrap();
        let o = ws.drain().unwrap();
        assert!(o.changed && !o.overflow);
        assert_eq!(ws.len(), 4);
    }

    #[test]
    fn a_tree_renamed_in_is_watched_whole_and_renamed_out_forgotten() {
        let t = TempDir::new("ws-move");
        let outside = TempDir::new("ws-move-out");
        fs::create_dir_all(t.0.join("vol")).unwrap();
        fs::create_dir_all(outside.0.join("x/y/z")).unwrap();
        let root = t.0.join("vol");
        let mut ws = WatchSet::new(&root).unwrap();
        ws.watch_tree(Path::new("")).unwrap();
        fs::rename(outside.0.join("x"), root.join("x")).unwrap();
        ws.drain().unwrap();
        assert_eq!(ws.len(), 4);
        fs::rename(root.join("x"), outside.0.join("x")).unwrap();
        ws.drain().unwrap();
        assert_eq!(ws.len(), 1);
    }

    #[test]
    fn a_real_queue_overflow_is_reported_as_overflow() {
        use std::io::Write;
        let t = TempDir::new("ws-real-overflow");
        let mut ws = WatchSet::new(&t.0).unwrap();
        ws.watch_tree(Path::new("")).unwrap();
        let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        let mut files: Vec<fs::File> = (0..64)
            .map(|i| fs::File::create(t.0.join(format!("f{i}"))).unwrap())
            .collect();
        // Alternating files: the kernel merges only identical consecutive events.
        for n in 0..max + 1000 {
            files[n % 64].write_all(b"x").unwrap();
        }
        let o = ws.drain().unwrap();
        assert!(o.overflow && o.changed);
    }

    #[test]
    fn an_overflow_asks_for_a_full_resync_and_rewatches_the_tree() {
        let t = TempDir::new("ws-overflow");
        let mut ws = WatchSet::new(&t.0).unwrap();
        ws.watch_tree(Path::new("")).unwrap();
        fs::create_dir_all(t.0.join("missed/deep")).unwrap();
        // The kernel reports IN_Q_OVERFLOW with wd -1 and drops the queued events.
        let o = ws.apply(None, F::IN_Q_OVERFLOW, None).unwrap();
        assert_eq!(
            o,
            Outcome {
                changed: true,
                overflow: true
            }
        );
        assert_eq!(ws.len(), 3);
    }
}
