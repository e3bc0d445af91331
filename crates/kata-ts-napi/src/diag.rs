//! Diagnostics that exercise the binding machinery itself — panics, rejections and threadsafe
//! callbacks — so the tests can prove a panic never takes the process down and Rust→JS events
//! arrive in order. Nothing in kata-ts's runtime path calls these.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::error::{guard, guard_async, Result};

/// Panics; the binding must turn this into a thrown JS error.
#[napi(catch_unwind)]
pub fn diag_panic_sync(message: String) -> Result<()> {
    guard(|| panic!("{message}"))
}

/// Panics inside an async task; the returned Promise must reject.
#[napi]
pub async fn diag_panic_async(message: String) -> napi::Result<u32> {
    guard_async(async move {
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(7)
    })
    .await
}

/// Resolves with `value` after `delayMs`, computed off the main thread.
#[napi]
pub async fn diag_echo_async(value: u32, delay_ms: u32) -> napi::Result<u32> {
    guard_async(async move {
        std::thread::sleep(Duration::from_millis(u64::from(delay_ms)));
        Ok(value)
    })
    .await
}

type EventCallback = ThreadsafeFunction<u32, (), u32, Status, false>;

/// A native handle that delivers numbered events from a Rust thread to a JS callback.
/// `count` 0 means "until closed". Like `fs.watch`, an open source keeps node alive;
/// `close()` stops it (idempotent) and environment teardown stops it too.
#[napi]
#[derive(Debug)]
pub struct DiagEventSource {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[napi]
impl DiagEventSource {
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "count: number, intervalMs: number, callback: (value: number) => void"
    )]
    pub fn new(count: u32, interval_ms: u32, callback: EventCallback) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0u32;
            while !flag.load(Ordering::Acquire) && (count == 0 || n < count) {
                // Blocking keeps events in order; a non-Ok status means the env is going away.
                if callback.call(n, ThreadsafeFunctionCallMode::Blocking) != Status::Ok {
                    break;
                }
                n = n.wrapping_add(1);
                if interval_ms > 0 {
                    std::thread::sleep(Duration::from_millis(u64::from(interval_ms)));
                }
            }
        });
        DiagEventSource {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the source; safe to call more than once.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Joining here could deadlock with a Blocking call waiting on this JS thread; the
        // thread exits on its own once it sees the flag.
        self.thread.take();
    }

    /// True once `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

impl Drop for DiagEventSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}
