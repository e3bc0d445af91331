//! Terminals (`process.terminal`). As runc does, the pty comes from the container's own
//! `/dev/ptmx` (its devpts instance, so `tty` in the container names a `/dev/pts/N` it can
//! see): the helper opens it after entering the container, makes the slave its controlling
//! terminal (setsid + TIOCSCTTY) and its stdio, and sends the master to the agent over the
//! spawn socket (SCM_RIGHTS). The agent pumps the master into the stdout stream, relays
//! WriteStdin into it, and resizes it on TtyWinResize (TIOCSWINSZ).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex, OnceLock};

use nix::libc;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::error::GuestError;

/// Masters of live terminals by (container id, exec id), for TtyWinResize.
type Masters = Mutex<HashMap<(String, String), Arc<OwnedFd>>>;

fn masters() -> &'static Masters {
    static M: OnceLock<Masters> = OnceLock::new();
    M.get_or_init(Masters::default)
}

fn setup_err(what: &str) -> impl FnOnce(nix::errno::Errno) -> GuestError + '_ {
    move |errno| GuestError::Setup {
        what: what.to_string(),
        errno,
    }
}

/// Helper side, inside the container: a new pty from its `/dev/ptmx`, the slave as controlling
/// terminal and fds 0–2, the master sent over `sock`.
pub fn setup_console(sock: RawFd, rows: u32, cols: u32) -> Result<(), GuestError> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(setup_err("open /dev/ptmx in the container"))?;
    nix::pty::grantpt(&master).map_err(setup_err("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(setup_err("unlockpt"))?;
    let name = nix::pty::ptsname_r(&master).map_err(setup_err("ptsname"))?;
    if rows > 0 || cols > 0 {
        set_size(master.as_raw_fd(), rows, cols)?;
    }
    let slave: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&name)
        .map_err(super::error::io_err("open pty slave", &name))?
        .into();
    nix::unistd::setsid().map_err(setup_err("setsid"))?;
    // SAFETY: TIOCSCTTY with argument 0 on a tty fd we own; no memory is passed.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(setup_err("TIOCSCTTY")(nix::errno::Errno::last()));
    }
    for fd in 0..=2 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).map_err(setup_err("dup2 pty slave"))?;
    }
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock,
        &[IoSlice::new(b"m")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(setup_err("send pty master"))?;
    Ok(())
}

/// Agent side: the master the helper sent, if any (the helper has exec'd or died by now).
pub fn receive_master(sock: &OwnedFd) -> Result<Option<OwnedFd>, GuestError> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    );
    let msg = match msg {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(setup_err("receive pty master")(e)),
    };
    let mut fds = msg
        .cmsgs()
        .map_err(setup_err("receive pty master"))?
        .flat_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds,
            _ => Vec::new(),
        });
    // SAFETY: the kernel just installed this descriptor for us (SCM_RIGHTS); nobody owns it.
    Ok(fds.next().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn set_size(fd: RawFd, rows: u32, cols: u32) -> Result<(), GuestError> {
    let ws = libc::winsize {
        ws_row: u16::try_from(rows).unwrap_or(u16::MAX),
        ws_col: u16::try_from(cols).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` from the pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, std::ptr::addr_of!(ws)) } != 0 {
        return Err(setup_err("TIOCSWINSZ")(nix::errno::Errno::last()));
    }
    Ok(())
}

/// Remembers the master of a started process for [`resize`].
pub fn register(cid: &str, eid: &str, master: Arc<OwnedFd>) {
    masters()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((cid.into(), eid.into()), master);
}

/// Forgets the master once its output has ended.
pub fn forget(cid: &str, eid: &str) {
    masters()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&(cid.to_string(), eid.to_string()));
}

/// TtyWinResize: sets the window size of the process's terminal.
pub fn resize(cid: &str, eid: &str, rows: u32, cols: u32) -> Result<(), GuestError> {
    let master = masters()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&(cid.to_string(), eid.to_string()))
        .cloned()
        .ok_or_else(|| GuestError::Precondition(format!("process {cid}/{eid} has no terminal")))?;
    set_size(master.as_fd().as_raw_fd(), rows, cols)
}
