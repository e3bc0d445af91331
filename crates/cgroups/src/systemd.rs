//! SystemdManager: a transient scope created, updated and stopped over systemd's D-Bus API
//! (<https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.systemd1.html>).
//! Limits are read back from the scope's cgroup files.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::error::{CgroupError, FsError, SystemdError};
use crate::files;
use crate::fs_v1::FsV1Manager;
use crate::fs_v2::FsV2Manager;
use crate::manager::{CgroupManager, Resources};
use crate::systemd_names::expand_slice;
use crate::systemd_props::{merge, unit_properties};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

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

    fn connection(&self) -> Result<Connection, SystemdError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let address = self
            .opts
            .bus_address
            .clone()
            .unwrap_or_else(|| "system".to_string());
        let conn = match &self.opts.bus_address {
            None => Connection::system(),
            Some(addr) => {
                zbus::blocking::connection::Builder::address(addr.as_str()).and_then(|b| b.build())
            }
        }
        .map_err(|source| SystemdError::Connect {
            address,
            source: Box::new(source),
        })?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    fn call<B, R>(&self, call: &'static str, body: &B) -> Result<R, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let conn = self.connection()?;
        let wrap = |source| SystemdError::Call {
            call,
            unit: self.opts.unit.clone(),
            source: Box::new(source),
        };
        let msg = conn
            .call_method(Some(DEST), PATH, Some(MANAGER), call, body)
            .map_err(wrap)?;
        msg.body().deserialize::<R>().map_err(wrap)
    }

    /// The unit's `ActiveState`, or `None` when systemd does not know the unit.
    fn active_state(&self) -> Result<Option<String>, SystemdError> {
        let path: OwnedObjectPath = match self.call("GetUnit", &(self.opts.unit.as_str(),)) {
            Ok(p) => p,
            Err(SystemdError::Call { source, .. }) if is_no_such_unit(&source) => return Ok(None),
            Err(e) => return Err(e),
        };
        let conn = self.connection()?;
        let wrap = |source| SystemdError::Call {
            call: "Get(ActiveState)",
            unit: self.opts.unit.clone(),
            source: Box::new(source),
        };
        let msg = conn
            .call_method(
                Some(DEST),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Unit", "ActiveState"),
            )
            .map_err(wrap)?;
        let value: OwnedValue = msg.body().deserialize().map_err(wrap)?;
        let state = String::try_from(value).map_err(|e| wrap(zbus::Error::Variant(e)))?;
        Ok(Some(state))
    }

    fn wait_for(
        &self,
        call: &'static str,
        want: &'static str,
        done: impl Fn(Option<&str>) -> bool,
    ) -> Result<Option<String>, SystemdError> {
        let start = Instant::now();
        let mut delay = Duration::from_micros(200);
        loop {
            let state = self.active_state()?;
            if done(state.as_deref()) {
                return Ok(state);
            }
            if start.elapsed() > self.opts.timeout {
                return Err(SystemdError::Timeout {
                    call,
                    unit: self.opts.unit.clone(),
                    want,
                    last: state.unwrap_or_else(|| "(no unit)".into()),
                    timeout_ms: u64::try_from(self.opts.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }

    fn ns_pid(&self, pid: u32) -> Result<u32, FsError> {
        if self.opts.pid_namespace {
            files::innermost_pid(pid)
        } else {
            Ok(pid)
        }
    }

    fn start(&self, pids: &[u32]) -> Result<(), CgroupError> {
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
    fn attach_via_files(&self, pid: u32) -> Result<(), FsError> {
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
    fn apply_cpuset_v1(&self, r: &Resources, pids: &[u32]) -> Result<(), CgroupError> {
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

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str() == NO_SUCH_UNIT)
}

impl CgroupManager for SystemdManager {
    fn create(&self, pids: &[u32]) -> Result<(), CgroupError> {
        if pids.is_empty() {
            // A scope cannot exist empty: it starts with the first process added.
            return Ok(());
        }
        if self.active_state()?.as_deref() == Some("active") {
            for pid in pids {
                self.add_process(*pid)?;
            }
            return Ok(());
        }
        self.start(pids)
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
