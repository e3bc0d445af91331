//! Error types: one enum per concern, composed into [`CgroupError`].

use std::io;
use std::path::PathBuf;

/// A cgroupfs operation failed; every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An I/O call on a cgroup file or directory failed.
    #[error("cannot {op} {path}{}: {source}", data.as_ref().map(|d| format!(" (writing {d:?})")).unwrap_or_default())]
    Io {
        /// What was attempted: `write`, `read`, `mkdir`, `rmdir`, `list`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The data written, for writes.
        data: Option<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("cannot parse {path}: unexpected content {content:?}")]
    Parse {
        /// The file read.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// A resource needs a controller this layout does not offer.
    #[error("controller {controller} is not available under {root} (needed for {field})")]
    NoController {
        /// Controller name (`cpu`, `memory`, …).
        controller: &'static str,
        /// Hierarchy root searched.
        root: PathBuf,
        /// The resource field that needs it.
        field: &'static str,
    },
    /// A cgroup path was rejected before touching the filesystem.
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A process or thread id could not be resolved from `/proc`.
    #[error("cannot resolve {what} of {id} from {path}: {reason}")]
    Proc {
        /// What was looked up (`Tgid`, `NSpid`).
        what: &'static str,
        /// The pid or tid.
        id: u32,
        /// The `/proc` file read.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// No cgroup hierarchy was found under the root.
    #[error("no cgroup hierarchy found under {root}")]
    NoHierarchy {
        /// The root searched.
        root: PathBuf,
    },
}

/// A systemd D-Bus operation failed; every variant names the call and the unit.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// Connecting to the bus failed.
    #[error("cannot connect to D-Bus at {address}: {source}")]
    Connect {
        /// Bus address (`system` for the default system bus).
        address: String,
        /// The zbus error.
        #[source]
        source: Box<zbus::Error>,
    },
    /// A D-Bus method call failed.
    #[error("D-Bus {call}({unit}) failed: {source}")]
    Call {
        /// Method name, e.g. `StartTransientUnit`.
        call: &'static str,
        /// The unit it was about.
        unit: String,
        /// The zbus error (a method error carries systemd's error name and text).
        #[source]
        source: Box<zbus::Error>,
    },
    /// A unit did not reach the expected state in time.
    #[error("unit {unit} did not become {want} within {timeout_ms} ms after {call} (last state {last:?})")]
    Timeout {
        /// The call whose job we waited for.
        call: &'static str,
        /// The unit.
        unit: String,
        /// The awaited state.
        want: &'static str,
        /// Last state seen.
        last: String,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// The unit started but ended up in another state.
    #[error("unit {unit} is {state} after {call}")]
    BadState {
        /// The call.
        call: &'static str,
        /// The unit.
        unit: String,
        /// Its state.
        state: String,
    },
    /// A systemd slice or unit name is invalid.
    #[error("invalid systemd {what} {value:?}: {reason}")]
    InvalidName {
        /// `slice` or `unit`.
        what: &'static str,
        /// The name.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroupfs failure.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A systemd failure (boxed: zbus errors are large).
    #[error(transparent)]
    Systemd(Box<SystemdError>),
}

impl From<SystemdError> for CgroupError {
    fn from(e: SystemdError) -> Self {
        Self::Systemd(Box::new(e))
    }
}

/// Builds an [`FsError::Io`].
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
    data: Option<&str>,
    source: io::Error,
) -> FsError {
    FsError::Io {
        op,
        path: path.into(),
        data: data.map(str::to_string),
        source,
    }
}
