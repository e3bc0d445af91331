//! The server's socket and who may use it. containerd's own shims create their socket 0600
//! after listening (runtime/v2/shim/util_unix.go `NewSocket`), so the process umask never
//! decides who can drive the Task API; we bind under a private, unguessable temp name, chmod it
//! 0600 and only then link it to its public name. Every accepted connection is also checked
//! with SO_PEERCRED: a uid outside [`AllowedPeers`] is closed before a byte is read.

use std::fs::Permissions;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

/// The socket file's mode: owner read/write only, as containerd's shims make it.
pub const SOCKET_MODE: u32 = 0o600;

/// Why the socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Binding the private temp name failed (missing directory, no permission, …).
    #[error("listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Setting the mode of the freshly bound socket failed.
    #[error("listen on {path}: chmod {mode:o}: {source}")]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    /// Linking to the public name failed (it exists already, …).
    #[error("listen on {path}: {source}")]
    Publish {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The uids whose connections are served; any other peer is disconnected on accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeers {
    uids: Vec<u32>,
}

impl AllowedPeers {
    /// Root and this process's effective uid: the uid containerd runs as, since containerd
    /// starts the shim.
    pub fn root_and_self() -> AllowedPeers {
        AllowedPeers::uids([0, nix::unistd::geteuid().as_raw()])
    }

    /// Exactly these uids.
    pub fn uids(uids: impl IntoIterator<Item = u32>) -> AllowedPeers {
        AllowedPeers {
            uids: uids.into_iter().collect(),
        }
    }

    /// True when the kernel-reported uid of `stream`'s peer is allowed.
    pub fn admits(&self, stream: &UnixStream) -> bool {
        stream
            .peer_cred()
            .is_ok_and(|cred| self.uids.contains(&cred.uid()))
    }
}

/// Eight random bytes from the kernel, hex: the unguessable part of the temp name.
fn random_suffix() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Binds `path` with mode [`SOCKET_MODE`] whatever the umask; fails when `path` exists.
pub fn listen_private(path: &Path) -> Result<UnixListener, SocketError> {
    let bind_err = |source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| bind_err(std::io::ErrorKind::InvalidInput.into()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        random_suffix().map_err(bind_err)?
    ));
    // bind(2) creates the name exclusively and never follows a planted symlink (EADDRINUSE).
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(bind_err)?;
    let published = listener
        .set_nonblocking(true)
        .map_err(bind_err)
        .and_then(|()| {
            std::fs::set_permissions(&tmp, Permissions::from_mode(SOCKET_MODE)).map_err(|source| {
                SocketError::Chmod {
                    path: path.to_path_buf(),
                    mode: SOCKET_MODE,
                    source,
                }
            })
        })
        // link(2) fails with EEXIST rather than replace what is at `path`.
        .and_then(|()| {
            std::fs::hard_link(&tmp, path).map_err(|source| SocketError::Publish {
                path: path.to_path_buf(),
                source,
            })
        });
    let _ = std::fs::remove_file(&tmp);
    published?;
    UnixListener::from_std(listener).map_err(|source| {
        let _ = std::fs::remove_file(path);
        SocketError::Bind {
            path: path.to_path_buf(),
            source,
        }
    })
}
