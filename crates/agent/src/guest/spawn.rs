//! Starting a container process (agent side).
//!
//! Why a raw `clone(2)` and a re-exec: the process must be PID 1 of a new pid namespace, which
//! only a child created with CLONE_NEWPID is (unshare/setns of a pid namespace affect the
//! caller's *children*). The agent is multi-threaded (tokio), so the child may only run
//! async-signal-safe code until it execs; it therefore does nothing but `dup2` and `execve`
//! of this same binary in helper mode (`--container-init`, see [`super::container_init`]),
//! which, now single-threaded and already in the new namespaces, does the mounts, chroot,
//! credentials and the final exec in ordinary Rust. The pid the agent sees is the container
//! process's own (no intermediate process), so signals and exit statuses need no forwarding.
//!
//! ExecProcess joins an existing pid namespace: the spawning thread (a fresh thread, so the
//! change dies with it) `setns`es its pid-namespace-for-children to the init's before cloning;
//! the helper joins the mount and uts namespaces itself.
//!
//! Helper fds: 0/1/2 the stdio pipes, 3 the config (an `oci::Spec`, read to EOF), 4 an error
//! pipe closed on the final exec (empty = started; else the helper's error message), 5 a unix
//! socket over which a helper with `process.terminal` sends the pty master (see [`super::tty`]).
//!
//! A container init joins the sandbox pid namespace instead of a new one when
//! [`super::pidns`] says so (CreateContainerRequest.sandbox_pidns, Kata's convention).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sched::CloneFlags;
use nix::unistd::{pipe2, Pid};

use super::error::GuestError;
use super::pidns;
use super::reaper::{ProcKey, ProcTable};
use super::tty::receive_master;
use crate::protocols::oci::Spec;

/// The helper's argv[1].
pub const HELPER_FLAG: &str = "--container-init";
const HELPER_EXE: &str = "/proc/self/exe";
/// The helper's end of the terminal socket.
pub const TTY_FD: RawFd = 5;
/// Lowest fd number for the child's ends, above the 0..=5 they are moved to.
const HIGH_FD: RawFd = 10;

/// Namespaces of a new process.
#[derive(Debug, Clone, Copy)]
pub enum Namespaces {
    /// New mount, pid and uts namespaces (a container's init).
    New,
    /// The pid namespace of this process (an exec); mount and uts are joined by the helper.
    JoinPidOf(Pid),
}

/// The agent's ends of a started process's stdio.
#[derive(Debug)]
pub struct Spawned {
    pub pid: Pid,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The pty master when `process.terminal` (then stdout/stderr carry nothing).
    pub tty: Option<OwnedFd>,
}

fn os_err(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> GuestError {
    move |e| GuestError::Io {
        op,
        path: "".into(),
        source: e.into(),
    }
}

/// A CLOEXEC pipe whose ends are both moved to fds >= [`HIGH_FD`].
fn high_pipe() -> Result<(OwnedFd, OwnedFd), GuestError> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(os_err("pipe2"))?;
    Ok((high(&r)?, high(&w)?))
}

/// A CLOEXEC unix socketpair (the helper sends the pty master over it), both ends high.
fn high_socketpair() -> Result<(OwnedFd, OwnedFd), GuestError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(os_err("socketpair"))?;
    Ok((high(&a)?, high(&b)?))
}

fn high(fd: &OwnedFd) -> Result<OwnedFd, GuestError> {
    let n = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD)).map_err(os_err("dup fd"))?;
    // SAFETY: `n` is a new descriptor just returned by fcntl and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Starts the helper with `config` in the given namespaces. `table` is locked from before the
/// clone until the pid is registered under `key`, so the reaper cannot miss its exit. With
/// `cgroup` (a cgroup directory) the process joins it before the helper reads its config.
pub fn spawn(
    config: &[u8],
    ns: Namespaces,
    table: &ProcTable,
    key: ProcKey,
    cgroup: Option<&std::path::Path>,
) -> Result<Spawned, GuestError> {
    let terminal = protobuf::Message::parse_from_bytes(config)
        .ok()
        .and_then(|s: Spec| s.Process.into_option())
        .is_some_and(|p| p.Terminal);
    let how = Start {
        table,
        key: &key,
        cgroup,
        terminal,
    };
    match ns {
        Namespaces::New => {
            let started = match pidns::target(&key.container_id)? {
                None => how.here(
                    config,
                    CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS,
                ),
                Some(sandbox) => how.in_pidns(
                    &sandbox,
                    config,
                    CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS,
                ),
            }?;
            pidns::started(started.pid);
            Ok(started)
        }
        Namespaces::JoinPidOf(pid) => {
            let path = format!("/proc/{pid}/ns/pid");
            let ns = File::open(&path).map_err(super::error::io_err("open", &path))?;
            how.in_pidns(&ns, config, CloneFlags::empty())
        }
    }
}

/// How to start one helper.
struct Start<'a> {
    table: &'a ProcTable,
    key: &'a ProcKey,
    cgroup: Option<&'a std::path::Path>,
    terminal: bool,
}

impl Start<'_> {
    fn here(&self, config: &[u8], flags: CloneFlags) -> Result<Spawned, GuestError> {
        spawn_here(
            config,
            flags,
            self.table,
            self.key.clone(),
            self.cgroup,
            self.terminal,
        )
    }

    /// From a fresh thread whose pid-namespace-for-children is `ns` (the change dies with it).
    fn in_pidns(&self, ns: &File, config: &[u8], flags: CloneFlags) -> Result<Spawned, GuestError> {
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(ns, CloneFlags::CLONE_NEWPID).map_err(os_err("setns pid"))?;
                self.here(config, flags)
            })
            .join()
            .unwrap_or_else(|_| Err(GuestError::Precondition("spawn thread panicked".into())))
        })
    }
}

fn spawn_here(
    config: &[u8],
    flags: CloneFlags,
    table: &ProcTable,
    key: ProcKey,
    cgroup: Option<&std::path::Path>,
    terminal: bool,
) -> Result<Spawned, GuestError> {
    let (stdin_r, stdin_w) = high_pipe()?;
    let (stdout_r, stdout_w) = high_pipe()?;
    let (stderr_r, stderr_w) = high_pipe()?;
    let (cfg_r, cfg_w) = high_pipe()?;
    let (err_r, err_w) = high_pipe()?;
    let (tty_agent, tty_helper) = high_socketpair()?;
    let exe = CString::new(HELPER_EXE).map_err(|_| GuestError::Precondition("exe path".into()))?;
    let arg0 =
        CString::new("kata-ts-agent").map_err(|_| GuestError::Precondition("argv".into()))?;
    let arg1 = CString::new(HELPER_FLAG).map_err(|_| GuestError::Precondition("argv".into()))?;
    let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let moves = [
        (stdin_r.as_raw_fd(), 0),
        (stdout_w.as_raw_fd(), 1),
        (stderr_w.as_raw_fd(), 2),
        (cfg_r.as_raw_fd(), 3),
        (err_w.as_raw_fd(), 4),
        (tty_helper.as_raw_fd(), TTY_FD),
    ];
    const FAILED: &[u8] = b"cannot exec the agent's helper (/proc/self/exe)";

    let mut procs = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let clone_flags = libc::c_ulong::try_from(flags.bits() | libc::SIGCHLD)
        .map_err(|_| GuestError::Precondition("bad clone flags".into()))?;
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack). The child runs only
    // async-signal-safe calls (dup2, execve, write, _exit) on memory prepared before the clone.
    let ret =
        unsafe { libc::syscall(libc::SYS_clone, clone_flags, 0usize, 0usize, 0usize, 0usize) };
    if ret == 0 {
        // SAFETY: in the child; see above. The fds and pointers stay valid until execve.
        unsafe {
            for (from, to) in moves {
                libc::dup2(from, to);
            }
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::write(4, FAILED.as_ptr().cast(), FAILED.len());
            libc::_exit(127);
        }
    }
    if ret < 0 {
        return Err(os_err("clone")(nix::errno::Errno::last()));
    }
    let pid = Pid::from_raw(
        i32::try_from(ret)
            .map_err(|_| GuestError::Precondition("clone returned a bad pid".into()))?,
    );
    procs.insert(pid.as_raw(), key.clone());
    drop(procs);
    drop((stdin_r, stdout_w, stderr_w, cfg_r, err_w, tty_helper));
    // The helper waits for its config: no user code has run outside the container's cgroup.
    super::cgroup::place(cgroup, pid)?;

    let mut cfg = File::from(cfg_w);
    // A helper that died early closes its end; its error pipe says why.
    let _ = cfg.write_all(config);
    drop(cfg);
    let mut message = String::new();
    let _ = File::from(err_r).read_to_string(&mut message);
    if !message.is_empty() {
        return Err(GuestError::Start {
            container_id: key.container_id,
            argv0: String::new(),
            message,
        });
    }
    // The helper sent the pty master (if any) before its final exec.
    let tty = if terminal {
        Some(
            receive_master(&tty_agent)?.ok_or_else(|| GuestError::Start {
                container_id: key.container_id.clone(),
                argv0: String::new(),
                message: "the helper sent no terminal".into(),
            })?,
        )
    } else {
        None
    };
    Ok(Spawned {
        pid,
        stdin: stdin_w,
        stdout: stdout_r,
        stderr: stderr_r,
        tty,
    })
}
