//! SystemdManager: a transient scope created, updated and stopped over systemd's D-Bus API
//! (<https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.systemd1.html>).
//! Limits are read back from the scope's cgroup files.

mod bus;
mod names;
mod properties;
mod unit;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use crate::error::{CgroupError, FsError, SystemdError};
use crate::files;
use crate::fs_v1::FsV1Manager;
use crate::fs_v2::FsV2Manager;
use crate::manager::{CgroupManager, Resources};
use bus::is_no_such_unit;
pub use names::{cpuset_mask, expand_slice, unit_name};
use properties::{merge, unit_properties};

/// The cgroup layout the systemd instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdLayout {
    /// Legacy or hybrid: limits land in the v1 controller hierarchies.
    V1,
    /// Unified.
    V2,
}

/// Where systemd is and how its cgroups appear to us.
#[derive(Debug, Clone)]
pub struct SystemdOptions {
    /// D-Bus address (`unix:path=/run/dbus/system_bus_socket`); `None` is the system bus.
    pub bus_address: Option<String>,
    /// Slice of the scope, e.g. `system.slice` or `kubepods-burstable.slice`.
    pub slice: String,
    /// Scope unit name, e.g. `kata-abc.scope`.
    pub unit: String,
    /// cgroup mount root as we see it: `/sys/fs/cgroup` (v1: holds the controller dirs; v2:
    /// the unified mount).
    pub cgroup_root: PathBuf,
    /// Where that systemd's cgroup root lies below each hierarchy (empty for the host's
    /// systemd; the delegated subtree for one in a cgroup namespace).
    pub cgroup_base: String,
    /// Layout systemd runs on.
    pub layout: SystemdLayout,
    /// systemd runs in a nested pid namespace: pids passed to it are translated to that
    /// namespace (the last `NSpid` value).
    pub pid_namespace: bool,
    /// How long to wait for a start or stop job.
    pub timeout: Duration,
}

/// A transient systemd scope.
#[derive(Debug)]
pub struct SystemdManager {
    opts: SystemdOptions,
    /// `<base>/<slice path>/<unit>` below each hierarchy.
    rel_path: String,
    conn: Mutex<Option<Connection>>,
    /// Limits set before the scope exists, applied when it starts; also re-applied on update.
    pending: Mutex<Resources>,
    /// Files view of the scope (read back, procs).
    view: Box<dyn CgroupManager>,
    /// v1 only: systemd does not manage the cpuset hierarchy there, so the scope's cpuset
    /// cgroup is kept through cgroupfs (as runc does).
    cpuset: Option<FsV1Manager>,
}

impl SystemdManager {
    /// A manager for `opts.unit` in `opts.slice`. Does not touch the bus yet.
    pub fn new(opts: SystemdOptions) -> Result<Self, CgroupError> {
        if !opts.unit.ends_with(".scope") {
            return Err(SystemdError::InvalidName {
                what: "unit",
                value: opts.unit.clone(),
                reason: "must end in .scope",
            }
            .into());
        }
        let slice_path = expand_slice(&opts.slice)?;
        let rel_path = [opts.cgroup_base.trim_matches('/'), &slice_path, &opts.unit]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let (view, cpuset): (Box<dyn CgroupManager>, Option<FsV1Manager>) = match opts.layout {
            SystemdLayout::V2 => (
                Box::new(FsV2Manager::new(&opts.cgroup_root, &rel_path)?),
                None,
            ),
            SystemdLayout::V1 => {
                let present: Vec<String> = ["cpu", "memory", "pids"]
                    .iter()
                    .filter(|c| opts.cgroup_root.join(c).join("cgroup.procs").exists())
                    .map(|c| (*c).to_string())
                    .collect();
                let cpuset = if opts.cgroup_root.join("cpuset/cgroup.procs").exists() {
                    Some(FsV1Manager::new(
                        &opts.cgroup_root,
                        &rel_path,
                        Some(&["cpuset".to_string()]),
                    )?)
                } else {
                    None
                };
                (
                    Box::new(FsV1Manager::new(
                        &opts.cgroup_root,
                        &rel_path,
                        Some(&present),
                    )?),
                    cpuset,
                )
            }
        };
        Ok(Self {
            opts,
            rel_path,
            conn: Mutex::new(None),
            pending: Mutex::new(Resources::default()),
            view,
            cpuset,
        })
    }

    /// The scope's cgroup path below each hierarchy root.
    pub fn cgroup_path(&self) -> &str {
        &self.rel_path
    }

    fn ns_pid(&self, pid: u32) -> Result<u32, FsError> {
        if self.opts.pid_namespace {
            files::innermost_pid(pid)
        } else {
            Ok(pid)
        }
    }
}

impl CgroupManager for SystemdManager {
    /// systemd makes (and removes) the slices above a scope: no parent is ours.
    fn create(&self, pids: &[u32]) -> Result<Vec<PathBuf>, CgroupError> {
        if pids.is_empty() {
            // A scope cannot exist empty: it starts with the first process added.
            return Ok(Vec::new());
        }
        if self.active_state()?.as_deref() == Some("active") {
            for pid in pids {
                self.add_process(*pid)?;
            }
            return Ok(Vec::new());
        }
        self.start(pids)?;
        Ok(Vec::new())
    }

    fn missing_parents(&self) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(Vec::new())
    }

    /// Only the scope's own cgroup files are ours to check: delegated to its files view.
    fn remove_parents(&self, parents: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupError> {
        self.view.remove_parents(parents)
    }

    fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        if self.active_state()?.as_deref() != Some("active") {
            return self.start(&[pid]);
        }
        let ns_pid = self.ns_pid(pid)?;
        if let Err(dbus) = self.call::<_, ()>(
            "AttachProcessesToUnit",
            &(self.opts.unit.as_str(), "", vec![ns_pid]),
        ) {
            // systemd checks the caller's pid, which a caller outside its pid namespace does not
            // have (EPROTO). The scope is delegated to us, so join it through its cgroup.procs
            // files instead, as runc does for an existing unit.
            self.attach_via_files(pid).map_err(|_| dbus)?;
        }
        if let Some(cpuset) = &self.cpuset {
            if cpuset.dir("cpuset").is_some_and(|d| d.exists()) {
                cpuset.add_process(pid)?;
            }
        }
        Ok(())
    }

    /// systemd places whole processes: the thread's tgid is attached.
    fn add_thread(&self, tid: u32) -> Result<(), CgroupError> {
        self.add_process(files::tgid_of(tid)?)
    }

    fn set_resources(&self, r: &Resources) -> Result<(), CgroupError> {
        let merged = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            merge(&mut pending, r);
            pending.clone()
        };
        if self.active_state()?.as_deref() != Some("active") {
            return Ok(());
        }
        let props = unit_properties(r, self.opts.layout)?;
        if !props.is_empty() {
            let () = self.call("SetUnitProperties", &(self.opts.unit.as_str(), true, props))?;
        }
        self.apply_cpuset_v1(&merged, &[])
    }

    fn read_resources(&self) -> Result<Resources, CgroupError> {
        let mut r = self.view.read_resources()?;
        if let Some(cpuset) = &self.cpuset {
            if cpuset.dir("cpuset").is_some_and(|d| d.exists()) {
                let c = cpuset.read_resources()?;
                r.cpuset_cpus = c.cpuset_cpus;
                r.cpuset_mems = c.cpuset_mems;
            }
        }
        Ok(r)
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        self.view.procs()
    }

    /// `StopUnit` (systemd signals the scope's processes and removes its cgroups), then waits
    /// for the unit to go; a unit systemd does not know is already deleted.
    fn delete(&self) -> Result<(), CgroupError> {
        match self.call::<_, OwnedObjectPath>("StopUnit", &(self.opts.unit.as_str(), "replace")) {
            Ok(_) => {}
            Err(SystemdError::Call { source, .. }) if is_no_such_unit(&source) => {}
            Err(e) => return Err(e.into()),
        }
        let state = self.wait_for("StopUnit", "inactive", |s| {
            matches!(s, None | Some("inactive" | "failed"))
        })?;
        if state.is_some() {
            // A failed (or lingering inactive) unit stays loaded until reset.
            match self.call::<_, ()>("ResetFailedUnit", &(self.opts.unit.as_str(),)) {
                Ok(()) => {}
                Err(SystemdError::Call { source, .. }) if is_no_such_unit(&source) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(cpuset) = &self.cpuset {
            cpuset.delete()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_non_scope_unit() {
        let opts = SystemdOptions {
            bus_address: None,
            slice: "system.slice".into(),
            unit: "x.service".into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_base: String::new(),
            layout: SystemdLayout::V1,
            pid_namespace: false,
            timeout: Duration::from_secs(1),
        };
        let err = SystemdManager::new(opts).unwrap_err();
        assert!(err.to_string().contains("x.service"), "{err}");
    }
}
