//! `spawnAsUser`: the `rootless` crate's privilege-dropping launch. The child is reaped by a
//! native thread; `spawnedExit(pid)` reports how it ended. Codes: ROOTLESS_SETGROUPS,
//! ROOTLESS_SETGID, ROOTLESS_SETUID (the step that failed in the child; nothing was executed),
//! ROOTLESS_VERIFY (ids unchanged after the calls), ROOTLESS_ROOT (uid 0 refused),
//! ROOTLESS_SPAWN (exec or log file failed).

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use napi_derive::napi;
use rootless::{Credentials, LaunchError, LaunchSpec, Step};

use crate::error::{coded, guard, Result};

/// A process to start with dropped privileges.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct SpawnAsUserOptions {
    /// Absolute path of the executable.
    pub path: String,
    pub args: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    /// Exact supplementary groups (e.g. the kvm group); empty clears them.
    pub groups: Vec<u32>,
    /// Appended to; /dev/null when absent.
    pub stdout: Option<String>,
    pub stderr: Option<String>,
}

/// How a process started by `spawnAsUser` ended; `running` while it has not.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct SpawnedExit {
    pub running: bool,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

type Exits = Mutex<HashMap<u32, Option<(Option<i32>, Option<i32>)>>>;

fn exits() -> &'static Exits {
    static EXITS: OnceLock<Exits> = OnceLock::new();
    EXITS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn to_js(err: LaunchError) -> napi::Error<crate::error::Code> {
    let code = match &err {
        LaunchError::RootTarget { .. } => "ROOTLESS_ROOT",
        LaunchError::Drop { source, .. } => match source.step {
            Step::Setgroups => "ROOTLESS_SETGROUPS",
            Step::Setgid => "ROOTLESS_SETGID",
            Step::Setuid => "ROOTLESS_SETUID",
            Step::Verify => "ROOTLESS_VERIFY",
        },
        LaunchError::Log { .. } | LaunchError::Spawn { .. } => "ROOTLESS_SPAWN",
    };
    coded(code, err.to_string())
}

/// Starts `path` as `uid`/`gid` with exactly `groups`; returns its pid once it has exec'd.
#[napi]
pub fn spawn_as_user(options: SpawnAsUserOptions) -> Result<u32> {
    guard(move || {
        let spec = LaunchSpec {
            program: PathBuf::from(&options.path),
            args: options.args.clone(),
            credentials: Credentials {
                uid: options.uid,
                gid: options.gid,
                groups: options.groups.clone(),
            },
            stdout: options.stdout.as_ref().map(PathBuf::from),
            stderr: options.stderr.as_ref().map(PathBuf::from),
        };
        let mut child = rootless::spawn_as_user(&spec).map_err(to_js)?;
        let pid = child.id();
        exits()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, None);
        std::thread::spawn(move || {
            let outcome = child
                .wait()
                .map(|s| (s.code(), s.signal()))
                .unwrap_or((None, None));
            exits()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(pid, Some(outcome));
        });
        Ok(pid)
    })
}

/// How a `spawnAsUser` process ended; null for a pid it did not start.
#[napi]
pub fn spawned_exit(pid: u32) -> Option<SpawnedExit> {
    let exits = exits().lock().unwrap_or_else(|e| e.into_inner());
    exits.get(&pid).map(|state| match state {
        None => SpawnedExit {
            running: true,
            code: None,
            signal: None,
        },
        Some((code, signal)) => SpawnedExit {
            running: false,
            code: *code,
            signal: *signal,
        },
    })
}
