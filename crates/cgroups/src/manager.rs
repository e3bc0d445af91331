//! The manager interface shared by the cgroupfs and systemd implementations.

use std::fmt::Debug;
use std::path::PathBuf;

use crate::error::CgroupError;

/// Resource limits of a cgroup. `None` leaves a setting alone (and, read back, means "not
/// available in this layout"); `-1` means unlimited where the kernel has a `max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CFS quota in µs per period; -1 unlimited.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in µs.
    pub cpu_period_us: Option<u64>,
    /// v1 `cpu.shares` (on v2 converted to `cpu.weight`).
    pub cpu_shares: Option<u64>,
    /// cpuset CPU list, e.g. `0-1`.
    pub cpuset_cpus: Option<String>,
    /// cpuset memory node list, e.g. `0`.
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes; -1 unlimited.
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of tasks; -1 unlimited.
    pub pids_max: Option<i64>,
}

impl Resources {
    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One cgroup (the same relative path in every hierarchy it spans), managed by one driver.
pub trait CgroupManager: Debug + Send + Sync {
    /// Creates the cgroup (parents included) and places `pids` in it. The systemd driver needs
    /// at least one process to start a scope; with none it starts the scope on the first
    /// [`add_process`](Self::add_process). Returns the ancestor directories this call created
    /// (outermost first, in every hierarchy), for [`remove_parents`](Self::remove_parents).
    fn create(&self, pids: &[u32]) -> Result<Vec<PathBuf>, CgroupError>;
    /// The ancestor directories that do not exist yet: what [`create`](Self::create) would
    /// make, known before it acts (so a crash in between can still be undone).
    fn missing_parents(&self) -> Result<Vec<PathBuf>, CgroupError>;
    /// Removes those of `parents` (ancestors [`create`](Self::create) made) that are empty,
    /// deepest first, and returns them. One still in use (child cgroups or processes, e.g. of
    /// another sandbox below the same parent) is left; one that is not an ancestor of this
    /// cgroup below its hierarchy roots is refused.
    fn remove_parents(&self, parents: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupError>;
    /// Moves a whole process (all its threads) into the cgroup.
    fn add_process(&self, pid: u32) -> Result<(), CgroupError>;
    /// Moves one thread. Only cgroup v1 through cgroupfs places single threads; the other
    /// drivers move the thread's whole process (its tgid).
    fn add_thread(&self, tid: u32) -> Result<(), CgroupError>;
    /// Sets (or updates) the given limits; unset fields are left alone.
    fn set_resources(&self, resources: &Resources) -> Result<(), CgroupError>;
    /// Reads the limits back from the cgroup files.
    fn read_resources(&self) -> Result<Resources, CgroupError>;
    /// The processes (tgids) in the cgroup.
    fn procs(&self) -> Result<Vec<u32>, CgroupError>;
    /// Moves every remaining process to the root and removes the cgroup depth-first; a cgroup
    /// already gone is success.
    fn delete(&self) -> Result<(), CgroupError>;
}

/// cgroup v2 `cpu.weight` from v1 `cpu.shares` (runc/crun's linear map of [2, 262144] onto
/// [1, 10000]: <https://github.com/opencontainers/runc/blob/main/libcontainer/cgroups/utils.go>).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Inverse of [`shares_to_weight`] (rounded), for reading `cpu.weight` back as shares.
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(1, 10_000);
    2 + ((weight - 1) * 262_142).div_ceil(9999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight_round_trip_at_the_ends() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        for shares in [2u64, 100, 1024, 5000, 262_144] {
            assert_eq!(
                shares_to_weight(weight_to_shares(shares_to_weight(shares))),
                shares_to_weight(shares)
            );
        }
    }
}
