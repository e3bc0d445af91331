//! Why a guest-mode operation failed, and the ttrpc status code the Kata agent would use.

use std::io;
use std::path::PathBuf;

use ttrpc::Code;

use crate::guest_path::GuestPathError;

/// One storage as the request named it, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageName {
    pub driver: String,
    pub source: String,
    pub mount_point: String,
}

impl std::fmt::Display for StorageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "storage (driver {:?}, source {:?}, mount_point {:?})",
            self.driver, self.source, self.mount_point
        )
    }
}

/// A guest-mode failure.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A guest path is not absolute or has `..`.
    #[error(transparent)]
    Path(#[from] GuestPathError),
    /// A required field of the request is missing or empty.
    #[error("{field} is missing or empty")]
    Missing { field: &'static str },
    /// A value of the request cannot be used.
    #[error("bad {what} {value:?}: {why}")]
    BadValue {
        what: &'static str,
        value: String,
        why: String,
    },
    /// No container with that id (Kata's `ERR_INVALID_CONTAINER_ID` wording).
    #[error("{}: {container_id}", crate::state::ERR_INVALID_CONTAINER_ID)]
    NoContainer { container_id: String },
    /// The container's rootfs is not a directory.
    #[error("rootfs {rootfs:?} is not a directory")]
    RootfsNotDir { rootfs: PathBuf },
    /// A container mount could not be set up.
    #[error("container mount {destination:?} (type {fstype:?}, source {source_path:?}, options {options:?}): {source}")]
    ContainerMount {
        destination: String,
        fstype: String,
        source_path: String,
        options: Vec<String>,
        #[source]
        source: Box<GuestError>,
    },
    /// A system call in the container's setup failed.
    #[error("{what}: {errno}")]
    Setup {
        what: String,
        errno: nix::errno::Errno,
    },
    /// The request asks for something this agent does not do (e.g. a terminal).
    #[error("{what} is not supported by this agent")]
    Unsupported { what: String },
    /// A hot-plugged device never showed up.
    #[error("{storage}: device {device} did not appear within {timeout_ms} ms")]
    DeviceTimeout {
        storage: StorageName,
        device: String,
        timeout_ms: u128,
    },
    /// A storage could not be set up.
    #[error("{storage}: {source}")]
    Storage {
        storage: StorageName,
        #[source]
        source: Box<GuestError>,
    },
    /// mount(2) failed.
    #[error(
        "mount {fstype:?} {source_path:?} on {target:?} (flags {flags:#x}, data {data:?}): {errno}"
    )]
    Mount {
        source_path: String,
        target: PathBuf,
        fstype: String,
        flags: u64,
        data: String,
        errno: nix::errno::Errno,
    },
    /// A filesystem or process operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The container's executable is not in its rootfs (runc's wording).
    #[error("exec: {name:?}: executable file not found in $PATH")]
    ExecutableNotFound { name: String },
    /// Starting the container process failed (message from the helper).
    #[error("start process {argv0:?} in container {container_id}: {message}")]
    Start {
        container_id: String,
        argv0: String,
        message: String,
    },
    /// The container or process is not in a state that allows the call.
    #[error("{0}")]
    Precondition(String),
    /// The container's guest cgroup could not be made, joined, updated or removed.
    #[error("cgroup of container {container_id}: {source}")]
    Cgroup {
        container_id: String,
        #[source]
        source: Box<cgroups::CgroupError>,
    },
}

impl GuestError {
    /// Status codes as in the Kata agent: bad input is INVALID_ARGUMENT, a missing device
    /// NOT_FOUND (Kata reports a timed-out uevent wait as INTERNAL; NOT_FOUND says more and
    /// the runtime treats both as fatal), everything that failed while carrying out the request
    /// (mounts, spawning) INTERNAL.
    pub fn code(&self) -> Code {
        match self {
            GuestError::Path(_)
            | GuestError::Missing { .. }
            | GuestError::BadValue { .. }
            | GuestError::NoContainer { .. }
            | GuestError::RootfsNotDir { .. }
            | GuestError::ExecutableNotFound { .. } => Code::INVALID_ARGUMENT,
            GuestError::Unsupported { .. } => Code::UNIMPLEMENTED,
            GuestError::ContainerMount { source, .. } => source.code(),
            GuestError::DeviceTimeout { .. } => Code::NOT_FOUND,
            GuestError::Storage { source, .. } => source.code(),
            GuestError::Precondition(_) => Code::FAILED_PRECONDITION,
            GuestError::Cgroup { source, .. } => match **source {
                cgroups::CgroupError::Fs(cgroups::FsError::InvalidPath { .. }) => {
                    Code::INVALID_ARGUMENT
                }
                _ => Code::INTERNAL,
            },
            GuestError::Mount { .. }
            | GuestError::Io { .. }
            | GuestError::Start { .. }
            | GuestError::Setup { .. } => Code::INTERNAL,
        }
    }

    /// Wraps `self` with the storage it happened to (a timeout already names it).
    pub fn in_storage(self, storage: &StorageName) -> GuestError {
        match self {
            e @ (GuestError::DeviceTimeout { .. } | GuestError::Storage { .. }) => e,
            e => GuestError::Storage {
                storage: storage.clone(),
                source: Box::new(e),
            },
        }
    }
}

/// `map_err` helper for I/O failures on a path.
pub fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> GuestError {
    let path = path.into();
    move |source| GuestError::Io { op, path, source }
}
