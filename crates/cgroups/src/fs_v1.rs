//! cgroupfs on v1: one directory per controller hierarchy (`<root>/<ctrl>/<path>`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, CgroupError, FsError};
use crate::files;
use crate::manager::{CgroupManager, Resources};

/// One v1 hierarchy: its name below the root (`cpu`, `memory`, `systemd`, …) and mount dir.
#[derive(Debug, Clone)]
struct Hierarchy {
    name: String,
    mount: PathBuf,
}

/// A cgroup in v1 hierarchies, written through the cgroup files.
#[derive(Debug)]
pub struct FsV1Manager {
    root: PathBuf,
    path: PathBuf,
    hierarchies: Vec<Hierarchy>,
}

/// Lists the v1 hierarchies below `root`: directories holding `cgroup.procs` but not
/// `cgroup.controllers` (the cgroup2 mount of a hybrid layout). Co-mounted names
/// (`cpu,cpuacct` with symlinks) are kept once.
fn discover(root: &Path) -> Result<Vec<Hierarchy>, FsError> {
    let mut found: Vec<(Hierarchy, PathBuf)> = Vec::new();
    let mut names: Vec<String> = fs::read_dir(root)
        .map_err(|e| io_err("list", root, None, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let mount = root.join(&name);
        if !mount.join("cgroup.procs").exists() || mount.join("cgroup.controllers").exists() {
            continue;
        }
        let real = fs::canonicalize(&mount).unwrap_or_else(|_| mount.clone());
        if found.iter().any(|(_, r)| *r == real) {
            continue;
        }
        found.push((Hierarchy { name, mount }, real));
    }
    Ok(found.into_iter().map(|(h, _)| h).collect())
}

impl FsV1Manager {
    /// A manager for `path` (relative to each hierarchy) in the hierarchies below `root`
    /// (normally `/sys/fs/cgroup`). `controllers` limits it to those hierarchies (by directory
    /// name); `None` uses every v1 hierarchy found.
    pub fn new(root: &Path, path: &str, controllers: Option<&[String]>) -> Result<Self, FsError> {
        let path = files::check_rel_path(path)?;
        let hierarchies = match controllers {
            // Named hierarchies are only checked, not discovered: constructing a manager stays
            // cheap on the hot path.
            Some(wanted) => wanted
                .iter()
                .map(|name| {
                    let mount = root.join(name);
                    if name.contains('/')
                        || !mount.join("cgroup.procs").exists()
                        || mount.join("cgroup.controllers").exists()
                    {
                        return Err(FsError::NoController {
                            controller: controller_static(name),
                            root: root.to_path_buf(),
                            field: "controllers",
                        });
                    }
                    Ok(Hierarchy {
                        name: name.clone(),
                        mount,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => discover(root)?,
        };
        if hierarchies.is_empty() {
            return Err(FsError::NoHierarchy {
                root: root.to_path_buf(),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            path,
            hierarchies,
        })
    }

    /// The cgroup's directory in hierarchy `name`, if this manager spans it.
    pub fn dir(&self, name: &str) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.mount.join(&self.path))
    }

    /// Names of the hierarchies this manager spans.
    pub fn hierarchy_names(&self) -> Vec<String> {
        self.hierarchies.iter().map(|h| h.name.clone()).collect()
    }

    fn need(&self, controller: &'static str, field: &'static str) -> Result<PathBuf, FsError> {
        self.dir(controller).ok_or_else(|| FsError::NoController {
            controller,
            root: self.root.clone(),
            field,
        })
    }

    /// Makes the cgroup in every hierarchy; returns the ancestors made on the way.
    fn create_dirs(&self) -> Result<Vec<PathBuf>, FsError> {
        let mut parents = Vec::new();
        for h in &self.hierarchies {
            let leaf = h.mount.join(&self.path);
            let created = files::mkdir_all(&leaf)?;
            if h.name == "cpuset" {
                // A new cpuset cgroup starts with empty cpus/mems and refuses tasks until they
                // are set: copy them down from the parent, level by level.
                for dir in &created {
                    inherit_cpuset(dir)?;
                }
            }
            parents.extend(created.into_iter().filter(|d| *d != leaf));
        }
        Ok(parents)
    }

    /// `(hierarchy mount, cgroup dir)` for each hierarchy.
    fn cgroup_dirs(&self) -> Vec<(PathBuf, PathBuf)> {
        self.hierarchies
            .iter()
            .map(|h| (h.mount.clone(), h.mount.join(&self.path)))
            .collect()
    }

    fn write_all(&self, file: &str, id: u32) -> Result<(), FsError> {
        let data = id.to_string();
        for h in &self.hierarchies {
            files::write(&h.mount.join(&self.path).join(file), &data)?;
        }
        Ok(())
    }
}

/// Names known to the error type; anything else reports as `unknown`.
fn controller_static(name: &str) -> &'static str {
    [
        "cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer", "blkio", "systemd",
        "hugetlb",
    ]
    .into_iter()
    .find(|c| *c == name)
    .unwrap_or("unknown")
}

fn inherit_cpuset(dir: &Path) -> Result<(), FsError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if files::read(&dir.join(file))?.is_empty() {
            let value = files::read(&parent.join(file))?;
            files::write(&dir.join(file), &value)?;
        }
    }
    Ok(())
}

impl CgroupManager for FsV1Manager {
    fn create(&self, pids: &[u32]) -> Result<Vec<PathBuf>, CgroupError> {
        let parents = self.create_dirs()?;
        for pid in pids {
            self.add_process(*pid)?;
        }
        Ok(parents)
    }

    fn missing_parents(&self) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(self
            .hierarchies
            .iter()
            .flat_map(|h| files::missing_ancestors(&h.mount, &self.path))
            .collect())
    }

    fn remove_parents(&self, parents: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(files::remove_empty_parents(&self.cgroup_dirs(), parents)?)
    }

    fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        Ok(self.write_all("cgroup.procs", pid)?)
    }

    fn add_thread(&self, tid: u32) -> Result<(), CgroupError> {
        Ok(self.write_all("tasks", tid)?)
    }

    fn set_resources(&self, r: &Resources) -> Result<(), CgroupError> {
        if r.cpu_period_us.is_some() || r.cpu_quota_us.is_some() || r.cpu_shares.is_some() {
            let cpu = self.need("cpu", "cpu")?;
            if let Some(period) = r.cpu_period_us {
                files::write(&cpu.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if let Some(quota) = r.cpu_quota_us {
                files::write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            if let Some(shares) = r.cpu_shares {
                files::write(&cpu.join("cpu.shares"), &shares.to_string())?;
            }
        }
        if r.cpuset_cpus.is_some() || r.cpuset_mems.is_some() {
            let cpuset = self.need("cpuset", "cpuset")?;
            if let Some(cpus) = &r.cpuset_cpus {
                files::write(&cpuset.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = &r.cpuset_mems {
                files::write(&cpuset.join("cpuset.mems"), mems)?;
            }
        }
        if let Some(limit) = r.memory_limit_bytes {
            let memory = self.need("memory", "memory_limit_bytes")?;
            files::write(&memory.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        if let Some(max) = r.pids_max {
            let pids = self.need("pids", "pids_max")?;
            let value = if max < 0 {
                "max".to_string()
            } else {
                max.to_string()
            };
            files::write(&pids.join("pids.max"), &value)?;
        }
        Ok(())
    }

    fn read_resources(&self) -> Result<Resources, CgroupError> {
        let mut r = Resources::default();
        if let Some(cpu) = self.dir("cpu") {
            r.cpu_quota_us = Some(files::read_i64(&cpu.join("cpu.cfs_quota_us"), -1)?);
            let period = files::read_i64(&cpu.join("cpu.cfs_period_us"), -1)?;
            r.cpu_period_us = u64::try_from(period).ok();
            r.cpu_shares = u64::try_from(files::read_i64(&cpu.join("cpu.shares"), -1)?).ok();
        }
        if let Some(cpuset) = self.dir("cpuset") {
            r.cpuset_cpus = Some(files::read(&cpuset.join("cpuset.cpus"))?);
            r.cpuset_mems = Some(files::read(&cpuset.join("cpuset.mems"))?);
        }
        if let Some(memory) = self.dir("memory") {
            let path = memory.join("memory.limit_in_bytes");
            let text = files::read(&path)?;
            // "Unlimited" reads back as PAGE_COUNTER_MAX pages, a huge number; report -1.
            r.memory_limit_bytes = Some(match text.parse::<u64>() {
                Ok(v) if v >= 0x7fff_ffff_ffff_f000 => -1,
                _ => files::parse_i64(&path, &text, -1)?,
            });
        }
        if let Some(pids) = self.dir("pids") {
            r.pids_max = Some(files::read_i64(&pids.join("pids.max"), -1)?);
        }
        Ok(r)
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        let mut all = Vec::new();
        for h in &self.hierarchies {
            match files::read_ids(&h.mount.join(&self.path).join("cgroup.procs")) {
                Ok(ids) => all.extend(ids),
                Err(FsError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    fn delete(&self) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            files::remove_tree(&h.mount.join(&self.path), &h.mount.join("cgroup.procs"))?;
        }
        Ok(())
    }
}
