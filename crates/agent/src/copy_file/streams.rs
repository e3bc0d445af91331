//! Multi-chunk CopyFile streams in progress, in memory, keyed by destination: the chunk at
//! offset 0 opens a temp file of its own, later chunks of the same destination write to that
//! same open file, and the last one renames it into place. Two destinations never share a temp
//! file, and one whose stream is abandoned (idle too long, its connection gone, the sandbox
//! destroyed) loses its temp file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::beneath::remove_temp;

/// Streams open at once; the copy engine keeps at most 32 CopyFiles in flight.
pub const MAX_STREAMS: usize = 256;

/// One destination's temp file while its chunks arrive.
#[derive(Debug)]
pub struct Stream {
    /// The destination's directory, held open so a later swap of a parent changes nothing.
    pub dir: OwnedFd,
    pub tmp: OsString,
    pub file: File,
    touched: Instant,
    /// Renamed into place: nothing to remove on drop.
    placed: bool,
}

impl Stream {
    pub fn new(dir: OwnedFd, tmp: OsString, file: File) -> Stream {
        Stream {
            dir,
            tmp,
            file,
            touched: Instant::now(),
            placed: false,
        }
    }

    /// The temp file now has the destination's name.
    pub fn placed(mut self) {
        self.placed = true;
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.placed {
            remove_temp(&self.dir, &self.tmp);
        }
    }
}

/// The streams in progress.
#[derive(Debug, Default)]
pub struct Streams {
    map: Mutex<HashMap<PathBuf, Stream>>,
}

impl Streams {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, Stream>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether another stream fits (one for `key` would be replaced, so it always fits).
    pub fn has_room(&self, key: &PathBuf) -> bool {
        let map = self.lock();
        map.len() < MAX_STREAMS || map.contains_key(key)
    }

    /// Drops the stream of `key`, if any (a new offset-0 chunk restarts the destination).
    pub fn discard(&self, key: &PathBuf) {
        let old = self.lock().remove(key);
        drop(old);
    }

    /// Takes the stream of `key` out while a chunk is written to it.
    pub fn take(&self, key: &PathBuf) -> Option<Stream> {
        self.lock().remove(key)
    }

    /// Puts an incomplete stream back for its next chunk; a stream for `key` started meanwhile
    /// (a newer copy of the same file) wins and this one is dropped.
    pub fn put_back(&self, key: PathBuf, mut stream: Stream) {
        stream.touched = Instant::now();
        self.lock().entry(key).or_insert(stream);
    }

    /// Drops the streams with no chunk for `idle`; returns how many.
    pub fn abandon_idle(&self, idle: Duration) -> usize {
        let stale: Vec<Stream> = {
            let mut map = self.lock();
            let keys: Vec<PathBuf> = map
                .iter()
                .filter(|(_, s)| s.touched.elapsed() >= idle)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        stale.len()
    }

    /// Drops every stream; returns how many.
    pub fn abandon_all(&self) -> usize {
        let all: Vec<Stream> = self.lock().drain().map(|(_, s)| s).collect();
        all.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
