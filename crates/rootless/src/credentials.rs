//! The privilege drop itself, behind a trait so the call order and failure handling are unit
//! tested without root (the real calls would change the test process's own credentials).

use std::fmt;
use std::io;

/// Target credentials of the launched process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, exactly (e.g. the kvm group); empty clears root's groups.
    pub groups: Vec<u32>,
}

/// One step of the drop, in the order it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Setgroups,
    Setgid,
    Setuid,
    /// The credentials after the drop differ from the target (the kernel ignored a call).
    Verify,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Verify => "verify",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Step::Setgroups => 1,
            Step::Setgid => 2,
            Step::Setuid => 3,
            Step::Verify => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Step> {
        match code {
            1 => Some(Step::Setgroups),
            2 => Some(Step::Setgid),
            3 => Some(Step::Setuid),
            4 => Some(Step::Verify),
            _ => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed step of the drop; the message reads `<step> failed: <os error>`.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed: {source}")]
pub struct DropError {
    pub step: Step,
    #[source]
    pub source: io::Error,
}

/// The three credential system calls. Implementations must be async-signal-safe: the real one
/// runs between `fork` and `exec`.
pub trait CredentialOps {
    fn setgroups(&self, groups: &[u32]) -> io::Result<()>;
    fn setgid(&self, gid: u32) -> io::Result<()>;
    fn setuid(&self, uid: u32) -> io::Result<()>;
    /// Real and effective uid/gid after the drop, to check the kernel honoured it.
    fn current(&self) -> (u32, u32, u32, u32);
}

/// The real system calls (libc).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemCredentialOps;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl CredentialOps for SystemCredentialOps {
    fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
        // gid_t is u32 on Linux, so the slice is passed as is.
        // SAFETY: the pointer and length describe a live slice of gid_t-sized values.
        check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
    }

    fn setgid(&self, gid: u32) -> io::Result<()> {
        // SAFETY: plain system call with an integer argument.
        check(unsafe { libc::setgid(gid) })
    }

    fn setuid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: plain system call with an integer argument.
        check(unsafe { libc::setuid(uid) })
    }

    fn current(&self) -> (u32, u32, u32, u32) {
        // SAFETY: these calls cannot fail and take no arguments.
        unsafe {
            (
                libc::getuid(),
                libc::geteuid(),
                libc::getgid(),
                libc::getegid(),
            )
        }
    }
}

/// Applies `setgroups(groups)` → `setgid(gid)` → `setuid(uid)`, stopping at the first failure,
/// then checks the real and effective ids match the target. Allocates nothing on success or on
/// an OS error, so it is safe to call between `fork` and `exec`.
pub fn drop_privileges(ops: &dyn CredentialOps, creds: &Credentials) -> Result<(), DropError> {
    let fail = |step| move |source| DropError { step, source };
    ops.setgroups(&creds.groups)
        .map_err(fail(Step::Setgroups))?;
    ops.setgid(creds.gid).map_err(fail(Step::Setgid))?;
    ops.setuid(creds.uid).map_err(fail(Step::Setuid))?;
    let (ruid, euid, rgid, egid) = ops.current();
    if ruid != creds.uid || euid != creds.uid || rgid != creds.gid || egid != creds.gid {
        return Err(DropError {
            step: Step::Verify,
            source: io::Error::from_raw_os_error(libc::EPERM),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Setgroups(Vec<u32>),
        Setgid(u32),
        Setuid(u32),
    }

    /// Test double: records calls and fails the chosen step (the real calls would drop the test
    /// process's own privileges).
    #[derive(Default)]
    struct Recording {
        calls: RefCell<Vec<Call>>,
        fail: Option<Step>,
        state: RefCell<(u32, u32)>,
    }

    impl Recording {
        fn failing(step: Step) -> Self {
            Recording {
                fail: Some(step),
                ..Default::default()
            }
        }
        fn result(&self, step: Step) -> io::Result<()> {
            if self.fail == Some(step) {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }
    }

    impl CredentialOps for Recording {
        fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
            self.calls
                .borrow_mut()
                .push(Call::Setgroups(groups.to_vec()));
            self.result(Step::Setgroups)
        }
        fn setgid(&self, gid: u32) -> io::Result<()> {
            self.calls.borrow_mut().push(Call::Setgid(gid));
            self.result(Step::Setgid)?;
            self.state.borrow_mut().1 = gid;
            Ok(())
        }
        fn setuid(&self, uid: u32) -> io::Result<()> {
            self.calls.borrow_mut().push(Call::Setuid(uid));
            self.result(Step::Setuid)?;
            self.state.borrow_mut().0 = uid;
            Ok(())
        }
        fn current(&self) -> (u32, u32, u32, u32) {
            let (u, g) = *self.state.borrow();
            (u, u, g, g)
        }
    }

    fn creds() -> Credentials {
        Credentials {
            uid: 1001,
            gid: 1002,
            groups: vec![1003, 1004],
        }
    }

    #[test]
    fn calls_setgroups_then_setgid_then_setuid() {
        let ops = Recording::default();
        drop_privileges(&ops, &creds()).unwrap();
        assert_eq!(
            *ops.calls.borrow(),
            vec![
                Call::Setgroups(vec![1003, 1004]),
                Call::Setgid(1002),
                Call::Setuid(1001)
            ]
        );
    }

    #[test]
    fn empty_groups_still_calls_setgroups_first() {
        let ops = Recording::default();
        drop_privileges(
            &ops,
            &Credentials {
                groups: vec![],
                ..creds()
            },
        )
        .unwrap();
        assert_eq!(ops.calls.borrow()[0], Call::Setgroups(vec![]));
        assert_eq!(ops.calls.borrow().len(), 3);
    }

    #[test]
    fn each_failing_step_stops_there() {
        for (step, text, count) in [
            (Step::Setgroups, "setgroups failed", 1),
            (Step::Setgid, "setgid failed", 2),
            (Step::Setuid, "setuid failed", 3),
        ] {
            let ops = Recording::failing(step);
            let err = drop_privileges(&ops, &creds()).unwrap_err();
            assert_eq!(err.step, step);
            assert!(err.to_string().contains(text), "{err}");
            assert_eq!(ops.calls.borrow().len(), count, "{step}");
        }
    }

    /// A kernel that returns success but leaves the ids unchanged must not let the launch through.
    #[test]
    fn unchanged_ids_after_success_fail_verification() {
        struct Liar;
        impl CredentialOps for Liar {
            fn setgroups(&self, _: &[u32]) -> io::Result<()> {
                Ok(())
            }
            fn setgid(&self, _: u32) -> io::Result<()> {
                Ok(())
            }
            fn setuid(&self, _: u32) -> io::Result<()> {
                Ok(())
            }
            fn current(&self) -> (u32, u32, u32, u32) {
                (0, 0, 0, 0)
            }
        }
        let err = drop_privileges(&Liar, &creds()).unwrap_err();
        assert_eq!(err.step, Step::Verify);
    }
}
