//! `kata-ts-shim-front`: the process containerd dials for every kata-ts pod on the host.
//!
//! containerd 1.6 treats a closed shim connection as a dead shim: it runs `shim delete` and
//! drops the task (runtime/v2 `cleanupAfterDeadShim`). The kata-ts daemon (node) holds the
//! sandboxes; so that it can crash or be upgraded without containerd noticing, this small
//! process owns the public socket and containerd's connections, forwards every request to the
//! daemon over its private socket, and restarts the daemon when it dies. Calls that were in
//! flight are re-sent to the new daemon when repeating them is harmless (State, Wait, …) and
//! answered UNAVAILABLE otherwise.
//!
//! `kata-ts-shim-front --socket PATH --lock PATH --daemon-socket PATH [--ready-fd N] -- CMD…`
//! One front per host: it holds an exclusive `flock` on `--lock` for its lifetime, so fronts
//! started at once by concurrent `start`s settle on one (the others report `running`).

mod args;
mod forward;
mod supervisor;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::process::ExitCode;
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use transport::server::{AllowedPeers, Server};

use crate::args::Args;
use crate::supervisor::Supervisor;

/// Why the front could not start.
#[derive(Debug, thiserror::Error)]
enum FrontError {
    #[error("lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Listen(#[from] transport::server::SocketError),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
}

/// Tells `start` (the ready fd) how the start went: `ok`, `running`, or an error line.
fn report(fd: Option<i32>, line: &str) {
    let Some(fd) = fd else { return };
    // SAFETY: `fd` was handed to us on the command line as an inherited, open pipe that nothing
    // else in this process uses; the File takes ownership and closes it once written.
    let mut f = unsafe { File::from_raw_fd(fd) };
    let _ = writeln!(f, "{line}");
}

/// Takes the host's front lock: None when another front holds it. The file is removed by the
/// holder on exit, so after locking, the name must still be the locked file (else a front that
/// just exited unlinked it and the lock is on an orphan: try again).
fn lock(path: &str) -> Result<Option<Flock<File>>, FrontError> {
    loop {
        let Some(held) = lock_once(path)? else {
            return Ok(None);
        };
        let same = match (held.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Ok(Some(held));
        }
    }
}

/// Opens the lock file (never through a planted symlink) and tries the exclusive lock once.
fn lock_once(path: &str) -> Result<Option<Flock<File>>, FrontError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| FrontError::Lock {
            path: path.to_string(),
            source,
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(FrontError::Lock {
            path: path.to_string(),
            source: e.into(),
        }),
    }
}

/// A socket left by a front that died: ours to replace, since we hold the lock.
fn remove_stale_socket(path: &str) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

fn run(args: Args) -> Result<(), FrontError> {
    let Some(held) = lock(&args.lock)? else {
        report(args.ready_fd, "running");
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FrontError::Runtime)?;
    rt.block_on(async {
        remove_stale_socket(&args.socket);
        let supervisor = Arc::new(Supervisor::new(args.daemon_socket.clone(), args.command));
        let forward = forward::handler(supervisor.clone());
        let server = Server::bind(
            std::path::Path::new(&args.socket),
            AllowedPeers::root_and_self(),
            forward,
        )?;
        report(args.ready_fd, "ok");
        supervisor.run().await;
        server.close();
        Ok::<(), FrontError>(())
    })?;
    // Still holding the lock: a front starting now either waits for it or finds the name gone.
    let _ = std::fs::remove_file(&args.lock);
    drop(held);
    Ok(())
}

fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kata-ts: shim front: {e}");
            return ExitCode::from(2);
        }
    };
    let ready = args.ready_fd;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(ready, &e.to_string());
            eprintln!("kata-ts: shim front: {e}");
            ExitCode::FAILURE
        }
    }
}
