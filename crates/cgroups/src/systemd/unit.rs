//! Starting a transient scope (`StartTransientUnit` with the delegated cgroup properties and the
//! pending limits) and what systemd leaves to us: joining through `cgroup.procs` and, on v1, the
//! cpuset hierarchy.

use std::path::PathBuf;

use zbus::zvariant::{OwnedObjectPath, Value};

use super::properties::unit_properties;
use super::{SystemdLayout, SystemdManager};
use crate::error::{CgroupError, FsError, SystemdError};
use crate::files;
use crate::manager::{CgroupManager, Resources};

impl SystemdManager {
    /// Starts the scope with `pids` in it and the pending limits, and waits until it is active.
    pub(super) fn start(&self, pids: &[u32]) -> Result<(), CgroupError> {
        let ns_pids = pids
            .iter()
            .map(|p| self.ns_pid(*p))
            .collect::<Result<Vec<u32>, _>>()?;
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut props: Vec<(&str, Value<'_>)> = vec![
            (
                "Description",
                Value::from(format!("kata-ts sandbox {}", self.opts.unit)),
            ),
            ("Slice", Value::from(self.opts.slice.as_str())),
            ("Delegate", Value::from(true)),
            ("DefaultDependencies", Value::from(false)),
            ("CPUAccounting", Value::from(true)),
            ("MemoryAccounting", Value::from(true)),
            ("TasksAccounting", Value::from(true)),
            ("PIDs", Value::from(ns_pids)),
        ];
        props.extend(unit_properties(&pending, self.opts.layout)?);
        let aux: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
        let _job: OwnedObjectPath = self.call(
            "StartTransientUnit",
            &(self.opts.unit.as_str(), "replace", props, aux),
        )?;
        let state = self.wait_for("StartTransientUnit", "active", |s| {
            matches!(s, Some("active" | "failed"))
        })?;
        if state.as_deref() != Some("active") {
            return Err(SystemdError::BadState {
                call: "StartTransientUnit",
                unit: self.opts.unit.clone(),
                state: state.unwrap_or_default(),
            }
            .into());
        }
        self.apply_cpuset_v1(&pending, pids)?;
        Ok(())
    }

    /// Writes `pid` to the scope's `cgroup.procs` in every hierarchy where the scope exists.
    pub(super) fn attach_via_files(&self, pid: u32) -> Result<(), FsError> {
        let dirs: Vec<PathBuf> = match self.opts.layout {
            SystemdLayout::V2 => vec![self.opts.cgroup_root.join(&self.rel_path)],
            SystemdLayout::V1 => std::fs::read_dir(&self.opts.cgroup_root)
                .map_err(|e| crate::error::io_err("list", &self.opts.cgroup_root, None, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.path().join(&self.rel_path))
                .filter(|d| d.join("cgroup.procs").exists())
                .collect(),
        };
        for dir in dirs {
            files::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// v1: cpuset lives outside systemd; create the scope's cpuset cgroup and move its
    /// processes there when a cpuset is asked for.
    pub(super) fn apply_cpuset_v1(&self, r: &Resources, pids: &[u32]) -> Result<(), CgroupError> {
        let Some(cpuset) = &self.cpuset else {
            return Ok(());
        };
        if r.cpuset_cpus.is_none() && r.cpuset_mems.is_none() {
            return Ok(());
        }
        cpuset.create(&[])?;
        cpuset.set_resources(&Resources {
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            ..Resources::default()
        })?;
        let mut all = self.view.procs()?;
        all.extend_from_slice(pids);
        all.sort_unstable();
        all.dedup();
        for pid in all {
            cpuset.add_process(pid)?;
        }
        Ok(())
    }
}
