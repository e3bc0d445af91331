//! A guest cgroup (v2) per container, as the Kata agent makes one (rustjail `LinuxContainer::new`
//! with the cgroupfs manager, the only one it uses as the VM's init): the path is
//! `linux.cgroupsPath` with `:` turned into `/` (a systemd-style `slice:prefix:name` becomes
//! nested directories), or `/<container id>` when the spec has none, below the guest's cgroup2
//! mount. The directory is created and `linux.resources` applied at CreateContainer, the
//! container's processes join it before they run user code (spawn), UpdateContainer applies new
//! resources, RemoveContainer deletes it (and the parents it made).
//!
//! Creating, joining and the cpu/cpuset/memory.max/pids limits go through the `cgroups` crate's
//! v2 manager; what it does not cover (memory.low, memory.swap.max, hugetlb) is written here.
//! What cgroup v2 cannot do (realtime CPU, kernel memory, swappiness, disabling the OOM killer,
//! v1 net_cls/net_prio) or this agent does not do (block I/O limits) is refused by name; device
//! rules are not enforced (see the README's agent table).

use std::path::{Path, PathBuf};

use cgroups::{CgroupManager, FsV2Manager, Resources};

use super::error::GuestError;
use super::guest_root::GuestRoot;
use crate::protocols::oci::{LinuxMemory, LinuxResources, Spec};

/// The guest's cgroup2 mount (ts/guest/guest-init.sh, Kata's guest images).
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// The cgroup path (relative to the mount) of container `cid` whose spec names `cgroups_path`.
pub fn cgroup_path(cid: &str, cgroups_path: &str) -> String {
    if cgroups_path.is_empty() {
        format!("/{cid}")
    } else {
        cgroups_path.replace(':', "/")
    }
}

/// Moves the just-cloned `pid` into the cgroup directory `dir` (none: stays where the agent
/// is); on failure the process is killed, so it never runs outside its limits.
pub fn place(dir: Option<&Path>, pid: nix::unistd::Pid) -> Result<(), GuestError> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let procs = dir.join("cgroup.procs");
    write(&procs, &pid.to_string()).inspect_err(|_| {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    })
}

/// Whether `path` is a cgroup2 mount.
fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// Whether `r` asks for anything to be enforced.
fn has_limits(r: &LinuxResources) -> bool {
    r.Memory.is_some()
        || r.CPU.is_some()
        || r.Pids.is_some()
        || r.BlockIO.is_some()
        || r.Network.is_some()
        || !r.HugepageLimits.is_empty()
}

/// The cgroup of a new container: made when the guest has cgroup2 at [`CGROUP_MOUNT`]; without
/// it (an agent tried on a host directory) the container runs in the agent's cgroup, and a spec
/// asking for limits is refused rather than run unlimited.
pub fn for_container(
    root: &GuestRoot,
    cid: &str,
    spec: &Spec,
) -> Result<Option<ContainerCgroup>, GuestError> {
    let mount = root.resolve(CGROUP_MOUNT)?;
    if is_cgroup2(&mount) {
        return ContainerCgroup::create(root, cid, spec).map(Some);
    }
    let resources = spec.Linux.as_ref().and_then(|l| l.Resources.as_ref());
    if resources.is_some_and(has_limits) {
        return Err(GuestError::Unsupported {
            what: format!(
                "linux.resources without a cgroup2 mount at {}",
                mount.display()
            ),
        });
    }
    Ok(None)
}

/// One container's cgroup.
#[derive(Debug)]
pub struct ContainerCgroup {
    mgr: FsV2Manager,
    root: PathBuf,
    /// The ancestors creation made, removed again (when empty) on delete.
    parents: Vec<PathBuf>,
    /// Whether this agent made the cgroup (then it removes it with the last container in it).
    pub made: bool,
}

fn cg_err(cid: &str) -> impl FnOnce(cgroups::CgroupError) -> GuestError + '_ {
    move |source| GuestError::Cgroup {
        container_id: cid.to_string(),
        source: Box::new(source),
    }
}

fn write(path: &Path, value: &str) -> Result<(), GuestError> {
    std::fs::write(path, value).map_err(|source| GuestError::Io {
        op: "write cgroup file",
        path: path.to_path_buf(),
        source,
    })
}

fn unsupported(what: &str) -> GuestError {
    GuestError::Unsupported {
        what: format!("{what} (no cgroup v2 equivalent in the guest)"),
    }
}

impl ContainerCgroup {
    /// Creates the cgroup of container `cid` and applies the spec's `linux.resources`.
    pub fn create(root: &GuestRoot, cid: &str, spec: &Spec) -> Result<Self, GuestError> {
        let linux = spec.Linux.as_ref();
        let path = cgroup_path(cid, linux.map_or("", |l| l.CgroupsPath.as_str()));
        let mount = root.resolve(CGROUP_MOUNT)?;
        let mgr = FsV2Manager::new(&mount, &path).map_err(|e| GuestError::BadValue {
            what: "linux.cgroupsPath",
            value: path.clone(),
            why: e.to_string(),
        })?;
        // Containers naming the same cgroupsPath share the cgroup, as in the Kata agent (the
        // last resources applied win); one that exists already is joined, not removed after.
        let made = !mgr.dir().exists();
        let parents = mgr.create(&[]).map_err(cg_err(cid))?;
        let cg = ContainerCgroup {
            mgr,
            root: mount,
            parents,
            made,
        };
        if let Some(r) = linux.and_then(|l| l.Resources.as_ref()) {
            if let Err(e) = cg.apply(cid, r) {
                if made {
                    let _ = cg.delete(cid);
                }
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// Shares the cgroup `other` (same directory) made: this one removes it (and the parents
    /// made for it) if it is the last container in it.
    pub fn share_with(&mut self, other: &ContainerCgroup) {
        if other.made && other.dir() == self.dir() {
            self.made = true;
            for p in &other.parents {
                if !self.parents.contains(p) {
                    self.parents.push(p.clone());
                }
            }
            self.parents.sort_by_key(|p| p.components().count());
        }
    }

    /// The cgroup's directory (in the agent's view).
    pub fn dir(&self) -> PathBuf {
        self.mgr.dir()
    }

    /// Moves process `pid` into the cgroup.
    pub fn join(&self, cid: &str, pid: u32) -> Result<(), GuestError> {
        self.mgr.add_process(pid).map_err(cg_err(cid))
    }

    /// Applies `r` (CreateContainer's `linux.resources`, or UpdateContainer's): unset fields
    /// (zero, empty) are left alone.
    pub fn apply(&self, cid: &str, r: &LinuxResources) -> Result<(), GuestError> {
        refuse_unsupported(r)?;
        let mut res = Resources::default();
        if let Some(cpu) = r.CPU.as_ref() {
            res.cpu_shares = (cpu.Shares != 0).then_some(cpu.Shares);
            res.cpu_quota_us = (cpu.Quota != 0).then_some(cpu.Quota);
            res.cpu_period_us = (cpu.Period != 0).then_some(cpu.Period);
            res.cpuset_cpus = (!cpu.Cpus.is_empty()).then(|| cpu.Cpus.clone());
            res.cpuset_mems = (!cpu.Mems.is_empty()).then(|| cpu.Mems.clone());
        }
        if let Some(pids) = r.Pids.as_ref() {
            // As the Kata agent: a limit <= 0 is "max".
            res.pids_max = Some(if pids.Limit > 0 { pids.Limit } else { -1 });
        }
        let memory = r.Memory.as_ref();
        let swap = memory.map(swap_v2).transpose()?.flatten();
        if let Some(m) = memory {
            res.memory_limit_bytes = (m.Limit != 0).then_some(m.Limit);
        }
        let dir = self.dir();
        // A lower memory.max than the swap already set is fine on v2 (separate counters), so
        // the order of memory.max and memory.swap.max does not matter.
        self.mgr.set_resources(&res).map_err(cg_err(cid))?;
        if let Some(m) = memory {
            if m.Reservation != 0 {
                write(&dir.join("memory.low"), &max_or(m.Reservation))?;
            }
        }
        if let Some(swap) = swap {
            write(&dir.join("memory.swap.max"), &max_or(swap))?;
        }
        if !r.HugepageLimits.is_empty() {
            self.enable("hugetlb")?;
            for h in &r.HugepageLimits {
                check_pagesize(&h.Pagesize)?;
                write(
                    &dir.join(format!("hugetlb.{}.max", h.Pagesize)),
                    &h.Limit.to_string(),
                )?;
            }
        }
        Ok(())
    }

    /// Enables `controller` from the mount down to the cgroup's parent (the manager enables
    /// cpu, cpuset, memory and pids only).
    fn enable(&self, controller: &str) -> Result<(), GuestError> {
        let leaf = self.dir();
        let rel = leaf.strip_prefix(&self.root).unwrap_or(Path::new(""));
        let mut dir = self.root.clone();
        for part in rel.iter() {
            let control = dir.join("cgroup.subtree_control");
            let on = std::fs::read_to_string(&control).unwrap_or_default();
            if !on.split_whitespace().any(|c| c == controller) {
                write(&control, &format!("+{controller}"))?;
            }
            dir.push(part);
        }
        Ok(())
    }

    /// Removes the cgroup (remaining processes go to the root first) and the parents it made.
    pub fn delete(&self, cid: &str) -> Result<(), GuestError> {
        self.mgr.delete().map_err(cg_err(cid))?;
        self.mgr
            .remove_parents(&self.parents)
            .map_err(cg_err(cid))?;
        Ok(())
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// `memory.swap.max` for the OCI memory+swap value (runc's and the Kata agent's
/// `convert_memory_swap_to_v2_value`); `None` leaves swap alone.
fn swap_v2(m: &LinuxMemory) -> Result<Option<i64>, GuestError> {
    let (swap, limit) = (m.Swap, m.Limit);
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    let bad = |why: &str| GuestError::BadValue {
        what: "linux.resources.memory.swap",
        value: swap.to_string(),
        why: why.into(),
    };
    if limit <= 0 {
        return Err(bad("a swap limit needs a memory limit"));
    }
    if swap < limit {
        return Err(bad("memory+swap must be >= the memory limit"));
    }
    Ok(Some(swap - limit))
}

/// A hugetlb page size as the kernel names it (`2MB`, `1GB`, `64KB`): digits and a unit.
fn check_pagesize(size: &str) -> Result<(), GuestError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !["KB", "MB", "GB"].contains(&unit)
    {
        return Err(GuestError::BadValue {
            what: "linux.resources.hugepageLimits.pageSize",
            value: size.into(),
            why: "not a page size like 2MB".into(),
        });
    }
    Ok(())
}

/// Refuses the settings cgroup v2 (or this agent) cannot carry out, by name.
fn refuse_unsupported(r: &LinuxResources) -> Result<(), GuestError> {
    if let Some(cpu) = r.CPU.as_ref() {
        if cpu.RealtimeRuntime != 0 || cpu.RealtimePeriod != 0 {
            return Err(unsupported(
                "linux.resources.cpu.realtimeRuntime/realtimePeriod",
            ));
        }
    }
    if let Some(m) = r.Memory.as_ref() {
        if m.Kernel != 0 || m.KernelTCP != 0 {
            return Err(unsupported("linux.resources.memory.kernel/kernelTCP"));
        }
        if m.Swappiness != 0 {
            return Err(unsupported("linux.resources.memory.swappiness"));
        }
        if m.DisableOOMKiller {
            return Err(unsupported("linux.resources.memory.disableOOMKiller"));
        }
    }
    if let Some(n) = r.Network.as_ref() {
        if n.ClassID != 0 || !n.Priorities.is_empty() {
            return Err(unsupported("linux.resources.network (net_cls/net_prio)"));
        }
    }
    if let Some(b) = r.BlockIO.as_ref() {
        if *b != Default::default() {
            return Err(GuestError::Unsupported {
                what: "linux.resources.blockIO (block I/O limits in the guest)".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_kata_agents_choice() {
        assert_eq!(cgroup_path("c1", ""), "/c1");
        assert_eq!(cgroup_path("c1", "/kubepods/pod1/c1"), "/kubepods/pod1/c1");
        assert_eq!(
            cgroup_path("c1", "kubepods.slice:cri-containerd:c1"),
            "kubepods.slice/cri-containerd/c1"
        );
    }

    #[test]
    fn swap_is_converted_as_runc_does() {
        let m = |limit, swap| LinuxMemory {
            Limit: limit,
            Swap: swap,
            ..Default::default()
        };
        assert_eq!(swap_v2(&m(100, 300)).unwrap(), Some(200));
        assert_eq!(swap_v2(&m(100, 100)).unwrap(), Some(0));
        assert_eq!(swap_v2(&m(-1, 0)).unwrap(), Some(-1));
        assert_eq!(swap_v2(&m(100, 0)).unwrap(), None);
        assert_eq!(swap_v2(&m(100, -1)).unwrap(), Some(-1));
        assert!(swap_v2(&m(0, 100)).is_err());
        assert!(swap_v2(&m(200, 100)).is_err());
    }

    #[test]
    fn page_sizes_are_checked() {
        for ok in ["2MB", "1GB", "64KB"] {
            assert!(check_pagesize(ok).is_ok(), "{ok}");
        }
        for bad in ["", "MB", "2", "2MB/../x", "../2MB", "2mb"] {
            assert!(check_pagesize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_v2_cannot_do_is_refused_by_name() {
        let mut r = LinuxResources::new();
        r.Memory.mut_or_insert_default().DisableOOMKiller = true;
        let e = refuse_unsupported(&r).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::UNIMPLEMENTED);
        assert!(e.to_string().contains("disableOOMKiller"), "{e}");
        let mut r = LinuxResources::new();
        r.CPU.mut_or_insert_default().RealtimeRuntime = 950_000;
        assert!(refuse_unsupported(&r).is_err());
        let mut r = LinuxResources::new();
        r.CPU.mut_or_insert_default().Shares = 1024;
        r.Memory.mut_or_insert_default().Limit = 1 << 26;
        assert!(refuse_unsupported(&r).is_ok());
    }
}
