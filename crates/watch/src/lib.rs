//! Live file sync for copy volumes (`shared_fs = none`, behaviour.md feature 4): a copy engine
//! that turns a host tree into Kata `CopyFile` requests and sends them through the `transport`
//! crate's ttrpc client, and a recursive inotify watcher that re-sends what changed, debounced.
//! No Node dependency; the binding crate exposes [`Watcher`] to TypeScript.

pub mod guest;
mod monitor;
pub mod request;
pub mod send;
pub mod tree;
pub mod watch_set;
pub mod watcher;

#[cfg(test)]
mod test_fixtures;

pub use guest::{GuestPath, GuestPathError, GUEST_SHARE_DIR};
pub use watcher::{
    Config, Event, Reason, Report, WatchError, Watcher, DEFAULT_DEBOUNCE, THREAD_NAME,
};
