//! Connecting real processes to the RPC bookkeeping: stdout/stderr pipes pumped into the
//! process's buffers, stdin handed to WriteStdin, exit statuses from the reaper recorded.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Mutex;

use super::reaper::Exit;
use super::spawn::Spawned;
use super::GuestSandbox;
use crate::state::{Sandbox, Stream};

/// Registers the pipes of a started process (must run inside the tokio runtime).
pub fn attach(
    sandbox: &Arc<Mutex<Sandbox>>,
    guest: &GuestSandbox,
    cid: &str,
    eid: &str,
    spawned: Spawned,
) -> std::io::Result<()> {
    let stdin = pipe::Sender::from_owned_fd(spawned.stdin)?;
    guest.set_stdin(cid, eid, Arc::new(Mutex::new(stdin)));
    for (fd, stream) in [
        (spawned.stdout, Stream::Stdout),
        (spawned.stderr, Stream::Stderr),
    ] {
        pump(
            sandbox.clone(),
            cid.to_string(),
            eid.to_string(),
            stream,
            fd,
        )?;
    }
    Ok(())
}

fn pump(
    sandbox: Arc<Mutex<Sandbox>>,
    cid: String,
    eid: String,
    stream: Stream,
    fd: OwnedFd,
) -> std::io::Result<()> {
    let mut rx = pipe::Receiver::from_owned_fd(fd)?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rx.read(&mut buf).await.unwrap_or(0);
            let mut sb = sandbox.lock().await;
            if n == 0 {
                sb.close_output(&cid, &eid, stream);
                return;
            }
            if !sb.append_output(&cid, &eid, stream, &buf[..n]) {
                return;
            }
        }
    });
    Ok(())
}

/// Records the reaper's exits in the bookkeeping, for WaitProcess.
pub fn record_exits(sandbox: Arc<Mutex<Sandbox>>, mut exits: UnboundedReceiver<Exit>) {
    tokio::spawn(async move {
        while let Some(e) = exits.recv().await {
            sandbox
                .lock()
                .await
                .set_exit(&e.key.container_id, &e.key.exec_id, e.status);
        }
    });
}
