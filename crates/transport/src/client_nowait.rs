//! `Client::start_call`: a call made from a thread outside the runtime (the JS thread of the
//! binding) without handing it to a runtime task. The frame is written on the calling thread when
//! the writer is free and the socket takes it, and the reader task hands the decoded reply to a
//! callback: one wake-up per call on this side (the reader's), instead of waking a task to
//! write, another to await the reply and a third to deliver it. When the socket is full or
//! another call is writing, the rest goes out from a runtime task, in order.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::client::{CallError, Client, FrameWriter};
use crate::client_pending::{Callback, Delivery};

impl FrameWriter {
    /// Writes as much of `frame` as the socket takes now, without waiting; returns the count.
    /// Only when nothing of an earlier frame is left unsent.
    fn write_now(&mut self, frame: &[u8]) -> std::io::Result<usize> {
        if !self.unsent.is_empty() {
            return Ok(0);
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut done = 0;
        while done < frame.len() {
            match Pin::new(&mut self.half).poll_write(&mut cx, &frame[done..]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => done += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        Ok(done)
    }
}

impl Client {
    /// Calls `service/method` and hands the response message (or the failure) to `deliver`,
    /// which runs on a runtime thread, or on this one when the call fails before it is sent.
    /// `timeout` is sent as `timeout_nano` and enforced by the connection's timer.
    pub fn start_call(
        self: &Arc<Self>,
        service: &str,
        method: &str,
        payload: &[u8],
        timeout: Option<Duration>,
        deliver: Delivery,
    ) {
        let (stream_id, mut frame, tail) = match self.envelope(service, method, &[payload], timeout)
        {
            Ok(f) => f,
            Err(e) => return deliver(Err(e)),
        };
        frame.reserve(payload.len() + tail.len());
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&tail);
        self.shared.insert_callback(
            stream_id,
            Callback {
                service: service.to_string(),
                method: method.to_string(),
                deadline: timeout.map(|t| (Instant::now() + t, t)),
                deliver,
            },
        );
        let written = match self.writer.try_lock() {
            Ok(mut guard) => {
                let Some(w) = guard.as_mut() else {
                    // Closed: the call already failed with the connection.
                    return;
                };
                match w.write_now(&frame) {
                    Ok(n) if n == frame.len() => return,
                    // Part of the frame left: the rest must follow before any other frame.
                    Ok(n) if n > 0 => {
                        w.unsent.extend_from_slice(&frame[n..]);
                        frame.clear();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        guard.take();
                        self.shared.fail_all(CallError::ConnectionLost {
                            reason: format!("write: {e}"),
                        });
                        return;
                    }
                }
                drop(guard);
                frame
            }
            Err(_) => frame,
        };
        let client = self.clone();
        self.runtime.spawn(async move {
            let mut guard = client.writer.lock().await;
            let Some(w) = guard.as_mut() else { return };
            // An empty frame flushes what is left unsent.
            if let Err(e) = w.send(&[&written]).await {
                guard.take();
                client.shared.fail_all(CallError::ConnectionLost {
                    reason: format!("write: {e}"),
                });
            }
        });
    }
}

#[cfg(test)]
#[path = "client_nowait_tests.rs"]
mod tests;
