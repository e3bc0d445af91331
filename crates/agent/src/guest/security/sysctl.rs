//! `linux.sysctl`: checked as the Kata agent's rustjail validator does (the judge for what a
//! guest accepts), then written under `/proc/sys` from inside the container's namespaces.
//!
//! - the IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`) need an `ipc`
//!   entry in `linux.namespaces`;
//! - `net.*` is always allowed: the guest's network namespace is the pod's;
//! - with a `uts` entry, `kernel.domainname` is allowed and `kernel.hostname` refused (the
//!   hostname field sets it);
//! - anything else is not namespaced and would change the whole guest: refused.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::protocols::oci::{Linux, LinuxNamespace};

const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {key:?}: {why}")]
    NotAllowed { key: String, why: &'static str },
    #[error("sysctl {key:?}: write {path:?}: {source}")]
    Write {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn has_ns(namespaces: &[LinuxNamespace], kind: &str) -> bool {
    namespaces.iter().any(|n| n.Type == kind)
}

/// Refuses sysctls this container may not set (see the module comment).
pub fn validate(linux: &Linux) -> Result<(), SysctlError> {
    for key in linux.Sysctl.keys() {
        check(key, &linux.Namespaces)?;
    }
    Ok(())
}

fn check(key: &str, namespaces: &[LinuxNamespace]) -> Result<(), SysctlError> {
    let refuse = |why| {
        Err(SysctlError::NotAllowed {
            key: key.to_string(),
            why,
        })
    };
    if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return refuse("not a sysctl name");
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return if has_ns(namespaces, "ipc") {
            Ok(())
        } else {
            refuse("needs an ipc namespace")
        };
    }
    if key.starts_with("net.") {
        return Ok(());
    }
    if has_ns(namespaces, "uts") {
        if key == "kernel.domainname" {
            return Ok(());
        }
        if key == "kernel.hostname" {
            return refuse("set the hostname field instead");
        }
    }
    refuse("not namespaced: it would change the whole guest")
}

/// `/proc/sys` path of a sysctl name (dots become slashes).
pub fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Writes each sysctl (validated again) through `/proc/sys`, without following symlinks.
pub fn apply(
    sysctls: &HashMap<String, String>,
    namespaces: &[LinuxNamespace],
) -> Result<(), SysctlError> {
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        check(key, namespaces)?;
        let path = proc_path(key);
        let write_err = |source| SysctlError::Write {
            key: key.clone(),
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(write_err)?;
        f.write_all(sysctls[key].as_bytes()).map_err(write_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(kinds: &[&str]) -> Vec<LinuxNamespace> {
        kinds
            .iter()
            .map(|k| LinuxNamespace {
                Type: (*k).into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn allows_namespaced_sysctls_like_the_kata_agent() {
        let all = ns(&["ipc", "uts", "mount", "pid"]);
        for k in [
            "kernel.shm_rmid_forced",
            "kernel.msgmax",
            "fs.mqueue.msg_max",
            "net.ipv4.ip_forward",
            "net.core.somaxconn",
            "kernel.domainname",
        ] {
            check(k, &all).unwrap();
        }
        assert!(check("net.ipv4.ip_local_port_range", &[]).is_ok());
    }

    #[test]
    fn refuses_the_others_with_a_named_error() {
        let all = ns(&["ipc", "uts"]);
        let e = check("kernel.shm_rmid_forced", &ns(&["uts"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sysctl \"kernel.shm_rmid_forced\": needs an ipc namespace"
        );
        assert!(check("kernel.hostname", &all).is_err());
        assert!(check("vm.swappiness", &all).is_err());
        assert!(check("kernel.domainname", &ns(&["ipc"])).is_err());
        assert!(check("net..x", &all).is_err());
        assert!(check("net.a/b", &all).is_err());
    }

    #[test]
    fn maps_names_to_proc_sys_paths() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }
}
