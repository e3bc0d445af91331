//! The calls of one connection waiting for their response, keyed by stream id. A call waits
//! either as a task (`Client::call`, a oneshot channel) or as a callback that the reader task
//! runs with the decoded result (`Client::start_call`, so a reply reaches its caller without
//! waking another task first). Callback calls with a timeout are expired by one timer task per
//! connection, which sleeps until the earliest deadline and is woken only when a call with an
//! earlier one arrives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::client::CallError;
use crate::wire::Response;

pub(crate) type Reply = Result<Vec<u8>, CallError>;

/// What a callback call receives: the response message, or why there is none.
pub type Delivery = Box<dyn FnOnce(Result<Vec<u8>, CallError>) + Send>;

/// A call waiting with a callback.
pub(crate) struct Callback {
    pub service: String,
    pub method: String,
    /// The local deadline and the timeout it came from.
    pub deadline: Option<(Instant, Duration)>,
    pub deliver: Delivery,
}

impl Callback {
    /// Decodes the frame data (or passes the failure on) and hands the result to the caller.
    fn finish(self, reply: Reply) {
        let result = reply.and_then(|data| decode_reply(&self.service, &self.method, &data));
        (self.deliver)(result);
    }

    fn timed_out(self) {
        let timeout_ms = self.deadline.map_or(0, |(_, t)| t.as_millis());
        let err = CallError::Timeout {
            service: self.service.clone(),
            method: self.method.clone(),
            timeout_ms,
        };
        (self.deliver)(Err(err));
    }
}

/// Frame data of a response → the call's result.
pub(crate) fn decode_reply(service: &str, method: &str, data: &[u8]) -> Reply {
    let res = Response::decode(data).map_err(|e| CallError::ConnectionLost {
        reason: e.to_string(),
    })?;
    match res.status {
        Some(s) if s.code != 0 => Err(CallError::Status {
            service: service.to_string(),
            method: method.to_string(),
            code: s.code,
            message: s.message,
        }),
        _ => Ok(res.payload),
    }
}

pub(crate) enum Waiter {
    /// An awaiting task; it decodes the frame data itself.
    Task(oneshot::Sender<Reply>),
    Callback(Callback),
}

impl Waiter {
    fn finish(self, reply: Reply) {
        match self {
            Waiter::Task(tx) => {
                let _ = tx.send(reply);
            }
            Waiter::Callback(c) => c.finish(reply),
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiter::Task(_) => f.write_str("Task"),
            Waiter::Callback(c) => write!(f, "Callback({}/{})", c.service, c.method),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub calls: HashMap<u32, Waiter>,
    /// Set once: every later call fails with this.
    pub failed: Option<CallError>,
    /// The deadline the timer task sleeps until (None: it waits for a notification).
    armed: Option<Instant>,
}

/// State shared by the client, its reader task and its timer task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pending: Mutex<Pending>,
    timer: Notify,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the map inconsistent; keep going.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a callback call; fails it at once when the connection is already gone.
    pub fn insert_callback(&self, stream_id: u32, c: Callback) {
        let mut p = self.lock();
        if let Some(err) = p.failed.clone() {
            drop(p);
            (c.deliver)(Err(err));
            return;
        }
        let wake = c
            .deadline
            .is_some_and(|(d, _)| p.armed.is_none_or(|armed| d < armed));
        if let Some((d, _)) = c.deadline.filter(|_| wake) {
            p.armed = Some(d);
        }
        p.calls.insert(stream_id, Waiter::Callback(c));
        drop(p);
        if wake {
            self.timer.notify_one();
        }
    }

    /// Fails every pending call (and all later ones) with `err`.
    pub fn fail_all(&self, err: CallError) {
        let calls = {
            let mut p = self.lock();
            p.failed.get_or_insert(err.clone());
            std::mem::take(&mut p.calls)
        };
        for (_, w) in calls {
            w.finish(Err(err.clone()));
        }
    }

    pub fn complete(&self, stream_id: u32, reply: Reply) {
        // A reply for a call that already timed out finds no entry and is dropped.
        let waiter = self.lock().calls.remove(&stream_id);
        if let Some(w) = waiter {
            w.finish(reply);
        }
    }

    /// Fails the callback calls whose deadline passed; returns the next deadline (now armed).
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let next = {
            let mut p = self.lock();
            let ids: Vec<u32> = p
                .calls
                .iter()
                .filter_map(|(id, w)| match w {
                    Waiter::Callback(c) if c.deadline.is_some_and(|(d, _)| d <= now) => Some(*id),
                    _ => None,
                })
                .collect();
            for id in ids {
                if let Some(Waiter::Callback(c)) = p.calls.remove(&id) {
                    due.push(c);
                }
            }
            let next = p
                .calls
                .values()
                .filter_map(|w| match w {
                    Waiter::Callback(c) => c.deadline.map(|(d, _)| d),
                    Waiter::Task(_) => None,
                })
                .min();
            p.armed = next;
            next
        };
        for c in due {
            c.timed_out();
        }
        next
    }
}

/// The timer task of a connection: sleeps until the earliest callback deadline.
pub(crate) async fn timer_loop(shared: std::sync::Arc<Shared>) {
    loop {
        match shared.expire(Instant::now()) {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.timer.notified() => {}
                }
            }
            None => shared.timer.notified().await,
        }
    }
}
