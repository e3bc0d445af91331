//! The helper side of [`super::spawn`]: runs as `kata-ts-agent --container-init`, single-
//! threaded, already in the container's new (init) or joined (exec) pid namespace. It sets up
//! the container's view and execs the process; any failure is written to fd 4, which the
//! agent reads as the start error.
//!
//! Order, as runc's init: mounts, sysctls, masked and read-only paths, chroot; the terminal;
//! rlimits and oom_score_adj; seccomp now if there is no no_new_privs (loading needs
//! CAP_SYS_ADMIN); the bounding set, PR_SET_KEEPCAPS, the uid/gid change, the other capability
//! sets; cwd; no_new_privs; seccomp (with no_new_privs) last, right before execve.
//!
//! chroot, not pivot_root: in our guest the agent's root is the initramfs `rootfs`, which
//! pivot_root refuses to move (EINVAL); the Kata agent runs on a disk image and can pivot.
//! The container's mounts live in its private mount namespace (`/` made rprivate first), so
//! nothing leaks into the agent's and they vanish with the container's last process.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{
    chdir, chroot, execve, fchdir, setgid, setgroups, sethostname, setuid, Gid, Uid,
};
use protobuf::Message;

use super::error::{io_err, GuestError};
use super::guest_root::join_inside;
use super::mount::{create_dirs, create_target, mount_with_options};
use super::mount_options::{parse_mount_options, MountOptions};
use super::process_limits::{apply_oom_score_adj, apply_rlimits};
use super::security::caps::CapSets;
use super::security::{self, seccomp, sysctl, SecurityError};
use super::spawn::TTY_FD;
use super::tty::setup_console;
use crate::protocols::oci::{Mount, Spec};

/// Annotation: `init` (new container) or `exec` (join the init's namespaces).
pub const MODE: &str = "io.kata-ts.helper.mode";
/// Annotation: the in-container path to exec (already resolved along PATH).
pub const EXE: &str = "io.kata-ts.helper.exe";
/// Annotation: the init's pid (agent's view), for `exec`.
pub const INIT_PID: &str = "io.kata-ts.helper.init-pid";

const CONFIG_FD: i32 = 3;
const ERROR_FD: i32 = 4;

/// Entry point of `--container-init`; never returns.
pub fn run() -> ! {
    // The agent reads fd 4 until EOF: it must close on the final exec; fd 5 too (the
    // terminal socket), so the container never holds it.
    for fd in [ERROR_FD, TTY_FD] {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let Err(e) = setup_and_exec();
    let msg = e.to_string();
    // SAFETY: fd 4 is the error pipe the agent gave us; nothing else owns it in this process.
    let mut f = unsafe { File::from_raw_fd(ERROR_FD) };
    let _ = std::io::Write::write_all(&mut f, msg.as_bytes());
    std::process::exit(1)
}

fn fail(what: String) -> impl FnOnce(nix::errno::Errno) -> GuestError {
    move |errno| GuestError::Setup { what, errno }
}

fn setup_and_exec() -> Result<Infallible, GuestError> {
    let spec = read_config()?;
    match spec.Annotations.get(MODE).map(String::as_str) {
        Some("init") => enter_new_container(&spec)?,
        Some("exec") => {
            let pid = spec
                .Annotations
                .get(INIT_PID)
                .and_then(|p| p.parse::<i32>().ok());
            join_container(pid.ok_or(GuestError::Missing {
                field: "helper init pid",
            })?)?;
        }
        other => {
            return Err(GuestError::BadValue {
                what: "helper mode",
                value: format!("{other:?}"),
                why: "want init or exec".into(),
            })
        }
    }
    let process = spec.Process.as_ref().ok_or(GuestError::Missing {
        field: "OCI.Process",
    })?;
    if process.Terminal {
        let size = process.ConsoleSize.as_ref();
        setup_console(
            TTY_FD,
            size.map_or(0, |b| b.Height),
            size.map_or(0, |b| b.Width),
        )?;
    }
    let linux = spec.Linux.as_ref();
    let seccomp = linux
        .and_then(|l| l.Seccomp.as_ref())
        .map(seccomp::compile)
        .transpose()
        .map_err(SecurityError::from)?;
    apply_rlimits(&process.Rlimits)?;
    apply_oom_score_adj(process.OOMScoreAdj)?;
    // runc: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in before the
    // capabilities are dropped; with it, last, right before exec.
    if let (Some(f), false) = (&seccomp, process.NoNewPrivileges) {
        seccomp::load(f).map_err(SecurityError::from)?;
    }
    let caps = process.Capabilities.as_ref().map(CapSets::from_oci);
    if let Some(c) = &caps {
        security::caps::before_setuid(c).map_err(SecurityError::from)?;
    }
    let user = process.User.as_ref().cloned().unwrap_or_default();
    let groups: Vec<Gid> = user
        .AdditionalGids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).map_err(fail("setgroups".into()))?;
    setgid(Gid::from_raw(user.GID)).map_err(fail(format!("setgid {}", user.GID)))?;
    setuid(Uid::from_raw(user.UID)).map_err(fail(format!("setuid {}", user.UID)))?;
    if let Some(c) = &caps {
        security::caps::after_setuid(c).map_err(SecurityError::from)?;
    }
    let cwd = if process.Cwd.is_empty() {
        "/"
    } else {
        process.Cwd.as_str()
    };
    chdir(cwd).map_err(fail(format!("chdir to cwd {cwd:?}")))?;
    if process.NoNewPrivileges {
        nix::sys::prctl::set_no_new_privs().map_err(fail("no_new_privs".into()))?;
    }
    // Rust ignores SIGPIPE; an exec keeps ignored dispositions and the signal mask.
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map_err(fail("reset SIGPIPE".into()))?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(fail("sigprocmask".into()))?;

    let exe = spec.Annotations.get(EXE).cloned().unwrap_or_default();
    let exe_name = exe.clone();
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| GuestError::BadValue {
            what: "process string",
            value: s.to_string(),
            why: "contains a NUL byte".into(),
        })
    };
    let args = process
        .Args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = process
        .Env
        .iter()
        .map(|e| cstr(e))
        .collect::<Result<Vec<_>, _>>()?;
    let exe = cstr(&exe)?;
    if let (Some(f), true) = (&seccomp, process.NoNewPrivileges) {
        seccomp::load(f).map_err(SecurityError::from)?;
    }
    execve(&exe, &args, &env).map_err(fail(format!("exec {exe_name:?}")))
}

fn read_config() -> Result<Spec, GuestError> {
    // SAFETY: fd 3 is the config pipe the agent gave us; nothing else owns it.
    let mut f = unsafe { File::from_raw_fd(CONFIG_FD) };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(io_err("read helper config", "fd 3"))?;
    Spec::parse_from_bytes(&bytes).map_err(|e| GuestError::BadValue {
        what: "helper config",
        value: format!("{} bytes", bytes.len()),
        why: e.to_string(),
    })
}

fn enter_new_container(spec: &Spec) -> Result<(), GuestError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail("make / rprivate".into()))?;
    let rootfs = Path::new(&spec.Root.Path);
    let readonly = spec.Root.Readonly;
    if readonly {
        // A mount of its own, so the read-only flag stays on the rootfs.
        let opts = MountOptions {
            flags: MsFlags::MS_BIND | MsFlags::MS_REC,
            ..Default::default()
        };
        mount_with_options(&spec.Root.Path, rootfs, "bind", &opts)?;
    }
    let mut has_proc = false;
    for m in &spec.Mounts {
        container_mount(rootfs, m).map_err(|e| GuestError::ContainerMount {
            destination: m.destination.clone(),
            fstype: m.type_.clone(),
            source_path: m.source.clone(),
            options: m.options.clone(),
            source: Box::new(e),
        })?;
        has_proc |= m.type_ == "proc";
    }
    if let Some(linux) = spec.Linux.as_ref() {
        // Through the guest's /proc (same net and ipc namespaces as the container), before
        // the container's /proc/sys is made read-only.
        sysctl::apply(&linux.Sysctl, &linux.Namespaces).map_err(SecurityError::from)?;
        mask_and_protect(rootfs, &linux.MaskedPaths, &linux.ReadonlyPaths)?;
    }
    let proc_dir = rootfs.join("proc");
    if !has_proc && proc_dir.is_dir() {
        mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(fail("mount /proc".into()))?;
    }
    if readonly {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, rootfs, None::<&str>, flags, None::<&str>)
            .map_err(fail("remount rootfs ro".into()))?;
    }
    if !spec.Hostname.is_empty() {
        sethostname(&spec.Hostname).map_err(fail(format!("sethostname {:?}", spec.Hostname)))?;
    }
    chdir(rootfs).map_err(fail(format!("chdir {rootfs:?}")))?;
    chroot(".").map_err(fail(format!("chroot {rootfs:?}")))?;
    chdir("/").map_err(fail("chdir /".into()))
}

/// One OCI mount onto `rootfs` + destination. Bind sources were resolved by the agent.
fn container_mount(rootfs: &Path, m: &Mount) -> Result<(), GuestError> {
    let target = join_inside(rootfs, &m.destination)?;
    let mut opts = parse_mount_options(&m.options);
    if m.type_ == "bind" || opts.flags.contains(MsFlags::MS_BIND) {
        opts.flags.insert(MsFlags::MS_BIND);
        let file = !fs::metadata(&m.source)
            .map_err(io_err("stat bind source", &m.source))?
            .is_dir();
        create_target(&target, file)?;
        return mount_with_options(&m.source, &target, "bind", &opts);
    }
    if m.type_.starts_with("cgroup") {
        // No cgroup management in this agent; the Kata agent mounts the container's cgroups.
        return Ok(());
    }
    create_dirs(&target)?;
    let source = if m.source.is_empty() {
        m.type_.as_str()
    } else {
        m.source.as_str()
    };
    mount_with_options(source, &target, &m.type_, &opts)?;
    if m.destination.trim_end_matches('/') == "/dev" && m.type_ == "tmpfs" {
        create_dev_nodes(&target)?;
    }
    Ok(())
}

/// runc's masking (`/dev/null` bound over a file, an empty read-only tmpfs over a directory)
/// and read-only paths (bound onto themselves, remounted read-only). Missing paths are skipped,
/// as runc does.
fn mask_and_protect(
    rootfs: &Path,
    masked: &[String],
    readonly: &[String],
) -> Result<(), GuestError> {
    let none = None::<&str>;
    for p in masked {
        let target = join_inside(rootfs, p)?;
        let Ok(meta) = fs::metadata(&target) else {
            continue;
        };
        let done = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                none,
            )
        } else {
            mount(Some("/dev/null"), &target, none, MsFlags::MS_BIND, none)
        };
        done.map_err(fail(format!("mask {p:?}")))?;
    }
    for p in readonly {
        let target = join_inside(rootfs, p)?;
        if fs::symlink_metadata(&target).is_err() {
            continue;
        }
        mount(
            Some(&target),
            &target,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .and_then(|()| {
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(none, &target, none, ro, none)
        })
        .map_err(fail(format!("read-only path {p:?}")))?;
    }
    Ok(())
}

/// runc's default devices and /dev symlinks, for a container whose /dev is a fresh tmpfs.
fn create_dev_nodes(dev: &Path) -> Result<(), GuestError> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(fail(format!("mknod {p:?}")))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).map_err(io_err("chmod", &p))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let p = dev.join(name);
        symlink(target, &p).map_err(io_err("symlink", &p))?;
    }
    Ok(())
}

/// Joins the uts and mount namespaces of the container's init and its root.
fn join_container(pid: i32) -> Result<(), GuestError> {
    let open = |p: String| File::open(&p).map_err(io_err("open", p));
    let root = open(format!("/proc/{pid}/root/"))?;
    let uts = open(format!("/proc/{pid}/ns/uts"))?;
    let mnt = open(format!("/proc/{pid}/ns/mnt"))?;
    setns(&uts, CloneFlags::CLONE_NEWUTS).map_err(fail("setns uts".into()))?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(fail("setns mnt".into()))?;
    fchdir(root.as_raw_fd()).map_err(fail("fchdir to the container root".into()))?;
    chroot(".").map_err(fail("chroot to the container root".into()))?;
    chdir("/").map_err(fail("chdir /".into()))
}
