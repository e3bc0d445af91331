//! The watcher thread's loop after the initial sync: sleep in poll(2) on the inotify descriptor
//! and the command eventfd, with a timeout only while a debounce is pending (an idle watcher uses
//! no CPU); apply commands; drain events; sync once the debounce expired.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::watch_set::WatchSet;
use crate::watcher::{Command, Config, Control, Event, Reason, Sync};

/// A stream of events never holds a sync back longer than this many debounce periods.
const MAX_DELAY_FACTOR: u32 = 10;

/// Pending changes: when the first and last unsynced events arrived, and whether events were lost.
#[derive(Debug, Default)]
struct Pending {
    first: Option<Instant>,
    last: Option<Instant>,
    overflow: bool,
}

impl Pending {
    /// When to sync, if anything is pending: `debounce` after the last event, but no later than
    /// `MAX_DELAY_FACTOR` debounces after the first.
    fn due(&self, debounce: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + debounce).min(first + debounce * MAX_DELAY_FACTOR))
    }
}

fn wait(ws: &WatchSet, control: &Control, timeout: PollTimeout) -> Result<(bool, bool), Errno> {
    let mut fds = [
        PollFd::new(ws.inotify().as_fd(), PollFlags::POLLIN),
        PollFd::new(control.wake.as_fd(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok((false, false)),
        Err(e) => return Err(e),
    }
    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
    Ok((ready(&fds[0]), ready(&fds[1])))
}

pub(crate) fn monitor(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    control: &Control,
    sync: &mut Sync,
    mut ws: WatchSet,
    sink: &dyn Fn(Event),
) {
    let mut pending = Pending::default();
    loop {
        let timeout = match pending.due(config.debounce) {
            None => PollTimeout::NONE,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Round up: waking a millisecond early would only spin once more.
                PollTimeout::try_from(left + Duration::from_micros(999)).unwrap_or(PollTimeout::MAX)
            }
        };
        let (events, commands) = match wait(&ws, control, timeout) {
            Ok(r) => r,
            Err(e) => {
                sink(Event::Error(format!("poll: {e}; watcher stopped")));
                return;
            }
        };
        if commands {
            for c in control.take() {
                match c {
                    Command::Stop => return,
                    Command::Remove(d) => {
                        sync.dests.remove(&d);
                    }
                    Command::Add(d, reply) => {
                        sync.dests.entry(d.clone()).or_default().clear();
                        let r = rt.block_on(sync.run(Reason::Destination, true, Some(&d)));
                        let _ = reply.send(r.and_then(|r| sync.check(r)));
                    }
                }
            }
        }
        if events {
            match ws.drain() {
                Ok(o) if o.changed => {
                    let now = Instant::now();
                    pending.first.get_or_insert(now);
                    pending.last = Some(now);
                    pending.overflow |= o.overflow;
                }
                Ok(_) => {}
                Err(e) => sink(Event::Error(e.to_string())),
            }
        }
        if pending
            .due(config.debounce)
            .is_some_and(|at| Instant::now() >= at)
        {
            let overflow = std::mem::take(&mut pending).overflow;
            let reason = if overflow {
                Reason::Overflow
            } else {
                Reason::Events
            };
            match rt.block_on(sync.run(reason, overflow, None)) {
                Ok(mut r) => {
                    r.watched_dirs = u32::try_from(ws.len()).unwrap_or(u32::MAX);
                    sink(Event::Synced(r));
                }
                Err(e) => sink(Event::Error(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debounce_waits_for_quiet_but_never_past_the_max_delay() {
        let t0 = Instant::now();
        let d = Duration::from_millis(500);
        let mut p = Pending::default();
        assert_eq!(
            p.due(d),
            None,
            "nothing pending: poll blocks without a timeout"
        );
        p.first = Some(t0);
        p.last = Some(t0 + Duration::from_millis(300));
        assert_eq!(p.due(d), Some(t0 + Duration::from_millis(800)));
        p.last = Some(t0 + Duration::from_secs(60));
        assert_eq!(p.due(d), Some(t0 + d * MAX_DELAY_FACTOR));
    }
}
