//! `grpc.AgentService` and `grpc.Health`: the sandbox RPCs go to the [`Backend`] (modelled, or
//! the real guest with `--guest`); the stream reads, WaitProcess, GetGuestDetails and CopyFile
//! are the same in both modes and live here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;
use protobuf::MessageFull;
use tokio::sync::Mutex;
use ttrpc::r#async::TtrpcContext;
use ttrpc::Code;

use crate::backend::guest::GuestBackend;
use crate::backend::model::ModelBackend;
use crate::backend::Backend;
use crate::copy_file::CopyFiles;
use crate::guest::GuestConfig;
use crate::protocols::{agent, agent_ttrpc, health, health_ttrpc};
use crate::record::Recorder;
use crate::rpc_status::{copy_err, state_err, status};
use crate::state::{Sandbox, Stream};

/// Agent version reported by Health/Version and GetGuestDetails.
pub const AGENT_VERSION: &str = concat!("kata-ts-agent ", env!("CARGO_PKG_VERSION"));

/// The service state shared by every connection.
#[derive(Debug)]
pub struct Agent {
    sandbox: Arc<Mutex<Sandbox>>,
    copies: Arc<CopyFiles>,
    recorder: Option<Recorder>,
    delays: HashMap<String, Duration>,
    backend: Box<dyn Backend>,
}

impl Agent {
    /// A modelled agent writing CopyFile destinations under `root`.
    pub fn new(
        root: PathBuf,
        recorder: Option<Recorder>,
        delays: HashMap<String, Duration>,
    ) -> Self {
        let sandbox = Arc::new(Mutex::new(Sandbox::default()));
        Agent {
            backend: Box::new(ModelBackend::new(sandbox.clone())),
            sandbox,
            copies: Arc::new(CopyFiles::new(root)),
            recorder,
            delays,
        }
    }

    /// Switches to guest mode: starts the child reaper and the exit recorder (needs the
    /// tokio runtime).
    pub fn into_guest(mut self, cfg: GuestConfig) -> std::io::Result<Self> {
        self.backend = Box::new(GuestBackend::start(self.sandbox.clone(), cfg)?);
        Ok(self)
    }

    /// The CopyFile side (its streams are abandoned by the idle timer and on disconnect).
    pub fn copies(&self) -> Arc<CopyFiles> {
        self.copies.clone()
    }

    /// On SIGTERM/SIGINT: leave nothing running and no temp file behind.
    pub async fn shutdown(&self) {
        self.copies.streams().abandon_all();
        self.backend.shutdown().await;
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
        self.backend.create_sandbox(req).await
    }

    async fn create_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CreateContainer", &req).await;
        self.backend.create_container(req).await
    }

    async fn start_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "StartContainer", &req).await;
        self.backend.start_container(&req).await
    }

    async fn remove_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "RemoveContainer", &req).await;
        self.backend.remove_container(&req).await
    }

    async fn exec_process(
        &self,
        ctx: &TtrpcContext,
        req: agent::ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "ExecProcess", &req).await;
        self.backend.exec_process(req).await
    }

    async fn signal_process(
        &self,
        ctx: &TtrpcContext,
        req: agent::SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "SignalProcess", &req).await;
        self.backend.signal_process(&req).await
    }

    async fn update_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "UpdateContainer", &req).await;
        self.backend.update_container(&req).await
    }

    async fn stats_container(
        &self,
        ctx: &TtrpcContext,
        req: agent::StatsContainerRequest,
    ) -> ttrpc::Result<agent::StatsContainerResponse> {
        self.enter(ctx, "StatsContainer", &req).await;
        self.backend.stats_container(&req).await
    }

    async fn update_ephemeral_mounts(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "UpdateEphemeralMounts", &req).await;
        self.backend.update_ephemeral_mounts(req).await
    }

    async fn write_stdin(
        &self,
        ctx: &TtrpcContext,
        req: agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        self.enter(ctx, "WriteStdin", &req).await;
        self.backend.write_stdin(&req).await
    }

    async fn close_stdin(
        &self,
        ctx: &TtrpcContext,
        req: agent::CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "CloseStdin", &req).await;
        self.backend.close_stdin(&req).await
    }

    async fn tty_win_resize(
        &self,
        ctx: &TtrpcContext,
        req: agent::TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "TtyWinResize", &req).await;
        self.backend.tty_win_resize(&req).await
    }

    async fn online_cpu_mem(
        &self,
        ctx: &TtrpcContext,
        req: agent::OnlineCPUMemRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "OnlineCPUMem", &req).await;
        self.backend.online_cpu_mem(&req).await
    }

    async fn set_policy(
        &self,
        ctx: &TtrpcContext,
        req: agent::SetPolicyRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "SetPolicy", &req).await;
        self.backend.set_policy(&req).await
    }

    async fn destroy_sandbox(
        &self,
        ctx: &TtrpcContext,
        req: agent::DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "DestroySandbox", &req).await;
        // Unfinished copies end with the sandbox: their temp files go first.
        self.copies.streams().abandon_all();
        self.backend.destroy_sandbox().await
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
            storage_handlers: self.backend.storage_handlers(),
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
        let copies = self.copies.clone();
        tokio::task::spawn_blocking(move || copies.apply(&req))
            .await
            .map_err(|e| status(Code::INTERNAL, format!("copy task failed: {e}")))?
            .map_err(copy_err)?;
        Ok(Empty::new())
    }

    async fn update_interface(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateInterfaceRequest,
    ) -> ttrpc::Result<crate::protocols::types::Interface> {
        self.enter(ctx, "UpdateInterface", &req).await;
        self.backend.update_interface(&req).await
    }

    async fn update_routes(
        &self,
        ctx: &TtrpcContext,
        req: agent::UpdateRoutesRequest,
    ) -> ttrpc::Result<agent::Routes> {
        self.enter(ctx, "UpdateRoutes", &req).await;
        self.backend.update_routes(&req).await
    }

    async fn add_arp_neighbors(
        &self,
        ctx: &TtrpcContext,
        req: agent::AddARPNeighborsRequest,
    ) -> ttrpc::Result<Empty> {
        self.enter(ctx, "AddARPNeighbors", &req).await;
        self.backend.add_arp_neighbors(&req).await
    }

    async fn get_oom_event(
        &self,
        ctx: &TtrpcContext,
        req: agent::GetOOMEventRequest,
    ) -> ttrpc::Result<agent::OOMEvent> {
        self.enter(ctx, "GetOOMEvent", &req).await;
        // Pends until a container is OOM-killed, as the Kata agent does.
        let container_id = self.backend.oom_event().await?;
        Ok(agent::OOMEvent {
            container_id,
            ..Default::default()
        })
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
