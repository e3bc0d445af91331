//! Guest mode (`--guest`): the agent carries requests out for real (mounts, namespaces,
//! processes) instead of modelling them. The process bookkeeping the RPCs read (exit status,
//! output buffers) stays in [`crate::state::Sandbox`]; this module owns what exists outside
//! it: mounts, pids, stdin pipes.

pub mod cgroup;
pub mod container;
pub mod container_init;
pub mod cpu_mem;
pub mod device_wait;
pub mod error;
pub mod exec_path;
pub mod guest_root;
pub mod mount;
pub mod mount_options;
pub mod network;
pub mod oom;
pub mod pidns;
pub mod process_io;
pub mod process_limits;
pub mod reaper;
pub mod security;
pub mod spawn;
pub mod stats;
pub mod storage;
pub mod tty;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use self::container::{GuestContainer, GuestProcess, StdinPipe};
use self::error::GuestError;
use self::guest_root::GuestRoot;
use self::mount::{undo_records, MountRecord};
use self::reaper::{ProcKey, ProcTable};
use self::spawn::{spawn, Namespaces, Spawned};
use self::storage::mount_storage;
use crate::protocols::agent::{CreateContainerRequest, CreateSandboxRequest};
use crate::protocols::oci::Process;

/// Default wait for a hot-plugged device (`--device-timeout-ms`).
pub const DEFAULT_DEVICE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long removal waits for killed processes to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Guest-mode settings from the command line.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    pub root: GuestRoot,
    pub device_timeout: Duration,
    /// Power off after DestroySandbox (also when the agent is PID 1).
    pub poweroff_on_destroy: bool,
}

#[derive(Debug, Default)]
struct GuestState {
    sandbox_mounts: Vec<MountRecord>,
    containers: HashMap<String, GuestContainer>,
}

/// The real sandbox.
#[derive(Debug)]
pub struct GuestSandbox {
    cfg: GuestConfig,
    table: ProcTable,
    state: Mutex<GuestState>,
    /// Where the containers' OOM watchers report (GetOOMEvent).
    oom: oom::OomSender,
}

fn no_container(cid: &str) -> GuestError {
    GuestError::NoContainer {
        container_id: cid.to_string(),
    }
}

fn encode_err(cid: &str, e: &protobuf::Error) -> GuestError {
    GuestError::BadValue {
        what: "OCI spec of container",
        value: cid.to_string(),
        why: format!("encode: {e}"),
    }
}

impl GuestSandbox {
    pub fn new(cfg: GuestConfig, oom: oom::OomSender) -> Self {
        GuestSandbox {
            cfg,
            table: ProcTable::default(),
            state: Mutex::new(GuestState::default()),
            oom,
        }
    }

    /// The pid → process table the reaper dispatches with.
    pub fn table(&self) -> ProcTable {
        self.table.clone()
    }

    pub fn poweroff_on_destroy(&self) -> bool {
        self.cfg.poweroff_on_destroy || std::process::id() == 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuestState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hostname, then the sandbox storages (shm, the shared fs), remembered for DestroySandbox.
    pub fn create_sandbox(&self, req: &CreateSandboxRequest) -> Result<(), GuestError> {
        if !req.hostname.is_empty() {
            nix::unistd::sethostname(&req.hostname).map_err(|e| GuestError::Io {
                op: "sethostname",
                path: req.hostname.clone().into(),
                source: e.into(),
            })?;
        }
        let mut done = Vec::new();
        for s in &req.storages {
            match mount_storage(&self.cfg.root, s, self.cfg.device_timeout) {
                Ok(r) => done.push(r),
                Err(e) => {
                    let _ = undo_records(&done);
                    return Err(e);
                }
            }
        }
        self.lock().sandbox_mounts.extend(done);
        Ok(())
    }

    pub fn create_container(&self, req: &CreateContainerRequest) -> Result<(), GuestError> {
        let cid = &req.container_id;
        let mut c = GuestContainer::create(&self.cfg.root, req, self.cfg.device_timeout)?;
        pidns::note_container(cid, req.sandbox_pidns);
        let mut st = self.lock();
        if let Some(cg) = c.cgroup.as_mut() {
            // A cgroup shared with a container this agent made it for: removed with the last.
            let dir = cg.dir();
            for other in st.containers.values().filter_map(|o| o.cgroup.as_ref()) {
                cg.share_with(other);
            }
            if let Err(e) = oom::watch(cid, &dir, self.oom.clone()) {
                if cg.made && !cgroup_shared(&st, &dir) {
                    let _ = cg.delete(cid);
                }
                let _ = undo_records(&c.storages);
                return Err(e);
            }
        }
        st.containers.insert(cid.clone(), c);
        drop(st);
        Ok(())
    }

    /// Starts the container's init in new namespaces.
    pub fn start_container(&self, cid: &str) -> Result<Spawned, GuestError> {
        let (config, cgroup) = {
            let st = self.lock();
            let c = st.containers.get(cid).ok_or_else(|| no_container(cid))?;
            if c.processes.contains_key("") {
                return Err(GuestError::Precondition(format!(
                    "container {cid} already started"
                )));
            }
            (
                protobuf::Message::write_to_bytes(&c.init_spec).map_err(|e| encode_err(cid, &e))?,
                c.cgroup.as_ref().map(cgroup::ContainerCgroup::dir),
            )
        };
        let key = ProcKey {
            container_id: cid.into(),
            exec_id: String::new(),
        };
        let spawned = spawn(
            &config,
            Namespaces::New,
            &self.table,
            key,
            cgroup.as_deref(),
        )
        .map_err(|e| named(e, cid, &self.argv0(cid, None)))?;
        self.add_process(cid, "", spawned.pid);
        Ok(spawned)
    }

    /// Starts an extra process in the namespaces of the container's init.
    pub fn exec_process(
        &self,
        cid: &str,
        eid: &str,
        process: &Process,
    ) -> Result<Spawned, GuestError> {
        let (config, init, cgroup) = {
            let st = self.lock();
            let c = st.containers.get(cid).ok_or_else(|| no_container(cid))?;
            let init = c
                .processes
                .get("")
                .map(|p| p.pid)
                .filter(|p| self.table_has(*p));
            let init = init.ok_or_else(|| {
                GuestError::Precondition(format!("container {cid} is not running"))
            })?;
            let spec = c.exec_spec(process, init)?;
            (
                protobuf::Message::write_to_bytes(&spec).map_err(|e| encode_err(cid, &e))?,
                init,
                c.cgroup.as_ref().map(cgroup::ContainerCgroup::dir),
            )
        };
        let key = ProcKey {
            container_id: cid.into(),
            exec_id: eid.into(),
        };
        let spawned = spawn(
            &config,
            Namespaces::JoinPidOf(init),
            &self.table,
            key,
            cgroup.as_deref(),
        )
        .map_err(|e| named(e, cid, &self.argv0(cid, Some(process))))?;
        self.add_process(cid, eid, spawned.pid);
        Ok(spawned)
    }

    fn argv0(&self, cid: &str, process: Option<&Process>) -> String {
        let from_init = || {
            self.lock()
                .containers
                .get(cid)
                .and_then(|c| c.init_spec.Process.as_ref()?.Args.first().cloned())
        };
        process
            .and_then(|p| p.Args.first().cloned())
            .or_else(from_init)
            .unwrap_or_default()
    }

    fn add_process(&self, cid: &str, eid: &str, pid: Pid) {
        if let Some(c) = self.lock().containers.get_mut(cid) {
            c.processes
                .insert(eid.into(), GuestProcess { pid, stdin: None });
        }
    }

    fn table_has(&self, pid: Pid) -> bool {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&pid.as_raw())
    }

    /// Hands the process its stdin pipe (made async by the caller).
    pub fn set_stdin(&self, cid: &str, eid: &str, stdin: StdinPipe) {
        if let Some(p) = self
            .lock()
            .containers
            .get_mut(cid)
            .and_then(|c| c.processes.get_mut(eid))
        {
            p.stdin = Some(stdin);
        }
    }

    pub fn stdin(&self, cid: &str, eid: &str) -> Option<StdinPipe> {
        self.lock()
            .containers
            .get(cid)?
            .processes
            .get(eid)?
            .stdin
            .clone()
    }

    /// Drops the agent's end of stdin: the process reads EOF once pending writes are done.
    pub fn close_stdin(&self, cid: &str, eid: &str) {
        if let Some(p) = self
            .lock()
            .containers
            .get_mut(cid)
            .and_then(|c| c.processes.get_mut(eid))
        {
            p.stdin = None;
        }
    }

    /// Delivers `sig`. As in the Kata agent, SIGTERM to an init that does not handle it
    /// becomes SIGKILL (the kernel drops unhandled signals to a pid namespace's init).
    pub fn signal(&self, cid: &str, eid: &str, sig: u32) -> Result<(), GuestError> {
        let pid = {
            let st = self.lock();
            let c = st.containers.get(cid).ok_or_else(|| no_container(cid))?;
            match c.processes.get(eid) {
                Some(p) => p.pid,
                None => return Ok(()), // not started yet or already gone: nothing to signal
            }
        };
        let sig = i32::try_from(sig)
            .ok()
            .and_then(|s| Signal::try_from(s).ok())
            .ok_or_else(|| GuestError::BadValue {
                what: "signal",
                value: sig.to_string(),
                why: "not a signal number".into(),
            })?;
        let sig = if eid.is_empty() && sig == Signal::SIGTERM && !handles(pid, sig) {
            Signal::SIGKILL
        } else {
            sig
        };
        if self.table_has(pid) {
            let _ = kill(pid, sig);
        }
        Ok(())
    }

    /// SIGKILLs the processes and waits (bounded) until the reaper has collected them.
    fn kill_and_wait(&self, pids: &[Pid], timeout: Duration) {
        for p in pids {
            if self.table_has(*p) {
                let _ = kill(*p, Signal::SIGKILL);
            }
        }
        let start = Instant::now();
        while pids.iter().any(|p| self.table_has(*p)) && start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills what is left of the container, unmounts its storages in reverse order and
    /// removes the mount points this agent created.
    pub fn remove_container(&self, cid: &str, timeout_s: u32) -> Result<(), GuestError> {
        let pids = self
            .lock()
            .containers
            .get(cid)
            .ok_or_else(|| no_container(cid))?
            .pids();
        let wait = if timeout_s == 0 {
            KILL_WAIT
        } else {
            Duration::from_secs(timeout_s.into())
        };
        self.kill_and_wait(&pids, wait);
        let mut st = self.lock();
        let c = st.containers.remove(cid);
        // Not shared (any more): a cgroup this agent made goes with its last container.
        let cg = match c.as_ref().and_then(|c| c.cgroup.as_ref()) {
            Some(g) if g.made && !cgroup_shared(&st, &g.dir()) => g.delete(cid),
            _ => Ok(()),
        };
        drop(st);
        pidns::forget(cid);
        match c {
            Some(c) => undo_records(&c.storages).and(cg),
            None => Ok(()),
        }
    }

    /// Kills every container process, unmounts everything this agent mounted.
    pub fn destroy_sandbox(&self) -> Result<(), GuestError> {
        let pids: Vec<Pid> = self
            .lock()
            .containers
            .values()
            .flat_map(GuestContainer::pids)
            .collect();
        self.kill_and_wait(&pids, KILL_WAIT);
        let st = std::mem::take(&mut *self.lock());
        pidns::reset();
        let mut first = None;
        for (cid, c) in st.containers {
            // Deleting a shared cgroup twice is fine: one already gone is success.
            let made = c.cgroup.as_ref().filter(|g| g.made);
            if let Some(Err(e)) = made.map(|g| g.delete(&cid)) {
                first.get_or_insert(e);
            }
            if let Err(e) = undo_records(&c.storages) {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = undo_records(&st.sandbox_mounts) {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Remounts ephemeral tmpfs storages with new options (a new `size=`).
    pub fn update_ephemeral_mounts(
        &self,
        storages: &[crate::protocols::agent::Storage],
    ) -> Result<(), GuestError> {
        storages
            .iter()
            .try_for_each(|s| storage::remount_ephemeral(&self.cfg.root, s))
    }

    /// UpdateContainer: applies `resources` (none: nothing to change) to the container's cgroup.
    pub fn update_container(
        &self,
        cid: &str,
        resources: Option<&crate::protocols::oci::LinuxResources>,
    ) -> Result<(), GuestError> {
        let st = self.lock();
        let c = st.containers.get(cid).ok_or_else(|| no_container(cid))?;
        let cg = c.cgroup.as_ref().ok_or_else(|| GuestError::Unsupported {
            what: format!("UpdateContainer of {cid}: it has no guest cgroup (no cgroup2 mount)"),
        })?;
        resources.map_or(Ok(()), |r| cg.apply(cid, r))
    }

    /// StatsContainer: the container's cgroup figures and the guest's interfaces.
    pub fn stats_container(
        &self,
        cid: &str,
    ) -> Result<crate::protocols::agent::StatsContainerResponse, GuestError> {
        let dir = {
            let st = self.lock();
            let c = st.containers.get(cid).ok_or_else(|| no_container(cid))?;
            let cg = c.cgroup.as_ref().ok_or_else(|| GuestError::Unsupported {
                what: format!("StatsContainer of {cid}: it has no guest cgroup (no cgroup2 mount)"),
            })?;
            cg.dir()
        };
        // The agent's network namespace is the guest's, where the pod's interfaces are.
        stats::container_stats(&dir, std::path::Path::new("/proc/net/dev"))
    }

    pub fn online_cpu_mem(
        &self,
        wait: bool,
        nb_cpus: u32,
        cpu_only: bool,
    ) -> Result<(), GuestError> {
        cpu_mem::online_cpu_mem(
            &self.cfg.root,
            wait,
            nb_cpus,
            cpu_only,
            self.cfg.device_timeout,
        )
    }
}

/// Whether a container still in `st` uses the cgroup at `dir`.
fn cgroup_shared(st: &GuestState, dir: &std::path::Path) -> bool {
    st.containers
        .values()
        .filter_map(|c| c.cgroup.as_ref())
        .any(|g| g.dir() == dir)
}

/// Fills in the container and executable of a start error.
fn named(e: GuestError, cid: &str, argv0: &str) -> GuestError {
    match e {
        GuestError::Start { message, .. } => GuestError::Start {
            container_id: cid.into(),
            argv0: argv0.into(),
            message,
        },
        e => e,
    }
}

/// Whether `pid` has a handler for `sig` (SigCgt in /proc/<pid>/status).
fn handles(pid: Pid, sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    let bit = u32::try_from(sig as i32 - 1).unwrap_or(0);
    mask & (1u64 << bit) != 0
}

/// Syncs and powers the machine off (after DestroySandbox's reply went out).
pub fn power_off() {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
}
