//! A container as guest mode carries it: its storages (mounted in the agent's namespace, so
//! RemoveContainer can undo them), the helper config for its init, and its live processes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;

use super::cgroup::{for_container, ContainerCgroup};
use super::container_init::{EXE, INIT_PID, MODE};
use super::error::GuestError;
use super::exec_path::find_executable;
use super::guest_root::GuestRoot;
use super::mount::{undo_records, MountRecord};
use super::mount_options::parse_mount_options;
use super::storage::mount_storage;
use crate::protocols::agent::{CreateContainerRequest, Storage};
use crate::protocols::oci::{Process, Spec};

/// The agent's end of a process's stdin, shared by WriteStdin calls.
pub type StdinPipe = Arc<tokio::sync::Mutex<tokio::net::unix::pipe::Sender>>;

/// A running (or not yet reaped) container process.
#[derive(Debug)]
pub struct GuestProcess {
    pub pid: Pid,
    /// `None` once CloseStdin dropped it.
    pub stdin: Option<StdinPipe>,
}

/// One container.
#[derive(Debug)]
pub struct GuestContainer {
    pub storages: Vec<MountRecord>,
    /// What the helper gets for the init: paths resolved for the agent's view.
    pub init_spec: Spec,
    pub rootfs: PathBuf,
    pub processes: HashMap<String, GuestProcess>,
    /// Its guest cgroup (none without a cgroup2 mount, see [`for_container`]).
    pub cgroup: Option<ContainerCgroup>,
}

impl GuestContainer {
    /// Mounts the storages (the rootfs storage first), checks the rootfs and the executable,
    /// makes the cgroup with the spec's resources. On failure whatever was done is undone.
    pub fn create(
        root: &GuestRoot,
        req: &CreateContainerRequest,
        timeout: Duration,
    ) -> Result<Self, GuestError> {
        let spec = req
            .OCI
            .as_ref()
            .ok_or(GuestError::Missing { field: "OCI" })?;
        let root_path = &spec
            .Root
            .as_ref()
            .map(|r| r.Path.clone())
            .unwrap_or_default();
        if root_path.is_empty() {
            return Err(GuestError::Missing {
                field: "OCI.Root.Path",
            });
        }
        let rootfs = root.resolve(root_path)?;
        let mut order: Vec<&Storage> = req.storages.iter().collect();
        order.sort_by_key(|s| {
            s.mount_point.trim_end_matches('/') != root_path.trim_end_matches('/')
        });
        let mut storages = Vec::new();
        for s in order {
            match mount_storage(root, s, timeout) {
                Ok(r) => storages.push(r),
                Err(e) => {
                    let _ = undo_records(&storages);
                    return Err(e);
                }
            }
        }
        let made = init_spec(root, spec, &rootfs)
            .and_then(|s| Ok((s, for_container(root, &req.container_id, spec)?)));
        match made {
            Ok((init_spec, cgroup)) => Ok(GuestContainer {
                storages,
                init_spec,
                rootfs,
                processes: HashMap::new(),
                cgroup,
            }),
            Err(e) => {
                let _ = undo_records(&storages);
                Err(e)
            }
        }
    }

    /// The helper config of an exec in this container (init running as `init_pid`).
    pub fn exec_spec(&self, process: &Process, init_pid: Pid) -> Result<Spec, GuestError> {
        let exe = resolve_exe(&self.rootfs, process)?;
        let mut spec = Spec::new();
        spec.Process = protobuf::MessageField::some(process.clone());
        // runc and the Kata agent give exec'd processes the container's seccomp profile.
        if let Some(l) = self.init_spec.Linux.as_ref() {
            spec.Linux.mut_or_insert_default().Seccomp = l.Seccomp.clone();
        }
        spec.Annotations.insert(MODE.into(), "exec".into());
        spec.Annotations.insert(EXE.into(), exe);
        spec.Annotations
            .insert(INIT_PID.into(), init_pid.to_string());
        Ok(spec)
    }

    /// Pids of the processes still known (not reaped).
    pub fn pids(&self) -> Vec<Pid> {
        self.processes.values().map(|p| p.pid).collect()
    }
}

fn resolve_exe(rootfs: &std::path::Path, process: &Process) -> Result<String, GuestError> {
    let argv0 = process.Args.first().map(String::as_str).unwrap_or_default();
    find_executable(rootfs, argv0, &process.Env, &process.Cwd)
}

/// The init's helper config: rootfs and bind sources as the agent sees them.
fn init_spec(root: &GuestRoot, spec: &Spec, rootfs: &std::path::Path) -> Result<Spec, GuestError> {
    if !rootfs.is_dir() {
        return Err(GuestError::RootfsNotDir {
            rootfs: rootfs.to_path_buf(),
        });
    }
    let process = spec.Process.as_ref().ok_or(GuestError::Missing {
        field: "OCI.Process",
    })?;
    let exe = resolve_exe(rootfs, process)?;
    super::security::validate(spec)?;
    let mut out = spec.clone();
    out.Root.mut_or_insert_default().Path = rootfs.to_string_lossy().into_owned();
    for m in &mut out.Mounts {
        if m.type_.starts_with("cgroup") {
            eprintln!("kata-ts-agent: container mount {:?}: cgroup mounts are skipped (no cgroup namespace)", m.destination);
        }
        let bind = m.type_ == "bind"
            || parse_mount_options(&m.options)
                .flags
                .contains(nix::mount::MsFlags::MS_BIND);
        if bind {
            m.source = root
                .resolve(&m.source)
                .map_err(|e| GuestError::ContainerMount {
                    destination: m.destination.clone(),
                    fstype: m.type_.clone(),
                    source_path: m.source.clone(),
                    options: m.options.clone(),
                    source: Box::new(e),
                })?
                .to_string_lossy()
                .into_owned();
        }
    }
    out.Annotations.clear();
    out.Annotations.insert(MODE.into(), "init".into());
    out.Annotations.insert(EXE.into(), exe);
    Ok(out)
}
