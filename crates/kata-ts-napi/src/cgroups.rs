//! Binding of the `cgroups` crate: a `CgroupManager` class over either driver. Synchronous
//! methods for cgroupfs (a few file writes each); `…Async` twins run on a blocking thread for
//! systemd, whose D-Bus calls take milliseconds.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cgroups::{
    detect_layout, tgid_of, CgroupError, CgroupManager as Manager, FsError, FsV1Manager,
    FsV2Manager, Resources, SystemdError, SystemdLayout, SystemdManager, SystemdOptions,
};
use napi_derive::napi;

use crate::error::{coded, guard, guard_async, Result};

fn to_js(err: CgroupError) -> napi::Error<crate::error::Code> {
    let code = match &err {
        CgroupError::Fs(e) => fs_code(e),
        CgroupError::Systemd(e) => match e.as_ref() {
            SystemdError::Connect { .. } | SystemdError::Call { .. } => "CGROUP_DBUS",
            SystemdError::Timeout { .. } | SystemdError::BadState { .. } => "CGROUP_SYSTEMD_STATE",
            SystemdError::InvalidName { .. } => "CGROUP_INVALID",
        },
    };
    coded(code, err.to_string())
}

fn fs_code(e: &FsError) -> &'static str {
    match e {
        FsError::Io { .. } => "CGROUP_IO",
        FsError::Parse { .. } => "CGROUP_PARSE",
        FsError::NoController { .. } | FsError::NoHierarchy { .. } => "CGROUP_NO_CONTROLLER",
        FsError::InvalidPath { .. } => "CGROUP_INVALID",
        FsError::Proc { .. } => "CGROUP_PROC",
    }
}

fn fs_to_js(err: FsError) -> napi::Error<crate::error::Code> {
    to_js(err.into())
}

/// Limits of a cgroup; absent fields are left alone (or, read back, not available here).
#[napi(object)]
#[derive(Debug, Default)]
pub struct CgroupResources {
    /// CFS quota in µs per period; -1 unlimited.
    pub quota_us: Option<i64>,
    /// CFS period in µs.
    pub period_us: Option<i64>,
    /// v1 cpu.shares (v2: converted to cpu.weight).
    pub shares: Option<i64>,
    /// cpuset CPUs, e.g. `0-1`.
    pub cpus: Option<String>,
    /// cpuset memory nodes, e.g. `0`.
    pub mems: Option<String>,
    /// Memory limit in bytes; -1 unlimited.
    pub memory_bytes: Option<i64>,
    /// Maximum tasks; -1 unlimited.
    pub pids_max: Option<i64>,
}

fn unsigned(field: &str, value: Option<i64>) -> Result<Option<u64>> {
    value
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                coded(
                    "CGROUP_INVALID",
                    format!("{field} must not be negative, got {v}"),
                )
            })
        })
        .transpose()
}

fn from_js(r: &CgroupResources) -> Result<Resources> {
    Ok(Resources {
        cpu_quota_us: r.quota_us,
        cpu_period_us: unsigned("periodUs", r.period_us)?,
        cpu_shares: unsigned("shares", r.shares)?,
        cpuset_cpus: r.cpus.clone(),
        cpuset_mems: r.mems.clone(),
        memory_limit_bytes: r.memory_bytes,
        pids_max: r.pids_max,
    })
}

fn to_js_resources(r: Resources) -> CgroupResources {
    CgroupResources {
        quota_us: r.cpu_quota_us,
        period_us: r.cpu_period_us.and_then(|v| i64::try_from(v).ok()),
        shares: r.cpu_shares.and_then(|v| i64::try_from(v).ok()),
        cpus: r.cpuset_cpus,
        mems: r.cpuset_mems,
        memory_bytes: r.memory_limit_bytes,
        pids_max: r.pids_max,
    }
}

/// A cgroupfs cgroup.
#[napi(object)]
#[derive(Debug)]
pub struct CgroupfsOptions {
    /// `v1` (controller hierarchies below `root`) or `v2` (`root` is the cgroup2 mount).
    pub version: String,
    /// Hierarchy root; default `/sys/fs/cgroup`.
    pub root: Option<String>,
    /// Path below each hierarchy root, e.g. `kata_sandboxed_pod/s1`.
    pub path: String,
    /// v1 only: the hierarchies to use (directory names); default all.
    pub controllers: Option<Vec<String>>,
}

/// A systemd transient scope.
#[napi(object)]
#[derive(Debug)]
pub struct SystemdScopeOptions {
    /// `v1` (legacy/hybrid) or `v2` (unified): where systemd writes limits.
    pub version: String,
    /// D-Bus address; default the system bus.
    pub bus_address: Option<String>,
    /// Slice, e.g. `system.slice`.
    pub slice: String,
    /// Scope unit name, e.g. `kata-s1.scope`.
    pub unit: String,
    /// cgroup mount root as seen from here; default `/sys/fs/cgroup`.
    pub cgroup_root: Option<String>,
    /// systemd's cgroup root below each hierarchy (for a systemd in a cgroup namespace).
    pub cgroup_base: Option<String>,
    /// systemd runs in a nested pid namespace: translate pids into it.
    pub pid_namespace: Option<bool>,
    /// Wait for start/stop jobs at most this long (default 30000 ms).
    pub timeout_ms: Option<u32>,
}

/// One cgroup of the sandbox, managed through cgroupfs or systemd.
#[napi]
#[derive(Debug)]
pub struct CgroupManager {
    inner: Arc<dyn Manager>,
}

fn paths_to_js(paths: Vec<PathBuf>) -> Vec<String> {
    paths.into_iter().map(|p| p.display().to_string()).collect()
}

fn root_of(root: Option<String>) -> PathBuf {
    PathBuf::from(root.unwrap_or_else(|| "/sys/fs/cgroup".to_string()))
}

#[napi]
impl CgroupManager {
    /// A cgroupfs manager (nothing is created until `create`).
    #[napi(factory, catch_unwind)]
    pub fn cgroupfs(options: CgroupfsOptions) -> Result<Self> {
        guard(move || {
            let root = root_of(options.root);
            let inner: Arc<dyn Manager> = match options.version.as_str() {
                "v1" => Arc::new(
                    FsV1Manager::new(&root, &options.path, options.controllers.as_deref())
                        .map_err(fs_to_js)?,
                ),
                "v2" => Arc::new(FsV2Manager::new(&root, &options.path).map_err(fs_to_js)?),
                other => {
                    return Err(coded(
                        "CGROUP_INVALID",
                        format!("cgroup version must be v1 or v2, got {other:?}"),
                    ))
                }
            };
            Ok(Self { inner })
        })
    }

    /// A systemd scope manager (the bus is contacted on first use).
    #[napi(factory, catch_unwind)]
    pub fn systemd(options: SystemdScopeOptions) -> Result<Self> {
        guard(move || {
            let layout = match options.version.as_str() {
                "v1" => SystemdLayout::V1,
                "v2" => SystemdLayout::V2,
                other => {
                    return Err(coded(
                        "CGROUP_INVALID",
                        format!("cgroup version must be v1 or v2, got {other:?}"),
                    ))
                }
            };
            let manager = SystemdManager::new(SystemdOptions {
                bus_address: options.bus_address,
                slice: options.slice,
                unit: options.unit,
                cgroup_root: root_of(options.cgroup_root),
                cgroup_base: options.cgroup_base.unwrap_or_default(),
                layout,
                pid_namespace: options.pid_namespace.unwrap_or(false),
                timeout: Duration::from_millis(u64::from(options.timeout_ms.unwrap_or(30_000))),
            })
            .map_err(to_js)?;
            Ok(Self {
                inner: Arc::new(manager),
            })
        })
    }

    fn run<T>(
        &self,
        op: impl FnOnce(&dyn Manager) -> std::result::Result<T, CgroupError>,
    ) -> Result<T> {
        let inner = &self.inner;
        // The manager holds only paths and a D-Bus connection; a panic leaves nothing half-set
        // that a later call could misread.
        guard(AssertUnwindSafe(move || op(inner.as_ref()).map_err(to_js)))
    }

    /// Creates the cgroup and places `pids` in it; returns the parent directories it created.
    #[napi]
    pub fn create(&self, pids: Vec<u32>) -> Result<Vec<String>> {
        self.run(|m| m.create(&pids)).map(paths_to_js)
    }

    /// Parent directories that do not exist yet (what `create` would make).
    #[napi]
    pub fn missing_parents(&self) -> Result<Vec<String>> {
        self.run(|m| m.missing_parents()).map(paths_to_js)
    }

    /// Removes the empty ones of `parents` (made by `create`), deepest first; returns them.
    #[napi]
    pub fn remove_parents(&self, parents: Vec<String>) -> Result<Vec<String>> {
        let parents: Vec<PathBuf> = parents.into_iter().map(PathBuf::from).collect();
        self.run(|m| m.remove_parents(&parents)).map(paths_to_js)
    }

    /// Moves a whole process in.
    #[napi]
    pub fn add_process(&self, pid: u32) -> Result<()> {
        self.run(|m| m.add_process(pid))
    }

    /// Moves one thread in (v1 cgroupfs); other drivers move its whole process.
    #[napi]
    pub fn add_thread(&self, tid: u32) -> Result<()> {
        self.run(|m| m.add_thread(tid))
    }

    /// Sets or updates limits.
    #[napi]
    pub fn set_resources(&self, resources: CgroupResources) -> Result<()> {
        let r = from_js(&resources)?;
        self.run(|m| m.set_resources(&r))
    }

    /// Reads limits back from the cgroup files.
    #[napi]
    pub fn read_resources(&self) -> Result<CgroupResources> {
        self.run(|m| m.read_resources()).map(to_js_resources)
    }

    /// Process ids (tgids) in the cgroup.
    #[napi]
    pub fn procs(&self) -> Result<Vec<u32>> {
        self.run(|m| m.procs())
    }

    /// Moves remaining processes to the root and removes the cgroup; idempotent.
    #[napi]
    pub fn delete(&self) -> Result<()> {
        self.run(|m| m.delete())
    }

    /// `create` on a blocking thread.
    #[napi]
    pub async fn create_async(&self, pids: Vec<u32>) -> napi::Result<Vec<String>> {
        blocking(self.inner.clone(), move |m| m.create(&pids))
            .await
            .map(paths_to_js)
    }

    /// `removeParents` on a blocking thread.
    #[napi]
    pub async fn remove_parents_async(&self, parents: Vec<String>) -> napi::Result<Vec<String>> {
        let parents: Vec<PathBuf> = parents.into_iter().map(PathBuf::from).collect();
        blocking(self.inner.clone(), move |m| m.remove_parents(&parents))
            .await
            .map(paths_to_js)
    }

    /// `addProcess` on a blocking thread.
    #[napi]
    pub async fn add_process_async(&self, pid: u32) -> napi::Result<()> {
        blocking(self.inner.clone(), move |m| m.add_process(pid)).await
    }

    /// `addThread` on a blocking thread.
    #[napi]
    pub async fn add_thread_async(&self, tid: u32) -> napi::Result<()> {
        blocking(self.inner.clone(), move |m| m.add_thread(tid)).await
    }

    /// `setResources` on a blocking thread.
    #[napi]
    pub async fn set_resources_async(&self, resources: CgroupResources) -> napi::Result<()> {
        let inner = self.inner.clone();
        guard_async(async move {
            let r = from_js(&resources)?;
            run_blocking(inner, move |m| m.set_resources(&r)).await
        })
        .await
    }

    /// `readResources` on a blocking thread.
    #[napi]
    pub async fn read_resources_async(&self) -> napi::Result<CgroupResources> {
        blocking(self.inner.clone(), |m| m.read_resources())
            .await
            .map(to_js_resources)
    }

    /// `delete` on a blocking thread.
    #[napi]
    pub async fn delete_async(&self) -> napi::Result<()> {
        blocking(self.inner.clone(), |m| m.delete()).await
    }
}

async fn run_blocking<T: Send + 'static>(
    inner: Arc<dyn Manager>,
    op: impl FnOnce(&dyn Manager) -> std::result::Result<T, CgroupError> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(move || op(inner.as_ref())).await {
        Ok(result) => result.map_err(to_js),
        Err(e) if e.is_panic() => Err(coded("PANIC", "native panic in a cgroup operation")),
        Err(e) => Err(coded("CANCELLED", format!("cgroup task cancelled: {e}"))),
    }
}

async fn blocking<T: Send + 'static>(
    inner: Arc<dyn Manager>,
    op: impl FnOnce(&dyn Manager) -> std::result::Result<T, CgroupError> + Send + 'static,
) -> napi::Result<T> {
    guard_async(run_blocking(inner, op)).await
}

/// The host's cgroup layout (`v1`, `hybrid` or `v2`) from a mountinfo file
/// (default `/proc/self/mountinfo`).
#[napi(catch_unwind)]
pub fn detect_cgroup_layout(mountinfo: Option<String>) -> Result<String> {
    guard(move || {
        let path = PathBuf::from(mountinfo.unwrap_or_else(|| "/proc/self/mountinfo".to_string()));
        detect_layout(&path)
            .map(|l| l.as_str().to_string())
            .map_err(fs_to_js)
    })
}

/// The process (tgid) a thread belongs to, from `/proc/<tid>/status`.
#[napi(catch_unwind)]
pub fn thread_group_of(tid: u32) -> Result<u32> {
    guard(move || tgid_of(tid).map_err(fs_to_js))
}
