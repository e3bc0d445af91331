//! A ttrpc client over one agent connection: many concurrent unary calls, each on its own odd
//! stream id. A reader task demultiplexes responses by stream id. Callers write their own
//! frames (no hand-off to a writer task, which cost a cross-thread wake per call) through
//! [`FrameWriter`], which keeps the unwritten rest of a frame whose call was cancelled or timed
//! out, so the next writer finishes it first and the stream never carries half a frame.
//! Losing the connection fails every pending call at once. Nothing polls: callers await
//! oneshot channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::dial::BoxStream;
use crate::frame::{
    read_data, request_frame, Header, HEADER_LEN, MESSAGE_LENGTH_MAX, TYPE_RESPONSE,
};
use crate::wire::{code_name, Request, Response};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The encoded request exceeds ttrpc's 4 MiB limit; nothing was sent.
    #[error("{service}/{method}: request of {length} bytes exceeds the ttrpc limit of {max} bytes; not sent")]
    TooLarge {
        service: String,
        method: String,
        length: usize,
        max: usize,
    },
    /// No response within the call's timeout.
    #[error("{service}/{method}: no response within {timeout_ms} ms")]
    Timeout {
        service: String,
        method: String,
        timeout_ms: u128,
    },
    /// The agent answered with a non-OK status.
    #[error("{service}/{method}: agent returned {} ({code}): {message}", code_name(*code))]
    Status {
        service: String,
        method: String,
        code: i32,
        message: String,
    },
    /// The connection broke (peer closed, I/O error, protocol violation).
    #[error("agent connection lost: {reason}")]
    ConnectionLost { reason: String },
    /// The connection was closed by this side.
    #[error("agent connection closed")]
    Closed,
}

type Reply = Result<Vec<u8>, CallError>;

/// State shared with the reader and writer tasks.
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: HashMap<u32, oneshot::Sender<Reply>>,
    /// Set once: every later call fails with this.
    failed: Option<CallError>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the map inconsistent; keep going.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails every pending call (and all later ones) with `err`.
    fn fail_all(&self, err: CallError) {
        let calls = {
            let mut p = self.lock();
            p.failed.get_or_insert(err.clone());
            std::mem::take(&mut p.calls)
        };
        for (_, tx) in calls {
            let _ = tx.send(Err(err.clone()));
        }
    }

    fn complete(&self, stream_id: u32, reply: Reply) {
        // A reply for a call that already timed out finds no entry and is dropped.
        if let Some(tx) = self.lock().calls.remove(&stream_id) {
            let _ = tx.send(reply);
        }
    }
}

/// A ttrpc client connection.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<Option<FrameWriter>>,
    next_stream: AtomicU32,
    reader: Mutex<Option<JoinHandle<()>>>,
}

async fn read_loop(mut rd: ReadHalf<BoxStream>, shared: Arc<Shared>) {
    let mut head = [0u8; HEADER_LEN];
    let reason = loop {
        if let Err(e) = rd.read_exact(&mut head).await {
            break if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the agent closed the connection".to_string()
            } else {
                format!("read: {e}")
            };
        }
        let header = match Header::decode(&head) {
            Ok(h) => h,
            Err(e) => break format!("bad frame from agent: {e}"),
        };
        let data = match read_data(&mut rd, header.data_len()).await {
            Ok(d) => d,
            Err(e) => break format!("read {} bytes of frame data: {e}", header.data_len()),
        };
        if header.kind != TYPE_RESPONSE {
            // Streaming frames are not used by the Kata agent protocol; ignore them.
            continue;
        }
        // Decoding happens in the caller's task, keeping this loop short.
        shared.complete(header.stream_id, Ok(data));
    };
    shared.fail_all(CallError::ConnectionLost { reason });
}

/// The write half plus the unwritten tail of the last frame. Writing a frame first appends it
/// to `buf` and only advances `done` after bytes really left, so dropping the future at any
/// await leaves an exact record of what still has to go out.
struct FrameWriter {
    half: WriteHalf<BoxStream>,
    buf: Vec<u8>,
    done: usize,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("unsent", &(self.buf.len() - self.done))
            .finish()
    }
}

impl FrameWriter {
    async fn send(&mut self, frame: Vec<u8>) -> std::io::Result<()> {
        if self.done == self.buf.len() {
            self.buf = frame;
            self.done = 0;
        } else {
            self.buf.extend_from_slice(&frame);
        }
        while self.done < self.buf.len() {
            let n = self.half.write(&self.buf[self.done..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.done += n;
        }
        self.buf = Vec::new();
        self.done = 0;
        Ok(())
    }
}

/// Decoded response → the call's result.
fn into_reply(service: &str, method: &str, res: Response) -> Reply {
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

impl Client {
    /// Starts the client on a connected stream. Must run inside a tokio runtime.
    pub fn new(stream: BoxStream) -> Client {
        let shared = Arc::new(Shared::default());
        let (rd, wr) = tokio::io::split(stream);
        let reader = tokio::spawn(read_loop(rd, shared.clone()));
        Client {
            shared,
            writer: tokio::sync::Mutex::new(Some(FrameWriter {
                half: wr,
                buf: Vec::new(),
                done: 0,
            })),
            next_stream: AtomicU32::new(1),
            reader: Mutex::new(Some(reader)),
        }
    }

    /// Calls `service/method` with an encoded request message and returns the encoded response
    /// message. `timeout` is sent as `timeout_nano` and enforced here; `None` waits forever.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let timeout_nano = timeout.map_or(0, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX));
        let data = Request {
            service,
            method,
            payload,
            timeout_nano,
        }
        .encode();
        if data.len() > MESSAGE_LENGTH_MAX {
            return Err(CallError::TooLarge {
                service: service.to_string(),
                method: method.to_string(),
                length: data.len(),
                max: MESSAGE_LENGTH_MAX,
            });
        }
        // Client streams are odd; wrapping past u32::MAX stays odd.
        let stream_id = self.next_stream.fetch_add(2, Ordering::Relaxed);
        let frame = request_frame(stream_id, &data).map_err(|e| CallError::ConnectionLost {
            reason: e.to_string(),
        })?;

        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.lock();
            if let Some(err) = &p.failed {
                return Err(err.clone());
            }
            p.calls.insert(stream_id, tx);
        }
        let exchange = async {
            {
                let mut writer = self.writer.lock().await;
                let Some(w) = writer.as_mut() else {
                    return Err(self.failure());
                };
                if let Err(e) = w.send(frame).await {
                    writer.take();
                    self.shared.fail_all(CallError::ConnectionLost {
                        reason: format!("write: {e}"),
                    });
                    return Err(self.failure());
                }
            }
            rx.await.unwrap_or_else(|_| Err(self.failure()))
        };
        let result = match timeout {
            Some(t) => match tokio::time::timeout(t, exchange).await {
                Ok(r) => r,
                Err(_) => Err(CallError::Timeout {
                    service: service.to_string(),
                    method: method.to_string(),
                    timeout_ms: t.as_millis(),
                }),
            },
            None => exchange.await,
        };
        if result.is_err() {
            self.shared.lock().calls.remove(&stream_id);
        }
        let payload = result?;
        let res = Response::decode(&payload).map_err(|e| CallError::ConnectionLost {
            reason: e.to_string(),
        })?;
        into_reply(service, method, res)
    }

    fn failure(&self) -> CallError {
        self.shared
            .lock()
            .failed
            .clone()
            .unwrap_or(CallError::Closed)
    }

    /// Closes the connection: pending calls fail with [`CallError::Closed`]. Idempotent.
    pub fn close(&self) {
        self.shared.fail_all(CallError::Closed);
        // A call may hold the writer; it finds the connection failed once it lets go. Dropping
        // the write half with the client closes our side of the socket.
        if let Ok(mut w) = self.writer.try_lock() {
            w.take();
        }
        if let Some(t) = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }

    /// True once the connection is closed or lost.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }

    /// Number of calls waiting for a response.
    pub fn pending(&self) -> usize {
        self.shared.lock().calls.len()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
