//! Per-process settings from `Process` applied by the helper before exec: POSIX rlimits (runc
//! `setupRlimits`: unknown names are an error) and the OOM score adjustment.

use nix::sys::resource::{setrlimit, Resource};

use super::error::GuestError;
use crate::protocols::oci::POSIXRlimit;

/// OCI rlimit names (`RLIMIT_*`) and their resources.
const RESOURCES: &[(&str, Resource)] = &[
    ("RLIMIT_AS", Resource::RLIMIT_AS),
    ("RLIMIT_CORE", Resource::RLIMIT_CORE),
    ("RLIMIT_CPU", Resource::RLIMIT_CPU),
    ("RLIMIT_DATA", Resource::RLIMIT_DATA),
    ("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE),
    ("RLIMIT_LOCKS", Resource::RLIMIT_LOCKS),
    ("RLIMIT_MEMLOCK", Resource::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", Resource::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", Resource::RLIMIT_NICE),
    ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", Resource::RLIMIT_NPROC),
    ("RLIMIT_RSS", Resource::RLIMIT_RSS),
    ("RLIMIT_RTPRIO", Resource::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", Resource::RLIMIT_RTTIME),
    ("RLIMIT_SIGPENDING", Resource::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", Resource::RLIMIT_STACK),
];

/// The resource an OCI rlimit name stands for.
pub fn rlimit_resource(name: &str) -> Result<Resource, GuestError> {
    RESOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| GuestError::BadValue {
            what: "rlimit type",
            value: name.to_string(),
            why: "unknown".into(),
        })
}

/// Sets every rlimit of the process.
pub fn apply_rlimits(limits: &[POSIXRlimit]) -> Result<(), GuestError> {
    for l in limits {
        let r = rlimit_resource(&l.Type)?;
        setrlimit(r, l.Soft, l.Hard).map_err(|e| GuestError::BadValue {
            what: "rlimit",
            value: format!("{} soft {} hard {}", l.Type, l.Soft, l.Hard),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// Writes `/proc/self/oom_score_adj` when the spec sets a non-zero value.
pub fn apply_oom_score_adj(adj: i64) -> Result<(), GuestError> {
    if adj == 0 {
        return Ok(());
    }
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .map_err(super::error::io_err("write", "/proc/self/oom_score_adj"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_oci_rlimit_names_and_refuses_unknown_ones() {
        assert_eq!(
            rlimit_resource("RLIMIT_NOFILE").unwrap(),
            Resource::RLIMIT_NOFILE
        );
        assert_eq!(
            rlimit_resource("RLIMIT_STACK").unwrap(),
            Resource::RLIMIT_STACK
        );
        let err = rlimit_resource("RLIMIT_BOGUS").unwrap_err();
        assert_eq!(err.to_string(), "bad rlimit type \"RLIMIT_BOGUS\": unknown");
    }
}
