//! `VolumeSync`: the `watch` crate's live copy-volume sync for TypeScript. The native side dials
//! its own agent connection, copies, watches and re-copies; TypeScript only receives one summary
//! per sync through a threadsafe callback. Codes: WATCH_INVALID (bad options or guest path),
//! WATCH_DIAL, WATCH_START (inotify, scan, thread), WATCH_COPY (entries failed), WATCH_CLOSED.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use transport::Client;
use watch::{Config, Event, GuestPath, Reason, Report, WatchError, Watcher};

use crate::error::{coded, guard_async, Code, Result};
use crate::transport::{address, AgentDialOptions};

/// What to sync.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct VolumeSyncOptions {
    /// Canonical host source: a directory (watched) or, with `watch: false`, a file.
    pub source: String,
    /// Guest paths under /run/kata-containers/shared/containers/.
    pub destinations: Vec<String>,
    /// How to dial the agent (`startVolumeSync`); on a shared connection it only names the agent.
    pub agent: AgentDialOptions,
    /// Quiet time after the last event before syncing; default 500.
    pub debounce_ms: Option<u32>,
    /// Timeout of each CopyFile call; default 30000.
    pub call_timeout_ms: Option<u32>,
    /// False: copy once and stop. Default true.
    pub watch: Option<bool>,
}

/// One sync's summary (`kind: "synced"`) or a watcher error (`kind: "error"`, `message`).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct VolumeSyncEvent {
    pub kind: String,
    /// `initial`, `events`, `overflow` or `destination`.
    pub reason: Option<String>,
    /// Every entry was sent (initial, new destination, overflow).
    pub full: Option<bool>,
    pub entries: Option<i64>,
    pub bytes: Option<i64>,
    pub destinations: Option<u32>,
    pub skipped: Option<u32>,
    pub failed: Option<u32>,
    pub duration_us: Option<i64>,
    /// Directories watched.
    pub watched_dirs: Option<u32>,
    /// Time to set up the recursive watch (initial sync only).
    pub watch_setup_us: Option<i64>,
    pub message: Option<String>,
}

fn reason(r: Reason) -> &'static str {
    match r {
        Reason::Initial => "initial",
        Reason::Events => "events",
        Reason::Overflow => "overflow",
        Reason::Destination => "destination",
    }
}

fn synced(r: &Report) -> VolumeSyncEvent {
    VolumeSyncEvent {
        kind: "synced".into(),
        reason: Some(reason(r.reason).into()),
        full: Some(r.full),
        entries: Some(i64::try_from(r.entries).unwrap_or(i64::MAX)),
        bytes: Some(i64::try_from(r.bytes).unwrap_or(i64::MAX)),
        destinations: Some(r.destinations),
        skipped: Some(r.skipped),
        failed: Some(r.failed),
        duration_us: Some(i64::try_from(r.duration.as_micros()).unwrap_or(i64::MAX)),
        watched_dirs: Some(r.watched_dirs),
        watch_setup_us: Some(i64::try_from(r.watch_setup.as_micros()).unwrap_or(i64::MAX)),
        message: r.first_failure.as_ref().map(ToString::to_string),
    }
}

fn event(e: &Event) -> VolumeSyncEvent {
    match e {
        Event::Synced(r) => synced(r),
        Event::Error(message) => VolumeSyncEvent {
            kind: "error".into(),
            reason: None,
            full: None,
            entries: None,
            bytes: None,
            destinations: None,
            skipped: None,
            failed: None,
            duration_us: None,
            watched_dirs: None,
            watch_setup_us: None,
            message: Some(message.clone()),
        },
    }
}

fn watch_error(e: WatchError) -> napi::Error<Code> {
    let code = match &e {
        WatchError::Dial(_) => "WATCH_DIAL",
        WatchError::Copy { .. } => "WATCH_COPY",
        WatchError::Stopped => "WATCH_CLOSED",
        WatchError::WatchSet(_) | WatchError::Scan(_) | WatchError::System { .. } => "WATCH_START",
    };
    coded(code, e.to_string())
}

fn guest(path: &str) -> Result<GuestPath> {
    GuestPath::new(path).map_err(|e| coded("WATCH_INVALID", e.to_string()))
}

pub(crate) type SyncCallback =
    ThreadsafeFunction<VolumeSyncEvent, (), VolumeSyncEvent, Status, false>;

/// A running live sync of one host source to its guest destinations. Like `fs.watch`, an open
/// sync keeps node alive; `close()` stops it.
#[napi]
#[derive(Debug)]
pub struct VolumeSync {
    watcher: Watcher,
    closed: AtomicBool,
    /// The initial sync's summary.
    initial: VolumeSyncEvent,
}

/// Copies `source` to every destination, then (unless `watch: false`) watches it and re-copies
/// what changed; resolves once the initial copy is complete.
#[napi(ts_args_type = "options: VolumeSyncOptions, callback: (event: VolumeSyncEvent) => void")]
pub async fn start_volume_sync(
    options: VolumeSyncOptions,
    callback: SyncCallback,
) -> napi::Result<VolumeSync> {
    start(options, callback, None).await
}

/// Starts a sync on its own connection (`client: None`) or on a shared one, which it leaves open.
pub(crate) async fn start(
    options: VolumeSyncOptions,
    callback: SyncCallback,
    client: Option<Arc<Client>>,
) -> napi::Result<VolumeSync> {
    guard_async(async move {
        let config = Config {
            source: PathBuf::from(&options.source),
            destinations: options
                .destinations
                .iter()
                .map(|d| guest(d))
                .collect::<Result<_>>()?,
            debounce: options.debounce_ms.map_or(watch::DEFAULT_DEBOUNCE, |ms| {
                Duration::from_millis(u64::from(ms))
            }),
            dial_timeout: Duration::from_millis(u64::from(options.agent.timeout_ms)),
            agent: address(&options.agent, "WATCH_INVALID")?,
            client,
            call_timeout: Duration::from_millis(u64::from(
                options.call_timeout_ms.unwrap_or(30_000),
            )),
            watch: options.watch.unwrap_or(true),
        };
        let sink = move |e: Event| {
            // NonBlocking: the watcher thread never waits for the JS thread.
            let _ = callback.call(event(&e), ThreadsafeFunctionCallMode::NonBlocking);
        };
        let (watcher, ready) = Watcher::start(config, sink).map_err(watch_error)?;
        let report = ready
            .await
            .map_err(|_| watch_error(WatchError::Stopped))?
            .map_err(watch_error)?;
        Ok(VolumeSync {
            watcher,
            closed: AtomicBool::new(false),
            initial: synced(&report),
        })
    })
    .await
}

#[napi]
impl VolumeSync {
    /// Adds a destination and copies the whole tree to it; resolves with that sync's summary.
    #[napi]
    pub async fn add_destination(&self, guest_path: String) -> napi::Result<VolumeSyncEvent> {
        let dest = guest(&guest_path);
        let closed = self.closed.load(Ordering::Acquire);
        let rx = match (&dest, closed) {
            (Ok(d), false) => Some(self.watcher.add_destination(d.clone())),
            _ => None,
        };
        guard_async(async move {
            dest?;
            let rx = rx.ok_or_else(|| watch_error(WatchError::Stopped))?;
            let r = rx.await.map_err(|_| watch_error(WatchError::Stopped))?;
            r.map(|r| synced(&r)).map_err(watch_error)
        })
        .await
    }

    /// Stops syncing to a destination (its copy stays in the guest).
    #[napi(catch_unwind)]
    pub fn remove_destination(&self, guest_path: String) -> Result<()> {
        self.watcher.remove_destination(guest(&guest_path)?);
        Ok(())
    }

    /// Stops the watcher; safe to call more than once.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.watcher.stop();
    }

    /// True once `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Kernel thread id of the watcher thread (`/proc/<pid>/task/<tid>/stat`).
    #[napi(getter)]
    pub fn thread_id(&self) -> i32 {
        self.watcher.thread_id()
    }

    /// The initial sync's summary.
    #[napi(getter)]
    pub fn initial(&self) -> VolumeSyncEvent {
        self.initial.clone()
    }
}
