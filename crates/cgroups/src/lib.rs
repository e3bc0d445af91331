//! Host cgroups for a kata-ts sandbox: one [`CgroupManager`] interface with a cgroupfs driver
//! for v1 ([`FsV1Manager`]: per-controller hierarchies, `tasks` and `cgroup.procs`, cpuset
//! inheritance) and v2 ([`FsV2Manager`]: unified, `cgroup.procs`, `cgroup.subtree_control`),
//! and a systemd driver ([`SystemdManager`]: transient scopes over D-Bus) for either layout.
//! [`detect_layout`] tells v1, hybrid and v2 apart from the mounts.
//!
//! # Why not `cgroups-rs`
//!
//! The reference runtime uses `cgroups-rs` 0.5 (`FsManager`/`SystemdManager`). We evaluated it
//! and implement the small part we need directly over the cgroup files, plus `zbus` for
//! systemd, because three things it does conflict with what we must do:
//! - its systemd client always talks to the host's system bus (`systemd_manager_proxy()`), and
//!   passes pids to systemd unchanged; we must address a given bus (the tests' private systemd)
//!   and translate pids into systemd's pid namespace;
//! - its managers find hierarchies from `/proc/self/mountinfo` and map systemd units onto the
//!   host cgroup root; ours take the root and, for systemd, the delegated base subtree;
//! - delete must move every remaining process with `cgroup.procs` (whole thread groups) before
//!   removing depth-first, and be idempotent; the reference's history (`tasks`, then
//!   `remove_task_by_tgid`) is exactly what behaviour.md asks us not to copy.
//!
//! What we keep from it: the name rules (`expand_slice`, `new_unit_name`), the scope
//! properties (`Delegate`, `DefaultDependencies=no`, `PIDs`), and "systemd `add_thread` ==
//! `add_proc`". On v1, systemd does not manage cpuset, so the scope's cpuset cgroup is kept
//! through cgroupfs (as runc does).

mod detect;
mod error;
mod files;
mod fs_v1;
mod fs_v2;
mod manager;
mod systemd;

#[cfg(test)]
mod guest_v2_tests;
#[cfg(test)]
mod host_parent_tests;
#[cfg(test)]
mod host_tests;

pub use detect::{detect_layout, layout_from_mountinfo, CgroupLayout};
pub use error::{CgroupError, FsError, SystemdError};
pub use fs_v1::FsV1Manager;
pub use fs_v2::FsV2Manager;
pub use manager::{shares_to_weight, weight_to_shares, CgroupManager, Resources};
pub use systemd::{
    cpuset_mask, expand_slice, unit_name, SystemdLayout, SystemdManager, SystemdOptions,
};

/// The thread group id (process) of a task, from `/proc/<tid>/status`.
pub fn tgid_of(tid: u32) -> Result<u32, FsError> {
    files::tgid_of(tid)
}
