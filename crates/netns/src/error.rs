//! Errors of the netns crate: each variant names the path, link or operation that failed.

use std::path::PathBuf;

/// What went wrong while inspecting or wiring a pod network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The netns path could not be opened (a symlink as last component is refused).
    #[error("open network namespace {path}: {source}")]
    Open { path: PathBuf, source: nix::Error },
    /// The path is not a namespace file (nsfs), e.g. a planted regular file or directory.
    #[error("{path} is not a network namespace (not an nsfs file)")]
    NotNamespace { path: PathBuf },
    /// setns(2) into the namespace failed.
    #[error("enter network namespace {path}: {source}")]
    Enter { path: PathBuf, source: nix::Error },
    /// The worker thread that runs inside the namespace could not start or panicked.
    #[error("network namespace worker: {0}")]
    Worker(String),
    /// A netlink request failed.
    #[error("netlink {operation}: {source}")]
    Netlink {
        operation: String,
        source: rtnetlink::Error,
    },
    /// The netlink socket could not be opened.
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    /// A link the caller named does not exist in the namespace.
    #[error("no link named {name:?} in the network namespace")]
    NoSuchLink { name: String },
    /// An interface name that the kernel would refuse (empty, too long, `/`, whitespace).
    #[error("invalid interface name {name:?}")]
    InvalidName { name: String },
    /// Creating the tap through /dev/net/tun failed.
    #[error("create tap {name}: {operation}: {source}")]
    Tap {
        name: String,
        operation: &'static str,
        source: nix::Error,
    },
}

/// Shorthand used by every module of the crate.
pub type Result<T> = std::result::Result<T, NetnsError>;

pub(crate) fn netlink(operation: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetnsError {
    let operation = operation.into();
    move |source| NetnsError::Netlink { operation, source }
}
