//! Starting a process with dropped privileges: `fork`, [`drop_privileges`] in the child, `exec`.
//! A failed step in the child is reported to the parent through a close-on-exec pipe (the step
//! and errno), so the launch error names the step.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::credentials::{
    drop_privileges, CredentialOps, Credentials, DropError, Step, SystemCredentialOps,
};

/// What to start and as whom.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub credentials: Credentials,
    /// Appended to (created if missing); `/dev/null` when absent.
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Rootless launch with uid 0 would leave the process root.
    #[error("refusing to launch {program:?} as uid 0: a rootless process must not run as root")]
    RootTarget { program: PathBuf },
    /// A credential step failed in the child; nothing was executed.
    #[error("launching {program:?}: {source}")]
    Drop {
        program: PathBuf,
        #[source]
        source: DropError,
    },
    #[error("opening log {path:?}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spawning {program:?}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn log_file(path: Option<&Path>) -> Result<Stdio, LaunchError> {
    let Some(path) = path else {
        return Ok(Stdio::null());
    };
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .map_err(|source| LaunchError::Log {
            path: path.to_path_buf(),
            source,
        })
}

fn report_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((read, write))
}

/// Starts `spec.program` with the real credential calls. The caller owns the returned child
/// (its pid, and reaping it).
pub fn spawn_as_user(spec: &LaunchSpec) -> Result<Child, LaunchError> {
    spawn_with_ops(spec, SystemCredentialOps)
}

/// As [`spawn_as_user`] with the credential calls supplied (failure injection in tests).
pub fn spawn_with_ops<O>(spec: &LaunchSpec, ops: O) -> Result<Child, LaunchError>
where
    O: CredentialOps + Send + Sync + 'static,
{
    let program = spec.program.clone();
    if spec.credentials.uid == 0 {
        return Err(LaunchError::RootTarget { program });
    }
    let spawn_err = |source| LaunchError::Spawn {
        program: program.clone(),
        source,
    };
    let (mut read_end, write_end) = report_pipe().map_err(spawn_err)?;
    let report_fd = write_end.as_raw_fd();
    let creds = spec.credentials.clone();

    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log_file(spec.stdout.as_deref())?)
        .stderr(log_file(spec.stderr.as_deref())?);
    let pre_exec = move || -> io::Result<()> {
        match drop_privileges(&ops, &creds) {
            Ok(()) => Ok(()),
            Err(e) => {
                let errno = e.source.raw_os_error().unwrap_or(libc::EPERM);
                let mut msg = [0u8; 5];
                msg[0] = e.step.code();
                msg[1..].copy_from_slice(&errno.to_ne_bytes());
                // SAFETY: write(2) on our own descriptor from a stack buffer; async-signal-safe.
                unsafe { libc::write(report_fd, msg.as_ptr().cast(), msg.len()) };
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    };
    // SAFETY: the closure only makes async-signal-safe system calls and allocates nothing.
    let spawned = unsafe { command.pre_exec(pre_exec) }.spawn();
    drop(write_end);

    let mut msg = Vec::with_capacity(5);
    // Closed by exec in the child, so this returns once the child exec'd or failed.
    let _ = read_end.read_to_end(&mut msg);
    if let [code, e0, e1, e2, e3] = msg[..] {
        if let Some(step) = Step::from_code(code) {
            if let Ok(mut child) = spawned {
                let _ = child.wait();
            }
            let errno = i32::from_ne_bytes([e0, e1, e2, e3]);
            let source = DropError {
                step,
                source: io::Error::from_raw_os_error(errno),
            };
            return Err(LaunchError::Drop { program, source });
        }
    }
    spawned.map_err(spawn_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn spec(uid: u32, gid: u32, groups: Vec<u32>) -> LaunchSpec {
        LaunchSpec {
            program: PathBuf::from("/bin/sleep"),
            args: vec!["30".into()],
            credentials: Credentials { uid, gid, groups },
            stdout: None,
            stderr: None,
        }
    }

    fn status_field(pid: u32, field: &str) -> String {
        let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap();
        line.split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    }

    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn uid_zero_is_refused() {
        let err = spawn_as_user(&spec(0, 0, vec![])).unwrap_err();
        assert!(matches!(err, LaunchError::RootTarget { .. }), "{err}");
    }

    #[test]
    #[ignore = "needs root: drops to another uid (run-tests.sh includes it as root)"]
    fn launched_process_has_exactly_the_target_credentials() {
        let child = Killed(spawn_as_user(&spec(65534, 65533, vec![65532])).unwrap());
        let pid = child.0.id();
        // The pid may still be pre-exec for an instant; spawn returns after exec, so it is not.
        assert_eq!(status_field(pid, "Uid"), "65534 65534 65534 65534");
        assert_eq!(status_field(pid, "Gid"), "65533 65533 65533 65533");
        assert_eq!(status_field(pid, "Groups"), "65532");
    }

    struct FailAt(Step);
    impl CredentialOps for FailAt {
        fn setgroups(&self, g: &[u32]) -> io::Result<()> {
            if self.0 == Step::Setgroups {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            SystemCredentialOps.setgroups(g)
        }
        fn setgid(&self, gid: u32) -> io::Result<()> {
            if self.0 == Step::Setgid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            SystemCredentialOps.setgid(gid)
        }
        fn setuid(&self, uid: u32) -> io::Result<()> {
            if self.0 == Step::Setuid {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            SystemCredentialOps.setuid(uid)
        }
        fn current(&self) -> (u32, u32, u32, u32) {
            SystemCredentialOps.current()
        }
    }

    /// Real fork/exec with an injected failure (the kernel will not refuse these ids for root).
    #[test]
    fn a_failing_step_in_the_child_aborts_the_launch_and_names_the_step() {
        for (step, text) in [
            (Step::Setgroups, "setgroups failed"),
            (Step::Setgid, "setgid failed"),
            (Step::Setuid, "setuid failed"),
        ] {
            let err = spawn_with_ops(&spec(65534, 65534, vec![]), FailAt(step)).unwrap_err();
            match &err {
                LaunchError::Drop { source, .. } => assert_eq!(source.step, step),
                other => panic!("unexpected {other}"),
            }
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    #[test]
    #[ignore = "needs root: drops to another uid (run-tests.sh includes it as root)"]
    fn missing_program_is_a_spawn_error() {
        let mut s = spec(65534, 65534, vec![]);
        s.program = PathBuf::from("/nonexistent/prog");
        assert!(matches!(
            spawn_as_user(&s).unwrap_err(),
            LaunchError::Spawn { .. }
        ));
    }
}
