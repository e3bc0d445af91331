//! Reaping children. The agent may be PID 1 (orphans are re-parented to it), so it waits for
//! every child on SIGCHLD and dispatches by pid: a pid in the process table is a container
//! process whose exit status is handed on; any other pid is an orphan, reaped and forgotten.
//! Nothing else in the agent waits for children, so no exit status is stolen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::UnboundedSender;

/// Which process a pid is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcKey {
    pub container_id: String,
    pub exec_id: String,
}

/// Live container processes by pid. Spawning holds the lock until the pid is registered.
pub type ProcTable = Arc<Mutex<HashMap<i32, ProcKey>>>;

/// A container process ended with `status` (exit code, or 128 + signal as a shell reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub key: ProcKey,
    pub status: i32,
}

/// Reaps every waitable child now; sends the exits of table entries.
pub fn reap_all(table: &ProcTable, exits: &UnboundedSender<Exit>) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let key = table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&pid.as_raw());
        if let Some(key) = key {
            let _ = exits.send(Exit { key, status });
        }
    }
}

/// Runs the reaper on the current tokio runtime: on every SIGCHLD, and once a second in case
/// a signal was coalesced before the handler existed.
pub fn start(table: ProcTable, exits: UnboundedSender<Exit>) -> std::io::Result<()> {
    let mut sigchld = signal(SignalKind::child())?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = sigchld.recv() => {}
                _ = tick.tick() => {}
            }
            reap_all(&table, &exits);
        }
    });
    Ok(())
}
