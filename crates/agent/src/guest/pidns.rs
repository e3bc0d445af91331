//! The sandbox pid namespace, as the Kata agent keeps it (`Sandbox::update_shared_pidns`,
//! `update_container_namespaces`): the first container started in the sandbox (the pod's
//! infra/pause container) holds the sandbox pid namespace, and a container whose
//! CreateContainerRequest has `sandbox_pidns = true` starts its init in that namespace instead
//! of a new one, so its processes and those of the other sharing containers see each other.
//! Asking for it when another container exists but none holds the namespace is the Kata
//! agent's error `Sandbox does not have sandbox_pidns`.
//!
//! The namespace is held by an open `/proc/<pid>/ns/pid` descriptor taken when the holder
//! starts, so a recycled pid can never redirect a later container.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Mutex, OnceLock};

use nix::unistd::Pid;

use super::error::{io_err, GuestError};

/// The Kata agent's message when no container holds the sandbox pid namespace.
pub const ERR_NO_SANDBOX_PIDNS: &str = "Sandbox does not have sandbox_pidns";

#[derive(Debug, Default)]
struct State {
    /// The sandbox pid namespace, once a holder started.
    sandbox: Option<File>,
    /// Created containers and whether each asked for the sandbox pid namespace.
    wants: HashMap<String, bool>,
    /// Whether any container init was started in this sandbox.
    any_started: bool,
}

fn state() -> std::sync::MutexGuard<'static, State> {
    static S: OnceLock<Mutex<State>> = OnceLock::new();
    S.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// CreateContainer: remembers `CreateContainerRequest.sandbox_pidns`.
pub fn note_container(cid: &str, sandbox_pidns: bool) {
    state().wants.insert(cid.to_string(), sandbox_pidns);
}

/// RemoveContainer: forgets the container.
pub fn forget(cid: &str) {
    state().wants.remove(cid);
}

/// DestroySandbox: drops the namespace.
pub fn reset() {
    *state() = State::default();
}

/// The pid namespace the container's init must join, or `None` for a new one.
pub fn target(cid: &str) -> Result<Option<File>, GuestError> {
    let st = state();
    if !st.wants.get(cid).copied().unwrap_or(false) {
        return Ok(None);
    }
    match &st.sandbox {
        Some(ns) => ns
            .try_clone()
            .map(Some)
            .map_err(io_err("dup", "sandbox pid namespace")),
        None if !st.any_started => Ok(None),
        None => Err(GuestError::Precondition(ERR_NO_SANDBOX_PIDNS.into())),
    }
}

/// After a container init started as `pid`: the first one becomes the holder. If it is
/// already gone, nobody holds the namespace and later joiners get [`ERR_NO_SANDBOX_PIDNS`].
pub fn started(pid: Pid) {
    let mut st = state();
    let first = !st.any_started;
    st.any_started = true;
    if first && st.sandbox.is_none() {
        st.sandbox = File::open(format!("/proc/{pid}/ns/pid")).ok();
    }
}
