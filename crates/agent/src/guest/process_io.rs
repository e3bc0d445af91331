//! Connecting real processes to the RPC bookkeeping: stdout/stderr pipes pumped into the
//! process's buffers, stdin handed to WriteStdin, exit statuses from the reaper recorded.
//! A process on a terminal has one stream: the pty master is pumped into stdout (until EIO,
//! when every slave fd is closed), WriteStdin goes through a pipe relayed into the master,
//! and stderr ends at once.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::fcntl::OFlag;
use tokio::io::unix::AsyncFd;
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
    if let Some(master) = spawned.tty {
        // The helper's ends of these pipes were replaced by the pty slave.
        drop((spawned.stdin, spawned.stdout));
        pump(
            sandbox.clone(),
            cid.to_string(),
            eid.to_string(),
            Stream::Stderr,
            spawned.stderr,
        )?;
        return attach_tty(sandbox, guest, cid, eid, master);
    }
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

fn attach_tty(
    sandbox: &Arc<Mutex<Sandbox>>,
    guest: &GuestSandbox,
    cid: &str,
    eid: &str,
    master: OwnedFd,
) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&master),
        nix::fcntl::FcntlArg::F_GETFL,
    )?);
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&master),
        nix::fcntl::FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
    )?;
    super::tty::register(cid, eid, Arc::new(master.try_clone()?));
    // SAFETY: `master` is an OwnedFd moved into the AsyncFd, which is the only owner; it is
    // neither replaced nor closed while registered.
    let master = Arc::new(unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?);
    let (stdin_r, stdin_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    guest.set_stdin(
        cid,
        eid,
        Arc::new(Mutex::new(pipe::Sender::from_owned_fd(stdin_w)?)),
    );
    let mut stdin = pipe::Receiver::from_owned_fd(stdin_r)?;
    let to_master = master.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        // Ends when CloseStdin drops the agent's end (as containerd's shim, no EOF char is sent).
        while let Ok(n @ 1..) = stdin.read(&mut buf).await {
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let Ok(mut guard) = to_master.writable().await else {
                    return;
                };
                match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), rest)?)) {
                    Ok(Ok(w)) => rest = &rest[w..],
                    Ok(Err(_)) => return,
                    Err(_would_block) => continue,
                }
            }
        }
    });
    let (sandbox, cid, eid) = (sandbox.clone(), cid.to_string(), eid.to_string());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut guard) = master.readable().await else {
                break;
            };
            let n = match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut buf)?)) {
                Ok(Ok(n)) => n,
                // EIO: the last slave fd closed (the process and its children are gone).
                Ok(Err(_)) => 0,
                Err(_would_block) => continue,
            };
            let mut sb = sandbox.lock().await;
            if n == 0 {
                sb.close_output(&cid, &eid, Stream::Stdout);
                break;
            }
            if !sb.append_output(&cid, &eid, Stream::Stdout, &buf[..n]) {
                break;
            }
        }
        super::tty::forget(&cid, &eid);
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
