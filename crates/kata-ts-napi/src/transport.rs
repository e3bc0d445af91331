//! `AgentConnection`: the `transport` crate's dialers and ttrpc client for TypeScript. Every
//! failure carries a stable code: TRANSPORT_INVALID (bad dial options), TRANSPORT_DIAL,
//! TRANSPORT_CLOSED (closed by us), TRANSPORT_LOST (the connection broke), TTRPC_TIMEOUT,
//! TTRPC_TOO_LARGE and TTRPC_STATUS, whose message starts with `<code> <NAME> ` so the typed
//! client can recover the status code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Object};
use napi::Env;
use napi_derive::napi;
use transport::{code_name, Address, CallError, Client, Delivery, DialError};

use crate::error::{coded, guard_async, Code, Result};

fn call_error(err: CallError) -> napi::Error<Code> {
    let code = match &err {
        CallError::TooLarge { .. } => "TTRPC_TOO_LARGE",
        CallError::Timeout { .. } => "TTRPC_TIMEOUT",
        CallError::Status { code, .. } => {
            return coded("TTRPC_STATUS", format!("{code} {} {err}", code_name(*code)));
        }
        CallError::ConnectionLost { .. } => "TRANSPORT_LOST",
        CallError::Closed => "TRANSPORT_CLOSED",
    };
    coded(code, err.to_string())
}

fn dial_error(err: DialError) -> napi::Error<Code> {
    coded("TRANSPORT_DIAL", err.to_string())
}

/// How to reach the agent.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct AgentDialOptions {
    /// `unix` (QEMU virtio-serial chardev or a test agent), `hybrid-vsock` or `vsock`.
    pub kind: String,
    /// Socket path for `unix` and `hybrid-vsock`.
    pub path: Option<String>,
    /// Guest vsock port for `hybrid-vsock` and `vsock` (Kata: 1024).
    pub port: Option<u32>,
    /// Guest CID for `vsock`.
    pub cid: Option<u32>,
    /// Keep retrying for this long before giving up.
    pub timeout_ms: u32,
}

/// The transport address for dial options; invalid options get `code` (the caller's concern).
pub(crate) fn address(o: &AgentDialOptions, code: &'static str) -> Result<Address> {
    let need = |what: &str| coded(code, format!("dial kind {:?} needs {what}", o.kind));
    let path = || {
        o.path
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| need("path"))
    };
    match o.kind.as_str() {
        "unix" => Ok(Address::Unix { path: path()? }),
        "hybrid-vsock" => Ok(Address::HybridVsock {
            path: path()?,
            port: o.port.ok_or_else(|| need("port"))?,
        }),
        "vsock" => Ok(Address::Vsock {
            cid: o.cid.ok_or_else(|| need("cid"))?,
            port: o.port.ok_or_else(|| need("port"))?,
        }),
        other => Err(coded(
            code,
            format!("unknown dial kind {other:?} (unix, hybrid-vsock, vsock)"),
        )),
    }
}

/// One ttrpc connection to the agent. Like a socket it must be closed; dropping it (or the
/// environment going away) closes it too.
#[napi]
#[derive(Debug)]
pub struct AgentConnection {
    client: Arc<Client>,
    address: String,
}

/// Dials the agent, retrying until `timeoutMs`, and starts a ttrpc client on the stream.
#[napi]
pub async fn dial_agent(options: AgentDialOptions) -> napi::Result<AgentConnection> {
    guard_async(async move {
        let addr = address(&options, "TRANSPORT_INVALID")?;
        let stream = transport::dial(&addr, Duration::from_millis(u64::from(options.timeout_ms)))
            .await
            .map_err(dial_error)?;
        Ok(AgentConnection {
            client: Arc::new(Client::new(stream)),
            address: addr.to_string(),
        })
    })
    .await
}

#[napi]
impl AgentConnection {
    /// Calls `service/method` with an encoded request; resolves with the encoded response.
    /// `timeoutMs` is sent as `timeout_nano` and enforced locally; 0 waits forever. The request
    /// is written from this (the JS) thread when the connection is free and the reply settles
    /// the promise straight from the connection's reader: no task is woken to make the call.
    /// Rejections carry their code as the message prefix `CODE: `, as async exports do.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn call<'e>(
        &self,
        env: &'e Env,
        service: String,
        method: String,
        payload: &[u8],
        timeout_ms: u32,
    ) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred::<Buffer, _>()?;
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
        let deliver: Delivery = Box::new(move |result| match result {
            Ok(bytes) => deferred.resolve(move |_| Ok(Buffer::from(bytes))),
            Err(e) => {
                let e = call_error(e);
                deferred.reject(napi::Error::from_reason(format!(
                    "{}: {}",
                    e.status.0, e.reason
                )));
            }
        });
        let client = self.client.clone();
        let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.start_call(&service, &method, payload, timeout, deliver);
        }));
        if started.is_err() {
            return Err(napi::Error::from_reason(format!(
                "PANIC: native panic in {service}/{method} call"
            )));
        }
        Ok(promise)
    }

    /// Closes the connection; pending calls reject with TRANSPORT_CLOSED. Idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.client.close();
    }

    /// True once closed or lost.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Calls waiting for a response.
    #[napi(getter)]
    pub fn pending(&self) -> u32 {
        u32::try_from(self.client.pending()).unwrap_or(u32::MAX)
    }

    /// Starts a live sync that sends its CopyFile requests on this connection (virtio-serial
    /// allows one host connection per VM); closing the sync leaves the connection open.
    #[napi(ts_args_type = "options: VolumeSyncOptions, callback: (event: VolumeSyncEvent) => void")]
    pub async fn start_volume_sync(
        &self,
        options: crate::watch::VolumeSyncOptions,
        callback: crate::watch::SyncCallback,
    ) -> napi::Result<crate::watch::VolumeSync> {
        crate::watch::start(options, callback, Some(self.client.clone())).await
    }

    /// The dialed address, e.g. `hvsock:///run/kata/<sid>/root/kata.hvsock:1024`.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }
}
