//! OOM kills in a container's cgroup, for GetOOMEvent: as the Kata agent's v2 notifier
//! (rustjail `cgroups/notifier.rs`), an inotify watch on the cgroup's `memory.events` (the
//! kernel signals a modification on every event), reading its `oom_kill` counter; each
//! increase sends the container id. The watching thread ends when the cgroup is removed (the
//! watch is dropped: IN_IGNORED).

use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::sync::mpsc::UnboundedSender;

use super::error::GuestError;

/// Where OOM kills are reported (container ids).
pub type OomSender = UnboundedSender<String>;

/// The `oom_kill` counter of a `memory.events` file (0 when absent).
fn oom_kills(events: &Path) -> u64 {
    std::fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Starts watching the cgroup at `dir` of container `cid` (nothing to watch without the memory
/// controller: no `memory.events`).
pub fn watch(cid: &str, dir: &Path, tx: OomSender) -> Result<(), GuestError> {
    let events = dir.join("memory.events");
    if !events.exists() {
        return Ok(());
    }
    let io = |op: &'static str, path: PathBuf| {
        move |e: nix::errno::Errno| GuestError::Io {
            op,
            path,
            source: e.into(),
        }
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(io("inotify_init", dir.into()))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(io("inotify watch", events.clone()))?;
    let mut seen = oom_kills(&events);
    let cid = cid.to_string();
    std::thread::Builder::new()
        .name(format!("oom-{cid}"))
        .spawn(move || loop {
            let Ok(got) = inotify.read_events() else {
                return;
            };
            if got
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            {
                return;
            }
            let now = oom_kills(&events);
            if now > seen {
                seen = now;
                if tx.send(cid.clone()).is_err() {
                    return;
                }
            }
        })
        .map_err(|source| GuestError::Io {
            op: "spawn OOM watcher for",
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain file stands in for `memory.events` (this host's cgroup2 has no memory
    /// controller; the real OOM kill is checked in the guest, __test__/guest/resources.spec.ts):
    /// real inotify, a write raising the counter, then removal ending the watcher.
    #[test]
    fn an_oom_kill_increase_sends_the_container_id_once() {
        let dir = std::env::temp_dir().join(format!("kata-ts-agent-oom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        watch("c1", &dir, tx).unwrap();
        std::fs::write(&events, "oom 1\noom_kill 0\n").unwrap();
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        let got = rx.blocking_recv();
        assert_eq!(got.as_deref(), Some("c1"));
        std::fs::remove_dir_all(&dir).unwrap();
        // The watch is dropped with the file: the thread ends and the channel closes.
        assert_eq!(rx.blocking_recv(), None);
    }
}
