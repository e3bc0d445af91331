//! A ttrpc server on a unix socket: the containerd shim side of the protocol (containerd dials
//! the shim). Every request is handed, undecoded, to one [`Handler`] as service, method,
//! payload and deadline; its reply (payload or status) goes back on the request's stream id.
//! Requests on one connection run concurrently (containerd holds `Wait` open while `State` and
//! `Kill` arrive), each connection has its own writer task fed by a channel, and
//! [`Server::close`] stops the accept loop, every connection and every pending handler at once.
//! The socket is 0600 whatever the umask and only [`AllowedPeers`] are served (`server_socket.rs`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::frame::{
    read_data, Header, HEADER_LEN, MESSAGE_LENGTH_MAX, TYPE_REQUEST, TYPE_RESPONSE,
};
use crate::wire::Status;

#[path = "server_wire.rs"]
pub mod server_wire;
pub use server_wire::{encode_response, Incoming, RequestError};
#[path = "server_socket.rs"]
pub mod server_socket;
pub use server_socket::{listen_private, AllowedPeers, SocketError, SOCKET_MODE};

/// What a handler answers: the encoded response message, or a non-OK status.
pub type Reply = Result<Vec<u8>, Status>;

/// google.rpc.Code INVALID_ARGUMENT.
const INVALID_ARGUMENT: i32 = 3;
/// google.rpc.Code RESOURCE_EXHAUSTED (what ttrpc answers to an oversized request).
const RESOURCE_EXHAUSTED: i32 = 8;

/// Answers requests. Implemented for any `Fn(Incoming) -> impl Future<Output = Reply>`.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: Incoming) -> Pin<Box<dyn Future<Output = Reply> + Send>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    fn handle(&self, request: Incoming) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
        Box::pin(self(request))
    }
}

/// Why the server could not start.
pub type ServerError = SocketError;

/// A listening ttrpc server. Dropping it closes it.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    shutdown: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

/// What the accept loop and every connection share.
#[derive(Clone)]
struct Shared {
    handler: Arc<dyn Handler>,
    shutdown: watch::Receiver<bool>,
    connections: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    peers: Arc<AllowedPeers>,
}

impl Server {
    /// Binds `path` (mode 0600, see [`listen_private`]) and serves `peers` with `handler`.
    /// Must run inside a tokio runtime.
    pub fn bind(
        path: &Path,
        peers: AllowedPeers,
        handler: impl Handler,
    ) -> Result<Server, ServerError> {
        let listener = listen_private(path)?;
        let (shutdown, rx) = watch::channel(false);
        let shared = Shared {
            handler: Arc::new(handler),
            shutdown: rx,
            connections: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
            peers: Arc::new(peers),
        };
        let (connections, refused) = (shared.connections.clone(), shared.refused.clone());
        tokio::spawn(accept_loop(listener, shared));
        Ok(Server {
            path: path.to_path_buf(),
            shutdown,
            connections,
            refused,
        })
    }

    /// Stops accepting, closes every connection, drops pending handlers and removes the socket
    /// file. Idempotent.
    pub fn close(&self) {
        if !self.shutdown.send_replace(true) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Connections currently open.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections closed on accept because their peer's uid is not allowed.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

/// Resolves once the server is closed (or dropped).
async fn closed(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|closed| *closed).await;
}

async fn accept_loop(listener: UnixListener, shared: Shared) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                // Dropping the stream closes it: nothing is read from a refused peer.
                Ok((stream, _)) if !shared.peers.admits(&stream) => {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                }
                Ok((stream, _)) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(stream, shared.clone()));
                }
                // EMFILE and the like: keep serving the connections we have.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            () = closed(shared.shutdown.clone()) => break,
        }
    }
}

/// One frame read off the connection; oversized data is read and dropped.
enum Frame {
    Whole(Header, Vec<u8>),
    TooLarge(Header, usize),
}

async fn read_frame(rd: &mut OwnedReadHalf) -> std::io::Result<Frame> {
    let mut head = [0u8; HEADER_LEN];
    rd.read_exact(&mut head).await?;
    let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let header = Header {
        length: 0,
        stream_id: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        kind: head[8],
        flags: head[9],
    };
    let size = usize::try_from(length).unwrap_or(usize::MAX);
    if size > MESSAGE_LENGTH_MAX {
        let discarded =
            tokio::io::copy(&mut rd.take(u64::from(length)), &mut tokio::io::sink()).await?;
        if discarded < u64::from(length) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(Frame::TooLarge(header, size));
    }
    Ok(Frame::Whole(header, read_data(rd, size).await?))
}

fn response_frame(stream_id: u32, reply: &Reply) -> Vec<u8> {
    let data = encode_response(reply);
    let header = Header {
        length: u32::try_from(data.len()).unwrap_or(u32::MAX),
        stream_id,
        kind: TYPE_RESPONSE,
        flags: 0,
    };
    [&header.encode()[..], &data].concat()
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        if wr.write_all(&frame).await.is_err() {
            break;
        }
    }
}

async fn connection(stream: UnixStream, shared: Shared) {
    let Shared {
        handler,
        shutdown,
        connections: count,
        ..
    } = shared;
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(wr, rx));
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd) => f,
            () = closed(shutdown.clone()) => break,
        };
        match frame {
            Ok(Frame::Whole(h, data)) if h.kind == TYPE_REQUEST => {
                tokio::spawn(request(
                    h.stream_id,
                    data,
                    handler.clone(),
                    tx.clone(),
                    shutdown.clone(),
                ));
            }
            Ok(Frame::TooLarge(h, length)) if h.kind == TYPE_REQUEST => {
                let status = Status {
                    code: RESOURCE_EXHAUSTED,
                    message: format!("message length {length} exceeds maximum message size of {MESSAGE_LENGTH_MAX}"),
                };
                let _ = tx.send(response_frame(h.stream_id, &Err(status)));
            }
            // Streaming data frames are not part of the task API; ignore them.
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(tx);
    count.fetch_sub(1, Ordering::Relaxed);
    if *shutdown.borrow() {
        writer.abort();
    }
}

async fn request(
    stream_id: u32,
    data: Vec<u8>,
    handler: Arc<dyn Handler>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    shutdown: watch::Receiver<bool>,
) {
    let reply = match Incoming::decode(&data) {
        Ok(req) => tokio::select! {
            reply = handler.handle(req) => reply,
            () = closed(shutdown) => return,
        },
        Err(e) => Err(Status {
            code: INVALID_ARGUMENT,
            message: e.to_string(),
        }),
    };
    let _ = tx.send(response_frame(stream_id, &reply));
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
