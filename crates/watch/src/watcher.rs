//! One live sync: a thread that owns the inotify set, the agent connection and, per guest
//! destination, the record of what was sent. It sleeps in poll(2) on the inotify descriptor and
//! an eventfd for commands, with a timeout only while a debounce is pending, so an idle watcher
//! uses no CPU. Syncs run on a current-thread tokio runtime inside the same thread; nothing else
//! touches the state, so there is no locking beyond the command queue.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::sync::oneshot;
use transport::{Address, Client};

use crate::guest::GuestPath;
use crate::monitor::monitor;
use crate::request::{plan, Sent as SentState};
use crate::send::send_plan;
use crate::send::Failure;
use crate::tree::scan;
use crate::watch_set::{WatchSet, WatchSetError};

/// Default quiet time after the last event before syncing (reference `DEBOUNCE_TIME`).
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// What to sync and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// Canonical host source (a directory, or a file when `watch` is false).
    pub source: PathBuf,
    pub destinations: Vec<GuestPath>,
    pub debounce: Duration,
    pub agent: Address,
    pub dial_timeout: Duration,
    /// An agent connection to use instead of dialing `agent` (virtio-serial takes only one host
    /// connection, so a sandbox's sync shares the lifecycle's). Left open when the watcher stops.
    pub client: Option<Arc<Client>>,
    pub call_timeout: Duration,
    /// False: copy once, then stop.
    pub watch: bool,
}

/// Why a sync ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The full sync before monitoring starts.
    Initial,
    /// Debounced inotify events.
    Events,
    /// The inotify queue overflowed.
    Overflow,
    /// A destination was added.
    Destination,
}

/// Summary of one sync (what reaches TypeScript; no per-event detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub reason: Reason,
    /// Every entry was sent, not only changed ones.
    pub full: bool,
    /// Entries sent, over all destinations.
    pub entries: u64,
    pub bytes: u64,
    pub destinations: u32,
    /// Entries that cannot be copied (special files, non-UTF-8 names).
    pub skipped: u32,
    /// Entries that failed, and the first of them.
    pub failed: u32,
    pub first_failure: Option<Failure>,
    pub duration: Duration,
    /// Directories watched (0 when not watching).
    pub watched_dirs: u32,
    /// Time to set up the recursive watch (initial report only).
    pub watch_setup: Duration,
}

/// An event for the owner of a watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Synced(Report),
    Error(String),
}

/// Why a watcher could not start or a destination could not be added.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Dial(#[from] transport::DialError),
    #[error(transparent)]
    WatchSet(#[from] WatchSetError),
    #[error(transparent)]
    Scan(#[from] crate::tree::ScanError),
    /// Some entries could not be copied.
    #[error("copy {source_path:?}: {failed} entries failed; first: {first}")]
    Copy {
        source_path: PathBuf,
        failed: u32,
        first: Failure,
    },
    /// A system resource (thread, runtime, eventfd, poll) failed.
    #[error("{what}: {reason}")]
    System { what: &'static str, reason: String },
    /// The watcher stopped before answering.
    #[error("the watcher was stopped")]
    Stopped,
}

fn system(what: &'static str) -> impl FnOnce(std::fmt::Arguments<'_>) -> WatchError {
    move |args| WatchError::System {
        what,
        reason: args.to_string(),
    }
}

type Reply = oneshot::Sender<Result<Report, WatchError>>;

pub(crate) enum Command {
    Add(GuestPath, Reply),
    Remove(GuestPath),
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add(g, _) => write!(f, "Add({g})"),
            Command::Remove(g) => write!(f, "Remove({g})"),
            Command::Stop => f.write_str("Stop"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Control {
    queue: Mutex<VecDeque<Command>>,
    pub(crate) wake: EventFd,
    /// Kernel thread id of the watcher thread, once it runs (0 before).
    tid: AtomicI32,
}

impl Control {
    fn push(&self, c: Command) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(c);
        let _ = self.wake.write(1);
    }

    pub(crate) fn take(&self) -> Vec<Command> {
        let _ = self.wake.read();
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}

/// Handle of a running watcher. Dropping it stops the watcher.
#[derive(Debug)]
pub struct Watcher {
    control: Arc<Control>,
}

/// Name of the watcher threads (for per-thread CPU accounting in /proc/<pid>/task).
pub const THREAD_NAME: &str = "kata-ts-watch";

impl Watcher {
    /// Starts the thread: dial, watch, initial full sync to every destination, then monitor.
    /// `ready` resolves with the initial sync's report (or why it failed; the thread then ends).
    pub fn start(
        config: Config,
        sink: impl Fn(Event) + Send + 'static,
    ) -> Result<(Watcher, oneshot::Receiver<Result<Report, WatchError>>), WatchError> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| system("eventfd")(format_args!("{e}")))?;
        let control = Arc::new(Control {
            queue: Mutex::new(VecDeque::new()),
            wake,
            tid: AtomicI32::new(0),
        });
        let (tx, rx) = oneshot::channel();
        let ctl = control.clone();
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(config, &ctl, tx, &sink))
            .map_err(|e| system("spawn watcher thread")(format_args!("{e}")))?;
        Ok((Watcher { control }, rx))
    }

    /// Adds a destination; the receiver gets the report of its full sync.
    pub fn add_destination(
        &self,
        dest: GuestPath,
    ) -> oneshot::Receiver<Result<Report, WatchError>> {
        let (tx, rx) = oneshot::channel();
        self.control.push(Command::Add(dest, tx));
        rx
    }

    /// Stops syncing to `dest` (what was copied stays in the guest: the agent has no delete).
    pub fn remove_destination(&self, dest: GuestPath) {
        self.control.push(Command::Remove(dest));
    }

    /// Kernel thread id of the watcher thread (0 until it started), for
    /// `/proc/<pid>/task/<tid>/stat` CPU accounting.
    pub fn thread_id(&self) -> i32 {
        self.control.tid.load(Ordering::Acquire)
    }

    /// Stops the watcher; idempotent. The thread ends at its next wake-up, which is now.
    pub fn stop(&self) {
        self.control.push(Command::Stop);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// The thread's state.
pub(crate) struct Sync {
    source: PathBuf,
    client: Arc<Client>,
    call_timeout: Duration,
    pub(crate) dests: BTreeMap<GuestPath, SentState>,
}

impl Sync {
    /// Scans once and brings each of `only` (or every destination) up to date.
    pub(crate) async fn run(
        &mut self,
        reason: Reason,
        full: bool,
        only: Option<&GuestPath>,
    ) -> Result<Report, WatchError> {
        let start = Instant::now();
        let scan_ns = wall_ns();
        let entries = scan(&self.source)?;
        let mut r = Report {
            reason,
            full,
            entries: 0,
            bytes: 0,
            destinations: 0,
            skipped: 0,
            failed: 0,
            first_failure: None,
            duration: Duration::ZERO,
            watched_dirs: 0,
            watch_setup: Duration::ZERO,
        };
        for (dest, sent) in &mut self.dests {
            if only.is_some_and(|o| o != dest) {
                continue;
            }
            if full {
                sent.clear();
            }
            let p = plan(dest, &entries, sent);
            let out = send_plan(&self.client, &self.source, &p, self.call_timeout).await;
            sent.commit(&entries, &out.failed, scan_ns);
            r.destinations += 1;
            r.entries += out.entries;
            r.bytes += out.bytes;
            r.skipped = u32::try_from(p.skipped.len()).unwrap_or(u32::MAX);
            r.failed += u32::try_from(out.failed.len()).unwrap_or(u32::MAX);
            if r.first_failure.is_none() {
                r.first_failure = out.first_failure;
            }
        }
        r.duration = start.elapsed();
        Ok(r)
    }

    pub(crate) fn check(&self, r: Report) -> Result<Report, WatchError> {
        if r.failed == 0 {
            return Ok(r);
        }
        // send_plan records the first failure with every failed entry.
        let first = r.first_failure.clone().unwrap_or_else(|| Failure {
            entry: PathBuf::new(),
            message: "no failure recorded".into(),
        });
        Err(WatchError::Copy {
            source_path: self.source.clone(),
            failed: r.failed,
            first,
        })
    }
}

fn run(
    config: Config,
    control: &Control,
    ready: oneshot::Sender<Result<Report, WatchError>>,
    sink: &dyn Fn(Event),
) {
    control
        .tid
        .store(nix::unistd::gettid().as_raw(), Ordering::Release);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(system("tokio runtime")(format_args!("{e}"))));
            return;
        }
    };
    let owned = config.client.is_none();
    let started = rt.block_on(async {
        let client = match &config.client {
            Some(c) => c.clone(),
            None => Arc::new(Client::new(
                transport::dial(&config.agent, config.dial_timeout).await?,
            )),
        };
        let setup = Instant::now();
        let mut ws = if config.watch {
            // Watch first, then scan: nothing created meanwhile is missed.
            let mut ws = WatchSet::new(&config.source)?;
            ws.watch_tree(Path::new(""))?;
            Some(ws)
        } else {
            None
        };
        let watch_setup = setup.elapsed();
        let mut sync = Sync {
            source: config.source.clone(),
            client,
            call_timeout: config.call_timeout,
            dests: config
                .destinations
                .iter()
                .map(|d| (d.clone(), SentState::default()))
                .collect(),
        };
        let mut r = sync.run(Reason::Initial, true, None).await?;
        r.watch_setup = watch_setup;
        r.watched_dirs = ws
            .as_ref()
            .map_or(0, |w| u32::try_from(w.len()).unwrap_or(u32::MAX));
        let r = sync.check(r)?;
        Ok::<_, WatchError>((sync, ws.take(), r))
    });
    let (mut sync, ws) = match started {
        Ok((sync, ws, report)) => {
            let _ = ready.send(Ok(report));
            (sync, ws)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let Some(ws) = ws else {
        if owned {
            sync.client.close();
        }
        return;
    };
    monitor(&rt, &config, control, &mut sync, ws, sink);
    if owned {
        sync.client.close();
    }
}
