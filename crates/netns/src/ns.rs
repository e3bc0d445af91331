//! Entering a pod's network namespace safely: the path is opened without following a symlink
//! as its last component, must be an nsfs file, and the work runs on a dedicated thread that
//! joins the namespace (a thread's netns is per-thread; the caller's threads are untouched).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::error::{NetnsError, Result};

/// An opened network namespace file, checked to be nsfs.
#[derive(Debug)]
pub struct NetnsFile {
    path: PathBuf,
    fd: OwnedFd,
}

impl NetnsFile {
    /// Opens `path` as an `O_PATH` handle (O_NOFOLLOW: a planted symlink as last component
    /// fails with ELOOP; nothing is opened for I/O, so a planted device node is never opened),
    /// checks with fstatfs that it is a namespace file, and only then opens that same inode for
    /// setns through `/proc/self/fd`, checking it is still the inode checked. `/proc/<pid>/ns/net`
    /// is itself a symlink and is therefore refused; CNI's bind-mounted
    /// `/var/run/netns/<name>` works.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| NetnsError::Open {
            path: path.to_owned(),
            source,
        };
        let handle = open(
            path,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(open_err)?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        let handle = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(handle) };
        let not_ns = || NetnsError::NotNamespace {
            path: path.to_owned(),
        };
        if fstatfs(&handle).map_err(open_err)?.filesystem_type() != NSFS_MAGIC {
            return Err(not_ns());
        }
        let checked = fstat(handle.as_raw_fd()).map_err(open_err)?;
        let fd = open(
            format!("/proc/self/fd/{}", handle.as_raw_fd()).as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(open_err)?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let opened = fstat(fd.as_raw_fd()).map_err(open_err)?;
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino)
            || fstatfs(&fd).map_err(open_err)?.filesystem_type() != NSFS_MAGIC
        {
            return Err(not_ns());
        }
        Ok(Self {
            path: path.to_owned(),
            fd,
        })
    }

    /// The path it was opened from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a new thread inside this namespace and returns its result. setns fails
    /// with EINVAL when the file is a namespace of another type (e.g. a mount namespace).
    pub fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| NetnsError::Worker(format!("dup netns fd: {e}")))?;
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("kata-ts-netns".into())
            .spawn(move || {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::Enter { path, source })?;
                work()
            })
            .map_err(|e| NetnsError::Worker(format!("spawn: {e}")))?;
        handle
            .join()
            .map_err(|_| NetnsError::Worker("panicked".into()))?
    }
}

/// A current-thread tokio runtime with an rtnetlink connection opened in the calling thread's
/// network namespace (the socket belongs to the namespace it was created in).
pub(crate) fn with_netlink<T, F, Fut>(f: F) -> Result<T>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| NetnsError::Worker(format!("runtime: {e}")))?;
    rt.block_on(async move {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetnsError::Socket)?;
        let conn = tokio::spawn(connection);
        let out = f(handle).await;
        conn.abort();
        out
    })
}
