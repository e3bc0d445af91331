//! Sends a [`Plan`] to the agent as `grpc.AgentService/CopyFile` calls on the transport crate's
//! ttrpc client, several at once within a phase: directories one depth at a time, then files
//! (each file's chunks in offset order, since the agent's offset-0 chunk resets the temp file),
//! then symlinks. Parallel calls keep the connection busy while a file is being read.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use transport::{CallError, Client};

use crate::request::{Plan, Step, CHUNK_BYTES};

const SERVICE: &str = "grpc.AgentService";
const METHOD: &str = "CopyFile";
/// Files in flight at once.
const PARALLEL: usize = 32;

/// Why one entry could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Reading the host file failed (it may be changing; the watcher resends it).
    #[error("read {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The agent call failed.
    #[error("CopyFile {guest}: {source}")]
    Call { guest: String, source: CallError },
}

/// The first entry of a sync that could not be copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The entry's host path, relative to the copied tree (empty: its root).
    pub entry: PathBuf,
    /// The SendError's text (it names the host or guest path and the cause).
    pub message: String,
}

/// What sending a plan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Entries copied completely.
    pub entries: u64,
    /// Bytes of `data` sent.
    pub bytes: u64,
    /// Entries that failed (relative host paths).
    pub failed: Vec<PathBuf>,
    pub first_failure: Option<Failure>,
}

impl Sent {
    fn add(&mut self, rel: PathBuf, r: Result<u64, SendError>) {
        match r {
            Ok(bytes) => {
                self.entries += 1;
                self.bytes += bytes;
            }
            Err(e) => {
                self.first_failure.get_or_insert_with(|| Failure {
                    entry: rel.clone(),
                    message: e.to_string(),
                });
                self.failed.push(rel);
            }
        }
    }
}

async fn call(
    client: &Client,
    step: &Step,
    offset: u64,
    data: &[u8],
    t: Duration,
) -> Result<(), SendError> {
    // The message head and the data go out as two slices of one frame: `data` (a file chunk in
    // its read buffer) is never copied into the message.
    let head = step.request.encode_head(offset, data.len());
    client
        .call_parts(SERVICE, METHOD, &[&head, data], Some(t))
        .await
        .map(drop)
        .map_err(|source| SendError::Call {
            guest: step.request.path.to_string(),
            source,
        })
}

/// Opens a host file for reading as the copy engine does: never through a final symlink.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    // The entry was a regular file at scan time; never follow a symlink swapped in since.
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Sends one regular file in ≤ 1 MiB chunks; the size is taken when the file is opened.
async fn send_file(
    client: &Client,
    buffers: &Buffers,
    host: &Path,
    mut step: Step,
    t: Duration,
) -> Result<u64, SendError> {
    let read_err = |source| SendError::Read {
        path: host.to_path_buf(),
        source,
    };
    let file = open_nofollow(host).map_err(read_err)?;
    let size = file.metadata().map_err(read_err)?.len();
    step.request.file_size = size;
    if size == 0 {
        call(client, &step, 0, &[], t).await?;
        return Ok(0);
    }
    let mut buf = buffers.take(usize::try_from(size.min(CHUNK_BYTES)).unwrap_or(1 << 20));
    let mut offset = 0u64;
    let sent = async {
        while offset < size {
            let n = usize::try_from((size - offset).min(CHUNK_BYTES)).unwrap_or(buf.len());
            file.read_exact_at(&mut buf[..n], offset)
                .map_err(read_err)?;
            call(client, &step, offset, &buf[..n], t).await?;
            offset += CHUNK_BYTES;
        }
        Ok(size)
    }
    .await;
    buffers.give(buf);
    sent
}

/// Chunk buffers of one sync, reused from file to file: a tree of many files allocates (and
/// zeroes) about [`PARALLEL`] buffers instead of one per file.
#[derive(Debug, Default)]
struct Buffers(std::sync::Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// A buffer of at least `len` bytes.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut b = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if b.len() < len {
            b.resize(len, 0);
        }
        b
    }

    fn give(&self, b: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(b);
    }
}

/// The host path the copy engine reads for the entry at `rel` of the tree at `root`.
pub fn host_path(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Sends `plan` for the tree at `root`. Failures are collected, not fatal: the rest still goes.
pub async fn send_plan(client: &Arc<Client>, root: &Path, plan: &Plan, timeout: Duration) -> Sent {
    let mut out = Sent::default();
    let buffers = Arc::new(Buffers::default());
    let mut set: JoinSet<(PathBuf, Result<u64, SendError>)> = JoinSet::new();
    // Phases run one after the other: each depth of directories (parents exist before their
    // children), then files, then links (see the module comment of `request`).
    let mut phases: Vec<Vec<(&Step, bool)>> = Vec::new();
    let mut depth = None;
    for d in &plan.dirs {
        let n = d.rel.components().count();
        if depth != Some(n) {
            phases.push(Vec::new());
            depth = Some(n);
        }
        if let Some(p) = phases.last_mut() {
            p.push((d, false));
        }
    }
    phases.push(plan.files.iter().map(|s| (s, true)).collect());
    phases.push(plan.links.iter().map(|s| (s, false)).collect());
    for steps in phases {
        for (s, is_file) in steps {
            while set.len() >= PARALLEL {
                if let Some(Ok((rel, r))) = set.join_next().await {
                    out.add(rel, r);
                }
            }
            let (client, step, host) = (client.clone(), s.clone(), host_path(root, &s.rel));
            let buffers = buffers.clone();
            set.spawn(async move {
                let rel = step.rel.clone();
                let r = if is_file {
                    send_file(&client, &buffers, &host, step, timeout).await
                } else {
                    let data = step.link.clone().unwrap_or_default();
                    call(&client, &step, 0, &data, timeout).await.map(|()| 0)
                };
                (rel, r)
            });
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((rel, r)) = joined {
                out.add(rel, r);
            }
        }
    }
    out
}
