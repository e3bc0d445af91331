//! `linux.seccomp` in the guest, with the semantics runc gets from libseccomp: every rule has
//! its own action; a syscall no rule matches gets the default action; unknown syscall names
//! are skipped (runc ignores them); a rule whose action is the default one is skipped; several
//! conditions on different arguments are ANDed, several on the same argument become separate
//! rules (ORed), as runc's `matchCall` does.
//!
//! The filters are built with `seccompiler`, whose filter has one match action, so the profile
//! becomes a stack: one filter per non-default action ("these syscalls → action, else allow")
//! and one for the default ("any listed syscall → allow, else default"). The kernel runs every
//! filter and takes the highest-precedence result (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
//! TRACE > LOG > ALLOW), which gives the single-filter answer for each syscall. Only the native
//! architecture is filtered (seccompiler's arch check kills other ABIs' calls).

use std::collections::BTreeMap;
use std::str::FromStr;

use nix::libc;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::protocols::oci::{linux_syscall::ErrnoRet, LinuxSeccomp, LinuxSeccompArg, LinuxSyscall};

const EPERM: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: unsupported action {action:?}")]
    Action { action: String },
    #[error("seccomp: unsupported operator {op:?} (syscall {syscall:?})")]
    Operator { op: String, syscall: String },
    #[error("seccomp: argument index {index} of syscall {syscall:?} is out of range")]
    ArgIndex { index: u64, syscall: String },
    #[error("seccomp: unsupported flag {flag:?}")]
    Flag { flag: String },
    #[error("seccomp: build filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("seccomp: load filter: {0}")]
    Load(nix::errno::Errno),
}

/// A compiled profile: the filters in load order, and the seccomp(2) flags.
#[derive(Debug)]
pub struct Compiled {
    pub filters: Vec<BpfProgram>,
    pub flags: libc::c_ulong,
}

fn arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
    #[cfg(not(target_arch = "aarch64"))]
    TargetArch::x86_64
}

/// The OCI action name (with its errnoRet) as a seccompiler action.
pub fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(EPERM)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(EPERM)),
        other => {
            return Err(SeccompError::Action {
                action: other.to_string(),
            })
        }
    })
}

fn flag(name: &str) -> Result<libc::c_ulong, SeccompError> {
    Ok(match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => libc::SECCOMP_FILTER_FLAG_TSYNC,
        "SECCOMP_FILTER_FLAG_LOG" => libc::SECCOMP_FILTER_FLAG_LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        other => {
            return Err(SeccompError::Flag {
                flag: other.to_string(),
            })
        }
    })
}

fn condition(a: &LinuxSeccompArg, syscall: &str) -> Result<SeccompCondition, SeccompError> {
    let index = u8::try_from(a.Index)
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| SeccompError::ArgIndex {
            index: a.Index,
            syscall: syscall.to_string(),
        })?;
    // libseccomp's SCMP_CMP_MASKED_EQ: `value` is the mask, `valueTwo` the datum.
    let (op, value) = match a.Op.as_str() {
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.Value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.Value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.Value),
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.Value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.Value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.Value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.Value), a.ValueTwo),
        other => {
            return Err(SeccompError::Operator {
                op: other.to_string(),
                syscall: syscall.to_string(),
            })
        }
    };
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        op,
        value,
    )?)
}

/// The seccompiler rules of one OCI entry's arguments; empty = unconditional.
fn rules(args: &[LinuxSeccompArg], syscall: &str) -> Result<Vec<SeccompRule>, SeccompError> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let conds = args
        .iter()
        .map(|a| condition(a, syscall))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    let repeated = args.iter().any(|a| !seen.insert(a.Index));
    if repeated {
        conds
            .into_iter()
            .map(|c| Ok(SeccompRule::new(vec![c])?))
            .collect()
    } else {
        Ok(vec![SeccompRule::new(conds)?])
    }
}

/// Rules per syscall number; an empty vector means "every call".
type RuleMap = BTreeMap<i64, Vec<SeccompRule>>;

fn add(map: &mut RuleMap, nr: i64, mut new: Vec<SeccompRule>) {
    match map.get_mut(&nr) {
        None => {
            map.insert(nr, new);
        }
        Some(existing) if existing.is_empty() => {}
        Some(existing) => {
            if new.is_empty() {
                existing.clear();
            } else {
                existing.append(&mut new);
            }
        }
    }
}

fn errno_of(s: &LinuxSyscall) -> Option<u32> {
    match s.ErrnoRet {
        Some(ErrnoRet::Errnoret(e)) => Some(e),
        _ => None,
    }
}

/// Compiles the profile into its filter stack.
pub fn compile(profile: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let default = action(&profile.DefaultAction, None)?;
    let flags = profile
        .Flags
        .iter()
        .try_fold(0, |acc, f| Ok::<_, SeccompError>(acc | flag(f)?))?;
    // Non-default actions, in a stable order (by their u32 encoding).
    let mut groups: BTreeMap<u32, (SeccompAction, RuleMap)> = BTreeMap::new();
    let mut listed = RuleMap::new();
    for s in &profile.Syscalls {
        let act = action(&s.Action, errno_of(s))?;
        if act == default {
            continue;
        }
        for name in &s.Names {
            let Ok(sysno) = syscalls::Sysno::from_str(name) else {
                continue; // not a syscall of this architecture: skipped, as runc does
            };
            let nr = i64::from(sysno.id());
            let r = rules(&s.Args, name)?;
            add(&mut listed, nr, r.clone());
            if act != SeccompAction::Allow {
                let key = u32::from(act.clone());
                add(
                    &mut groups
                        .entry(key)
                        .or_insert_with(|| (act.clone(), RuleMap::new()))
                        .1,
                    nr,
                    r,
                );
            }
        }
    }
    let mut filters = Vec::new();
    if default != SeccompAction::Allow {
        let f = SeccompFilter::new(listed, default, SeccompAction::Allow, arch())?;
        filters.push(BpfProgram::try_from(f)?);
    }
    for (_, (act, map)) in groups {
        let f = SeccompFilter::new(map, SeccompAction::Allow, act, arch())?;
        filters.push(BpfProgram::try_from(f)?);
    }
    Ok(Compiled { filters, flags })
}

/// Loads the filters into the calling thread (NNP or CAP_SYS_ADMIN required).
pub fn load(c: &Compiled) -> Result<(), SeccompError> {
    for f in &c.filters {
        let prog = libc::sock_fprog {
            len: u16::try_from(f.len())
                .map_err(|_| SeccompError::Load(nix::errno::Errno::E2BIG))?,
            filter: f.as_ptr().cast::<libc::sock_filter>().cast_mut(),
        };
        // SAFETY: `prog` points at `f`, a live slice of `sock_filter`s (seccompiler's type has
        // libc's layout: u16, u8, u8, u32, repr(C)); the kernel copies it during the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                c.flags,
                std::ptr::addr_of!(prog),
            )
        };
        if ret != 0 {
            return Err(SeccompError::Load(nix::errno::Errno::last()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syscall(
        names: &[&str],
        act: &str,
        errno: Option<u32>,
        args: Vec<LinuxSeccompArg>,
    ) -> LinuxSyscall {
        LinuxSyscall {
            Names: names.iter().map(|s| s.to_string()).collect(),
            Action: act.into(),
            ErrnoRet: errno.map(ErrnoRet::Errnoret),
            Args: args,
            ..Default::default()
        }
    }

    #[test]
    fn maps_actions_with_their_errno() {
        assert_eq!(
            action("SCMP_ACT_ERRNO", None).unwrap(),
            SeccompAction::Errno(1)
        );
        assert_eq!(
            action("SCMP_ACT_ERRNO", Some(38)).unwrap(),
            SeccompAction::Errno(38)
        );
        assert_eq!(
            action("SCMP_ACT_KILL", None).unwrap(),
            SeccompAction::KillThread
        );
        assert_eq!(
            action("SCMP_ACT_KILL_PROCESS", None).unwrap(),
            SeccompAction::KillProcess
        );
        assert_eq!(action("SCMP_ACT_LOG", None).unwrap(), SeccompAction::Log);
        assert_eq!(action("SCMP_ACT_TRAP", None).unwrap(), SeccompAction::Trap);
        let e = action("SCMP_ACT_NOTIFY", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "seccomp: unsupported action \"SCMP_ACT_NOTIFY\""
        );
    }

    #[test]
    fn default_allow_profile_is_one_filter_per_action() {
        let p = LinuxSeccomp {
            DefaultAction: "SCMP_ACT_ALLOW".into(),
            Syscalls: vec![
                syscall(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None, vec![]),
                syscall(&["no_such_syscall"], "SCMP_ACT_KILL", None, vec![]),
                syscall(&["getpid"], "SCMP_ACT_ALLOW", None, vec![]),
            ],
            ..Default::default()
        };
        let c = compile(&p).unwrap();
        // ERRNO for mkdir*; the unknown name is skipped, so there is no KILL filter.
        assert_eq!(c.filters.len(), 1);
        assert_eq!(c.flags, 0);
    }

    #[test]
    fn default_errno_profile_allows_the_listed_syscalls_with_args() {
        let arg = |index, value, op: &str| LinuxSeccompArg {
            Index: index,
            Value: value,
            ValueTwo: 0,
            Op: op.into(),
            ..Default::default()
        };
        let p = LinuxSeccomp {
            DefaultAction: "SCMP_ACT_ERRNO".into(),
            Syscalls: vec![
                syscall(&["read", "write"], "SCMP_ACT_ALLOW", None, vec![]),
                syscall(
                    &["personality"],
                    "SCMP_ACT_ALLOW",
                    None,
                    vec![arg(0, 0, "SCMP_CMP_EQ")],
                ),
                syscall(&["clone3"], "SCMP_ACT_ERRNO", Some(38), vec![]),
                syscall(
                    &["clone"],
                    "SCMP_ACT_ALLOW",
                    None,
                    vec![LinuxSeccompArg {
                        Index: 0,
                        Value: 0x7e020000,
                        ValueTwo: 0,
                        Op: "SCMP_CMP_MASKED_EQ".into(),
                        ..Default::default()
                    }],
                ),
            ],
            Flags: vec!["SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()],
            ..Default::default()
        };
        let c = compile(&p).unwrap();
        // default filter + ERRNO(38) filter
        assert_eq!(c.filters.len(), 2);
        assert_eq!(c.flags, libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW);
    }

    #[test]
    fn refuses_unknown_operators_flags_and_argument_indexes() {
        let mut p = LinuxSeccomp {
            DefaultAction: "SCMP_ACT_ALLOW".into(),
            Syscalls: vec![syscall(
                &["mkdir"],
                "SCMP_ACT_ERRNO",
                None,
                vec![LinuxSeccompArg {
                    Index: 7,
                    Op: "SCMP_CMP_EQ".into(),
                    ..Default::default()
                }],
            )],
            ..Default::default()
        };
        assert!(matches!(
            compile(&p),
            Err(SeccompError::ArgIndex { index: 7, .. })
        ));
        p.Syscalls[0].Args[0].Index = 0;
        p.Syscalls[0].Args[0].Op = "SCMP_CMP_BOGUS".into();
        assert!(matches!(compile(&p), Err(SeccompError::Operator { .. })));
        p.Syscalls[0].Args.clear();
        p.Flags = vec!["SECCOMP_FILTER_FLAG_BOGUS".into()];
        assert!(matches!(compile(&p), Err(SeccompError::Flag { .. })));
    }
}
