//! A ttrpc client over one agent connection: many concurrent unary calls, each on its own odd
//! stream id. A reader task demultiplexes responses by stream id. Callers write their own
//! frames (no hand-off to a writer task, which cost a cross-thread wake per call) through
//! [`FrameWriter`], which keeps the unwritten rest of a frame whose call was cancelled or timed
//! out, so the next writer finishes it first and the stream never carries half a frame.
//! Losing the connection fails every pending call at once. Nothing polls: callers await
//! oneshot channels.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client_pending::{decode_reply, timer_loop, Shared, Waiter};
use crate::dial::BoxStream;
use crate::frame::{
    read_data, Header, HEADER_LEN, MESSAGE_LENGTH_MAX, TYPE_REQUEST, TYPE_RESPONSE,
};
use crate::wire::{code_name, request_envelope};

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

/// A ttrpc client connection.
#[derive(Debug)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    pub(crate) writer: tokio::sync::Mutex<Option<FrameWriter>>,
    next_stream: AtomicU32,
    reader: Mutex<Option<JoinHandle<()>>>,
    timer: Mutex<Option<JoinHandle<()>>>,
    pub(crate) runtime: tokio::runtime::Handle,
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

/// The write half plus the unwritten tail of a frame whose call was dropped mid-write. A frame
/// goes out from the caller's slices with vectored writes (its payload is never copied); only
/// when the writing future is dropped after part of the frame left does the rest get copied
/// into `unsent`, which the next writer sends first, so the stream never carries half a frame.
pub(crate) struct FrameWriter {
    pub(crate) half: WriteHalf<BoxStream>,
    pub(crate) unsent: Vec<u8>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter")
            .field("unsent", &self.unsent.len())
            .finish()
    }
}

/// A frame being written: on drop with part of it written, the rest moves to `unsent`.
struct Writing<'a, 'b> {
    writer: &'a mut FrameWriter,
    parts: &'b [&'b [u8]],
    /// Bytes of `parts` (taken in order) already written.
    done: usize,
}

impl Writing<'_, '_> {
    fn total(&self) -> usize {
        self.parts.iter().map(|p| p.len()).sum()
    }
}

/// What of `parts` is left after `done` bytes, as slices.
fn rest<'p>(parts: &'p [&'p [u8]], done: usize) -> Vec<std::io::IoSlice<'p>> {
    let mut skip = done;
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        out.push(std::io::IoSlice::new(&p[skip..]));
        skip = 0;
    }
    out
}

impl Drop for Writing<'_, '_> {
    fn drop(&mut self) {
        // Nothing of the frame written: the peer never saw it, so it is simply not sent.
        if self.done == 0 || self.done == self.total() {
            return;
        }
        let rest: Vec<u8> = rest(self.parts, self.done)
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        self.writer.unsent.extend_from_slice(&rest);
    }
}

impl FrameWriter {
    pub(crate) async fn send(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        while !self.unsent.is_empty() {
            let n = self.half.write(&self.unsent).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.unsent.drain(..n);
        }
        let mut w = Writing {
            writer: self,
            parts,
            done: 0,
        };
        let total = w.total();
        while w.done < total {
            let slices = rest(parts, w.done);
            let n = w.writer.half.write_vectored(&slices).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            w.done += n;
        }
        Ok(())
    }
}

impl Client {
    /// Starts the client on a connected stream. Must run inside a tokio runtime.
    pub fn new(stream: BoxStream) -> Client {
        let shared = Arc::new(Shared::default());
        let (rd, wr) = tokio::io::split(stream);
        let reader = tokio::spawn(read_loop(rd, shared.clone()));
        let timer = tokio::spawn(timer_loop(shared.clone()));
        Client {
            shared,
            writer: tokio::sync::Mutex::new(Some(FrameWriter {
                half: wr,
                unsent: Vec::new(),
            })),
            next_stream: AtomicU32::new(1),
            reader: Mutex::new(Some(reader)),
            timer: Mutex::new(Some(timer)),
            runtime: tokio::runtime::Handle::current(),
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
        self.call_parts(service, method, &[payload], timeout).await
    }

    /// [`Client::call`] with the request message given as consecutive parts (e.g. a message
    /// head and a file chunk), written with vectored writes so no part is copied.
    pub async fn call_parts(
        &self,
        service: &str,
        method: &str,
        payload: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        let (stream_id, head, tail) = self.envelope(service, method, payload, timeout)?;
        let mut parts = Vec::with_capacity(payload.len() + 2);
        parts.push(&head[..]);
        parts.extend(payload.iter().copied().filter(|p| !p.is_empty()));
        parts.push(&tail[..]);

        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.lock();
            if let Some(err) = &p.failed {
                return Err(err.clone());
            }
            p.calls.insert(stream_id, Waiter::Task(tx));
        }
        let exchange = async {
            {
                let mut writer = self.writer.lock().await;
                let Some(w) = writer.as_mut() else {
                    return Err(self.failure());
                };
                if let Err(e) = w.send(&parts).await {
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
        decode_reply(service, method, &result?)
    }

    /// A new stream id and the frame around a payload of these parts: the header and envelope
    /// before it, the envelope's tail after it. Refuses a frame over the ttrpc limit.
    pub(crate) fn envelope(
        &self,
        service: &str,
        method: &str,
        payload: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<(u32, Vec<u8>, Vec<u8>), CallError> {
        let timeout_nano = timeout.map_or(0, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX));
        let payload_len: usize = payload.iter().map(|p| p.len()).sum();
        let (mut head, tail) = request_envelope(service, method, payload_len, timeout_nano);
        let length = head.len() + payload_len + tail.len();
        if length > MESSAGE_LENGTH_MAX {
            return Err(CallError::TooLarge {
                service: service.to_string(),
                method: method.to_string(),
                length,
                max: MESSAGE_LENGTH_MAX,
            });
        }
        // Client streams are odd; wrapping past u32::MAX stays odd.
        let stream_id = self.next_stream.fetch_add(2, Ordering::Relaxed);
        let header = Header {
            length: u32::try_from(length).unwrap_or(u32::MAX),
            stream_id,
            kind: TYPE_REQUEST,
            flags: 0,
        };
        head.splice(0..0, header.encode());
        Ok((stream_id, head, tail))
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
        if let Some(t) = self
            .timer
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
pub(crate) mod tests;
