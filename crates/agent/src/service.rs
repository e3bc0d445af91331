//! `grpc.AgentService` and `grpc.Health` on top of [`Sandbox`] and [`copy_file`]; with
//! `--guest`, the calls that act on the guest go to `service_guest.rs` ([`GuestSandbox`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;
use protobuf::MessageFull;
use tokio::sync::Mutex;
use ttrpc::r#async::TtrpcContext;
use ttrpc::{Code, Error as TtrpcError};

use crate::copy_file::{copy_file, CopyFileError};
use crate::guest::storage::STORAGE_DRIVERS;
use crate::guest::{process_io, reaper, GuestConfig, GuestSandbox};
use crate::protocols::{agent, agent_ttrpc, health, health_ttrpc};
use crate::record::Recorder;
use crate::state::{Sandbox, StateError, Stream};

/// Agent version reported by Health/Version and GetGuestDetails.
pub const AGENT_VERSION: &str = concat!("kata-ts-agent ", env!("CARGO_PKG_VERSION"));

/// What carries the requests out.
#[derive(Debug)]
pub enum Backend {
    /// The default: [`Sandbox`] models processes and nothing is mounted.
    Modelled,
    /// `--guest`: real mounts, namespaces and processes.
    Guest(Arc<GuestSandbox>),
}

/// The service state shared by every connection.
#[derive(Debug)]
pub struct Agent {
    root: PathBuf,
    pub(crate) sandbox: Arc<Mutex<Sandbox>>,
    recorder: Option<Recorder>,
    delays: HashMap<String, Duration>,
    backend: Backend,
}

pub(crate) fn status(code: Code, msg: impl Into<String>) -> TtrpcError {
    TtrpcError::RpcStatus(ttrpc::get_status(code, msg.into()))
}

pub(crate) fn state_err(e: StateError) -> TtrpcError {
    // Codes as in the Kata agent's `sandbox_err_to_ttrpc`; the rest are INTERNAL there.
    let code = match e {
        StateError::InvalidContainerId(_) => Code::INVALID_ARGUMENT,
        StateError::InvalidExecId { .. } => Code::NOT_FOUND,
        StateError::AlreadyExists { .. } => Code::ALREADY_EXISTS,
        StateError::Precondition(_) => Code::FAILED_PRECONDITION,
    };
    status(code, e.to_string())
}

fn copy_err(e: CopyFileError) -> TtrpcError {
    let code = if e.is_invalid_argument() {
        Code::INVALID_ARGUMENT
    } else {
        Code::INTERNAL
    };
    status(code, e.to_string())
}

impl Agent {
    pub fn new(
        root: PathBuf,
        recorder: Option<Recorder>,
        delays: HashMap<String, Duration>,
    ) -> Self {
        Agent {
            root,
            sandbox: Arc::new(Mutex::new(Sandbox::default())),
            recorder,
            delays,
            backend: Backend::Modelled,
        }
    }

    /// Switches to guest mode: starts the child reaper and the exit recorder (needs the
    /// tokio runtime).
    pub fn into_guest(mut self, cfg: GuestConfig) -> std::io::Result<Self> {
        let guest = Arc::new(GuestSandbox::new(cfg));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        reaper::start(guest.table(), tx)?;
        process_io::record_exits(self.sandbox.clone(), rx);
        self.backend = Backend::Guest(guest);
        Ok(self)
    }

    pub(crate) fn guest(&self) -> Option<&Arc<GuestSandbox>> {
        match &self.backend {
            Backend::Guest(g) => Some(g),
            Backend::Modelled => None,
        }
    }

    /// Records the call, then waits the configured test delay for `method`.
    async fn enter<M: MessageFull>(&self, ctx: &TtrpcContext, method: &str, req: &M) {
        if let Some(r) = &self.recorder {
            r.record(method, ctx.timeout_nano, req);
        }
        if let Some(d) = self.delays.get(method) {
            tokio::time::sleep(*d).await;
        }
    }

    /// Reads container output, waiting while the process runs and has written nothing.
    async fn read(
        &self,
        req: &agent::ReadStreamRequest,
        stream: Stream,
    ) -> ttrpc::Result<agent::ReadStreamResponse> {
        let len = usize::try_from(req.len).unwrap_or(usize::MAX);
        loop {
            let mut changed = {
                let mut sb = self.sandbox.lock().await;
                let got = sb
                    .read(&req.container_id, &req.exec_id, stream, len)
                    .map_err(state_err)?;
                if let Some(data) = got {
                    return Ok(agent::ReadStreamResponse {
                        data,
                        ..Default::default()
                    });
                }
                sb.changed.subscribe()
            };
            if changed.changed().await.is_err() {
                return Err(status(Code::UNAVAILABLE, "agent shutting down"));
            }
        }
    }
}

#[async_trait]
impl agent_ttrpc::AgentService for Agent {
    async fn create_sandbox(
        &self,
        ctx: &TtrpcContext,
        req: agent::CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CreateSandbox", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_create_sandbox(g, req).await;
        }
        self.sandbox
            .lock()
            .await
            .create_sandbox(&req.sandbox_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn destroy_sandbox(
        &self,
        ctx: &TtrpcContext,
        req: agent::DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "DestroySandbox", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_destroy_sandbox(g).await;
        }
        self.sandbox.lock().await.destroy_sandbox();
        Ok(Empty::new())
    }

    async fn create_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CreateContainer", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_create_container(g, req).await;
        }
        self.sandbox
            .lock()
            .await
            .create_container(&req.container_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn start_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "StartContainer", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_start_container(g, &req.container_id).await;
        }
        self.sandbox
            .lock()
            .await
            .start_container(&req.container_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn remove_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "RemoveContainer", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_remove_container(g, &req).await;
        }
        self.sandbox
            .lock()
            .await
            .remove_container(&req.container_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn exec_process(
        &self,
        ctx: &TtrpcContext,
        req: agent::ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "ExecProcess", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_exec_process(g, req).await;
        }
        self.sandbox
            .lock()
            .await
            .exec_process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn signal_process(
        &self,
        ctx: &TtrpcContext,
        req: agent::SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "SignalProcess", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_signal_process(g, &req).await;
        }
        self.sandbox
            .lock()
            .await
            .signal(&req.container_id, &req.exec_id, req.signal)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn wait_process(
        &self,
        ctx: &TtrpcContext,
        req: agent::WaitProcessRequest,
    ) -> ttrpc::Result<agent::WaitProcessResponse> {
        self.enter(ctx, "WaitProcess", &req).await;
        loop {
            let mut changed = {
                let mut sb = self.sandbox.lock().await;
                let p = sb
                    .process(&req.container_id, &req.exec_id)
                    .map_err(state_err)?;
                if let Some(s) = p.exit_status {
                    return Ok(agent::WaitProcessResponse {
                        status: s,
                        ..Default::default()
                    });
                }
                sb.changed.subscribe()
            };
            if changed.changed().await.is_err() {
                return Err(status(Code::UNAVAILABLE, "agent shutting down"));
            }
        }
    }

    async fn update_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "UpdateContainer", &req).await;
        self.sandbox
            .lock()
            .await
            .container(&req.container_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn update_ephemeral_mounts(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "UpdateEphemeralMounts", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_update_ephemeral_mounts(g, req).await;
        }
        Ok(Empty::new())
    }

    async fn write_stdin(
        &self,
        ctx: &TtrpcContext,
        req: agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        self.enter(ctx, "WriteStdin", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_write_stdin(g, &req).await;
        }
        let n = self
            .sandbox
            .lock()
            .await
            .write_stdin(&req.container_id, &req.exec_id, &req.data)
            .map_err(state_err)?;
        Ok(agent::WriteStreamResponse {
            len: u32::try_from(n).unwrap_or(u32::MAX),
            ..Default::default()
        })
    }

    async fn read_stdout(
        &self,
        ctx: &TtrpcContext,
        req: agent::ReadStreamRequest,
    ) -> ttrpc::Result<agent::ReadStreamResponse> {
        self.enter(ctx, "ReadStdout", &req).await;
        self.read(&req, Stream::Stdout).await
    }

    async fn read_stderr(
        &self,
        ctx: &TtrpcContext,
        req: agent::ReadStreamRequest,
    ) -> ttrpc::Result<agent::ReadStreamResponse> {
        self.enter(ctx, "ReadStderr", &req).await;
        self.read(&req, Stream::Stderr).await
    }

    async fn close_stdin(
        &self,
        ctx: &TtrpcContext,
        req: agent::CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CloseStdin", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_close_stdin(g, &req).await;
        }
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn tty_win_resize(
        &self,
        ctx: &TtrpcContext,
        req: agent::TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "TtyWinResize", &req).await;
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn online_cpu_mem(
        &self,
        ctx: &TtrpcContext,
        req: agent::OnlineCPUMemRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "OnlineCPUMem", &req).await;
        if let Some(g) = self.guest() {
            return self.guest_online_cpu_mem(g, &req).await;
        }
        Ok(Empty::new())
    }

    async fn get_guest_details(
        &self,
        ctx: &TtrpcContext,
        req: agent::GuestDetailsRequest,
    ) -> ttrpc::Result<agent::GuestDetailsResponse> {
        self.enter(ctx, "GetGuestDetails", &req).await;
        let mem_block_size_bytes = if req.mem_block_size {
            mem_block_size()
        } else {
            0
        };
        let details = agent::AgentDetails {
            version: AGENT_VERSION.to_string(),
            init_daemon: std::process::id() == 1,
            storage_handlers: match self.backend {
                Backend::Guest(_) => STORAGE_DRIVERS.iter().map(|d| (*d).to_string()).collect(),
                Backend::Modelled => vec!["local".into(), "ephemeral".into()],
            },
            ..Default::default()
        };
        Ok(agent::GuestDetailsResponse {
            mem_block_size_bytes,
            agent_details: protobuf::MessageField::some(details),
            support_mem_hotplug_probe: false,
            ..Default::default()
        })
    }

    async fn copy_file(
        &self,
        ctx: &TtrpcContext,
        req: agent::CopyFileRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CopyFile", &req).await;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || copy_file(&root, &req))
            .await
            .map_err(|e| status(Code::INTERNAL, format!("copy task failed: {e}")))?
            .map_err(copy_err)?;
        Ok(Empty::new())
    }

    async fn get_oom_event(
        &self,
        ctx: &TtrpcContext,
        req: agent::GetOOMEventRequest,
    ) -> ttrpc::Result<agent::OOMEvent> {
        self.enter(ctx, "GetOOMEvent", &req).await;
        // Nothing here runs out of memory: like the real agent with no OOM, never answer.
        std::future::pending().await
    }

    async fn set_policy(
        &self,
        ctx: &TtrpcContext,
        req: agent::SetPolicyRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "SetPolicy", &req).await;
        Ok(Empty::new())
    }
}

/// Memory hotplug block size from sysfs (hex text), 0 when unknown.
fn mem_block_size() -> u64 {
    std::fs::read_to_string("/sys/devices/system/memory/block_size_bytes")
        .ok()
        .and_then(|t| u64::from_str_radix(t.trim(), 16).ok())
        .unwrap_or(0)
}

#[async_trait]
impl health_ttrpc::Health for Agent {
    async fn check(
        &self,
        ctx: &TtrpcContext,
        req: health::CheckRequest,
    ) -> ttrpc::Result<health::HealthCheckResponse> {
        self.enter(ctx, "Check", &req).await;
        Ok(health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::SERVING.into(),
            ..Default::default()
        })
    }

    async fn version(
        &self,
        ctx: &TtrpcContext,
        req: health::CheckRequest,
    ) -> ttrpc::Result<health::VersionCheckResponse> {
        self.enter(ctx, "Version", &req).await;
        Ok(health::VersionCheckResponse {
            grpc_version: "ttrpc-rust 0.10".to_string(),
            agent_version: AGENT_VERSION.to_string(),
            ..Default::default()
        })
    }
}

/// ttrpc service map for both services sharing one [`Agent`].
pub fn services(agent: Arc<Agent>) -> HashMap<String, ttrpc::r#async::Service> {
    let mut map = agent_ttrpc::create_agent_service(agent.clone());
    map.extend(health_ttrpc::create_health(agent));
    map
}
