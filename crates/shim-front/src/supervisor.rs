//! Keeps one connection to the kata-ts daemon and the daemon itself alive. The daemon is
//! started when its socket does not answer and started again when it dies (kill -9, crash,
//! upgrade); a daemon that removed its socket and exited has shut down on purpose (no pods
//! left, asked to), and the front ends with it.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use transport::Client;

/// How often a lost connection or a starting daemon is looked at.
const POLL: Duration = Duration::from_millis(100);
/// More daemon starts than this within [`RESTART_WINDOW`] without a connection: give up.
const MAX_STARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The daemon connection and how to start the daemon.
#[derive(Debug)]
pub struct Supervisor {
    daemon_socket: PathBuf,
    command: Vec<String>,
    current: watch::Sender<Option<Arc<Client>>>,
}

impl Supervisor {
    pub fn new(daemon_socket: String, command: Vec<String>) -> Supervisor {
        Supervisor {
            daemon_socket: PathBuf::from(daemon_socket),
            command,
            current: watch::Sender::new(None),
        }
    }

    /// The live daemon connection, waiting up to `wait` for one.
    pub async fn client(&self, wait: Duration) -> Option<Arc<Client>> {
        let mut rx = self.current.subscribe();
        let live = |c: &Option<Arc<Client>>| c.as_ref().is_some_and(|c| !c.is_closed());
        let found = match tokio::time::timeout(wait, rx.wait_for(live)).await {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        };
        found
    }

    /// `<daemon socket>.log`: removed when the daemon ended on purpose.
    pub fn log_path(&self) -> PathBuf {
        let mut p = self.daemon_socket.clone().into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }

    fn spawn_daemon(&self) -> std::io::Result<Child> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // The daemon's own error lines (a failed re-attach, a crash's stack) go to its log.
        let log = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(self.log_path())?;
        // Not killed with the front, no shared fate: the daemon outlives a front that dies.
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(false)
            .spawn()
    }

    /// Runs until the daemon shut down on purpose (or cannot be kept running).
    pub async fn run(&self) {
        let mut child: Option<Child> = None;
        let mut starts: VecDeque<Instant> = VecDeque::new();
        loop {
            if let Some(c) = child.as_mut() {
                if !matches!(c.try_wait(), Ok(None)) {
                    child = None;
                }
            }
            match UnixStream::connect(&self.daemon_socket).await {
                Ok(stream) => {
                    starts.clear();
                    let client = Arc::new(Client::new(Box::pin(stream)));
                    self.current.send_replace(Some(client.clone()));
                    while !client.is_closed() {
                        tokio::time::sleep(POLL).await;
                    }
                    self.current.send_replace(None);
                    if !self.daemon_socket.exists() {
                        // A clean exit removes the socket: the daemon was idle and asked to go.
                        if let Some(mut c) = child.take() {
                            let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
                        }
                        let _ = std::fs::remove_file(self.log_path());
                        return;
                    }
                    // Died with its socket in place: start it again below.
                }
                Err(_) if child.is_some() => tokio::time::sleep(POLL).await,
                Err(_) => {
                    let now = Instant::now();
                    starts.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                    if starts.len() >= MAX_STARTS {
                        eprintln!(
                            "kata-ts: shim front: the daemon did not come up after {MAX_STARTS} starts"
                        );
                        return;
                    }
                    starts.push_back(now);
                    match self.spawn_daemon() {
                        Ok(c) => child = Some(c),
                        Err(e) => {
                            eprintln!("kata-ts: shim front: cannot start the daemon: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        }
    }
}
