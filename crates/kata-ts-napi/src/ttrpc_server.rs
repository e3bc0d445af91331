//! `TtrpcServer`: the `transport` crate's ttrpc server for TypeScript (the containerd shim's
//! Task service). Each request is passed undecoded to one JS async handler through a
//! threadsafe function; what it resolves with (payload, or status code + message) is the
//! response. A handler that throws or rejects answers UNKNOWN with the error's message.
//! The socket is 0600 whatever the umask, and only root and this process's uid (or the uids
//! given) are served; other peers are disconnected on accept.
//! Codes: TTRPC_LISTEN (binding the socket failed).

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use transport::server::{AllowedPeers, Incoming, Reply, Server};
use transport::wire::Status as RpcStatus;

use crate::error::{coded, guard_async};

/// google.rpc.Code UNKNOWN: what a throwing handler answers.
const UNKNOWN: i32 = 2;

/// One request as the handler sees it.
#[napi(object)]
pub struct TtrpcServerRequest {
    pub service: String,
    pub method: String,
    /// The encoded request message.
    pub payload: Buffer,
    /// The client's deadline in nanoseconds; 0 = none.
    pub timeout_nano: i64,
}

/// The handler's answer: `payload` (the encoded response message), or a non-zero `code`
/// (google.rpc.Code) with `message`.
#[napi(object)]
pub struct TtrpcServerReply {
    pub payload: Option<Buffer>,
    pub code: Option<i32>,
    pub message: Option<String>,
}

// Buffer has no Debug; these show the payload length.
impl std::fmt::Debug for TtrpcServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtrpcServerRequest")
            .field("service", &self.service)
            .field("method", &self.method)
            .field("payload_len", &self.payload.len())
            .field("timeout_nano", &self.timeout_nano)
            .finish()
    }
}

impl std::fmt::Debug for TtrpcServerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtrpcServerReply")
            .field("payload_len", &self.payload.as_ref().map(|b| b.len()))
            .field("code", &self.code)
            .field("message", &self.message)
            .finish()
    }
}

type RequestHandler = ThreadsafeFunction<
    TtrpcServerRequest,
    Promise<TtrpcServerReply>,
    TtrpcServerRequest,
    Status,
    false,
>;

fn reply(answer: napi::Result<TtrpcServerReply>) -> Reply {
    let unknown = |e: napi::Error| RpcStatus {
        code: UNKNOWN,
        message: e.reason.clone(),
    };
    let answer = answer.map_err(unknown)?;
    match answer.code.filter(|c| *c != 0) {
        Some(code) => Err(RpcStatus {
            code,
            message: answer.message.unwrap_or_default(),
        }),
        None => Ok(answer.payload.map(|b| b.to_vec()).unwrap_or_default()),
    }
}

async fn handle(handler: Arc<RequestHandler>, req: Incoming) -> Reply {
    let request = TtrpcServerRequest {
        service: req.service,
        method: req.method,
        payload: Buffer::from(req.payload),
        timeout_nano: req.timeout_nano,
    };
    let answer = match handler.call_async_catch(request).await {
        Ok(promise) => promise.await,
        Err(e) => Err(e),
    };
    reply(answer)
}

/// A listening ttrpc server. Like `net.Server`, it keeps node alive until `close()`.
#[napi]
#[derive(Debug)]
pub struct TtrpcServer {
    server: Server,
}

/// Listens on the unix socket `path` (which must not exist) and answers every request with
/// `handler`; requests run concurrently. `allowedUids` replaces the default peers (root and
/// this process's effective uid).
#[napi(
    ts_args_type = "path: string, handler: (request: TtrpcServerRequest) => Promise<TtrpcServerReply>, allowedUids?: number[]"
)]
pub async fn listen_ttrpc(
    path: String,
    handler: RequestHandler,
    allowed_uids: Option<Vec<u32>>,
) -> napi::Result<TtrpcServer> {
    let handler = Arc::new(handler);
    let peers = allowed_uids.map_or_else(AllowedPeers::root_and_self, AllowedPeers::uids);
    guard_async(async move {
        let server = Server::bind(&PathBuf::from(&path), peers, move |req| {
            handle(handler.clone(), req)
        })
        .map_err(|e| coded("TTRPC_LISTEN", e.to_string()))?;
        Ok(TtrpcServer { server })
    })
    .await
}

#[napi]
impl TtrpcServer {
    /// Stops accepting, closes every connection (pending calls are dropped unanswered) and
    /// removes the socket file. Idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.server.close();
    }

    /// True once closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.server.is_closed()
    }

    /// Connections currently open.
    #[napi(getter)]
    pub fn connections(&self) -> u32 {
        u32::try_from(self.server.connections()).unwrap_or(u32::MAX)
    }

    /// Connections closed on accept because their peer's uid is not allowed.
    #[napi(getter)]
    pub fn refused(&self) -> u32 {
        u32::try_from(self.server.refused()).unwrap_or(u32::MAX)
    }

    /// The socket path.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.server.path().display().to_string()
    }
}
