//! cgroupfs on v2: one unified hierarchy; controllers are enabled top-down through
//! `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use crate::error::{CgroupError, FsError};
use crate::files;
use crate::manager::{shares_to_weight, weight_to_shares, CgroupManager, Resources};

/// Controllers a sandbox cgroup may use; each is enabled only where the parent offers it.
const WANTED: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];

/// A cgroup in a unified (v2) hierarchy mounted at `root`.
#[derive(Debug)]
pub struct FsV2Manager {
    root: PathBuf,
    path: PathBuf,
}

impl FsV2Manager {
    /// A manager for `path` below the cgroup2 mount `root` (`/sys/fs/cgroup` on a unified host,
    /// `/sys/fs/cgroup/unified` on a hybrid one).
    pub fn new(root: &Path, path: &str) -> Result<Self, FsError> {
        Ok(Self {
            root: root.to_path_buf(),
            path: files::check_rel_path(path)?,
        })
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.path)
    }

    /// Enables the wanted controllers the parent offers in each ancestor's subtree_control, from
    /// the root down to the cgroup's parent.
    fn enable_controllers(&self) -> Result<(), FsError> {
        let mut dir = self.root.clone();
        for part in self.path.iter() {
            let available = files::read(&dir.join("cgroup.controllers"))?;
            let enabled = files::read(&dir.join("cgroup.subtree_control"))?;
            let missing: Vec<String> = WANTED
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                files::write(&dir.join("cgroup.subtree_control"), &missing.join(" "))?;
            }
            dir.push(part);
        }
        Ok(())
    }

    /// Path of a controller file, or `NoController` when the controller is not enabled here.
    fn file(
        &self,
        controller: &'static str,
        name: &str,
        field: &'static str,
    ) -> Result<PathBuf, FsError> {
        let dir = self.dir();
        let controllers = files::read(&dir.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == controller) {
            return Err(FsError::NoController {
                controller,
                root: dir,
                field,
            });
        }
        Ok(dir.join(name))
    }

    fn has(&self, controller: &str) -> Result<bool, FsError> {
        let controllers = files::read(&self.dir().join("cgroup.controllers"))?;
        Ok(controllers.split_whitespace().any(|c| c == controller))
    }
}

fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

impl CgroupManager for FsV2Manager {
    fn create(&self, pids: &[u32]) -> Result<Vec<PathBuf>, CgroupError> {
        let leaf = self.dir();
        let mut parents = files::mkdir_all(&leaf)?;
        parents.retain(|d| *d != leaf);
        self.enable_controllers()?;
        for pid in pids {
            self.add_process(*pid)?;
        }
        Ok(parents)
    }

    fn missing_parents(&self) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(files::missing_ancestors(&self.root, &self.path))
    }

    fn remove_parents(&self, parents: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(files::remove_empty_parents(
            &[(self.root.clone(), self.dir())],
            parents,
        )?)
    }

    fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        Ok(files::write(
            &self.dir().join("cgroup.procs"),
            &pid.to_string(),
        )?)
    }

    /// v2 places whole processes in domain cgroups: the thread's process moves.
    fn add_thread(&self, tid: u32) -> Result<(), CgroupError> {
        self.add_process(files::tgid_of(tid)?)
    }

    fn set_resources(&self, r: &Resources) -> Result<(), CgroupError> {
        if r.cpu_quota_us.is_some() || r.cpu_period_us.is_some() {
            let path = self.file("cpu", "cpu.max", "cpu")?;
            let current = files::read(&path)?;
            let mut parts = current.split_whitespace();
            let old_quota = parts.next().unwrap_or("max").to_string();
            let old_period = parts.next().unwrap_or("100000").to_string();
            let quota = r.cpu_quota_us.map(max_or).unwrap_or(old_quota);
            let period = r.cpu_period_us.map(|p| p.to_string()).unwrap_or(old_period);
            files::write(&path, &format!("{quota} {period}"))?;
        }
        if let Some(shares) = r.cpu_shares {
            let path = self.file("cpu", "cpu.weight", "cpu_shares")?;
            files::write(&path, &shares_to_weight(shares).to_string())?;
        }
        if let Some(cpus) = &r.cpuset_cpus {
            files::write(&self.file("cpuset", "cpuset.cpus", "cpuset_cpus")?, cpus)?;
        }
        if let Some(mems) = &r.cpuset_mems {
            files::write(&self.file("cpuset", "cpuset.mems", "cpuset_mems")?, mems)?;
        }
        if let Some(limit) = r.memory_limit_bytes {
            files::write(
                &self.file("memory", "memory.max", "memory_limit_bytes")?,
                &max_or(limit),
            )?;
        }
        if let Some(max) = r.pids_max {
            files::write(&self.file("pids", "pids.max", "pids_max")?, &max_or(max))?;
        }
        Ok(())
    }

    fn read_resources(&self) -> Result<Resources, CgroupError> {
        let dir = self.dir();
        let mut r = Resources::default();
        if self.has("cpu")? {
            let path = dir.join("cpu.max");
            let text = files::read(&path)?;
            let mut parts = text.split_whitespace();
            r.cpu_quota_us = Some(files::parse_i64(&path, parts.next().unwrap_or(""), -1)?);
            r.cpu_period_us =
                u64::try_from(files::parse_i64(&path, parts.next().unwrap_or(""), -1)?).ok();
            let weight = u64::try_from(files::read_i64(&dir.join("cpu.weight"), -1)?).unwrap_or(0);
            r.cpu_shares = Some(weight_to_shares(weight));
        }
        if self.has("cpuset")? {
            r.cpuset_cpus = Some(files::read(&dir.join("cpuset.cpus"))?);
            r.cpuset_mems = Some(files::read(&dir.join("cpuset.mems"))?);
        }
        if self.has("memory")? {
            r.memory_limit_bytes = Some(files::read_i64(&dir.join("memory.max"), -1)?);
        }
        if self.has("pids")? {
            r.pids_max = Some(files::read_i64(&dir.join("pids.max"), -1)?);
        }
        Ok(r)
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        match files::read_ids(&self.dir().join("cgroup.procs")) {
            Ok(ids) => Ok(ids),
            Err(FsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self) -> Result<(), CgroupError> {
        Ok(files::remove_tree(
            &self.dir(),
            &self.root.join("cgroup.procs"),
        )?)
    }
}
