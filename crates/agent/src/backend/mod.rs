//! What carries the sandbox RPCs out: [`model::ModelBackend`] (the default: processes are
//! modelled, nothing is mounted) or [`guest::GuestBackend`] (`--guest`: real mounts, namespaces
//! and processes). ReadStdout/ReadStderr/WaitProcess, GetGuestDetails and CopyFile are the same
//! for both and stay in `service.rs`.

pub mod guest;
pub mod model;

use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;

use crate::protocols::agent;

/// The RPCs whose work depends on the mode.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Storage drivers GetGuestDetails reports.
    fn storage_handlers(&self) -> Vec<String>;
    async fn create_sandbox(&self, req: agent::CreateSandboxRequest) -> ttrpc::Result<Empty>;
    async fn destroy_sandbox(&self) -> ttrpc::Result<Empty>;
    async fn create_container(&self, req: agent::CreateContainerRequest) -> ttrpc::Result<Empty>;
    async fn start_container(&self, req: &agent::StartContainerRequest) -> ttrpc::Result<Empty>;
    async fn remove_container(&self, req: &agent::RemoveContainerRequest) -> ttrpc::Result<Empty>;
    async fn exec_process(&self, req: agent::ExecProcessRequest) -> ttrpc::Result<Empty>;
    async fn signal_process(&self, req: &agent::SignalProcessRequest) -> ttrpc::Result<Empty>;
    async fn update_container(&self, req: &agent::UpdateContainerRequest) -> ttrpc::Result<Empty>;
    async fn stats_container(
        &self,
        req: &agent::StatsContainerRequest,
    ) -> ttrpc::Result<agent::StatsContainerResponse>;
    /// The next container OOM-killed; pends while there is none (as the Kata agent does).
    async fn oom_event(&self) -> ttrpc::Result<String>;
    async fn update_ephemeral_mounts(
        &self,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty>;
    async fn write_stdin(
        &self,
        req: &agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse>;
    async fn close_stdin(&self, req: &agent::CloseStdinRequest) -> ttrpc::Result<Empty>;
    async fn tty_win_resize(&self, req: &agent::TtyWinResizeRequest) -> ttrpc::Result<Empty>;
    async fn online_cpu_mem(&self, req: &agent::OnlineCPUMemRequest) -> ttrpc::Result<Empty>;
    async fn set_policy(&self, req: &agent::SetPolicyRequest) -> ttrpc::Result<Empty>;
    /// Pod networking (guest only; the model backend must not touch the host's network).
    async fn update_interface(
        &self,
        _req: &agent::UpdateInterfaceRequest,
    ) -> ttrpc::Result<crate::protocols::types::Interface> {
        Err(crate::rpc_status::unimplemented("UpdateInterface", "model"))
    }
    async fn update_routes(
        &self,
        _req: &agent::UpdateRoutesRequest,
    ) -> ttrpc::Result<agent::Routes> {
        Err(crate::rpc_status::unimplemented("UpdateRoutes", "model"))
    }
    async fn add_arp_neighbors(
        &self,
        _req: &agent::AddARPNeighborsRequest,
    ) -> ttrpc::Result<Empty> {
        Err(crate::rpc_status::unimplemented("AddARPNeighbors", "model"))
    }
    /// On SIGTERM/SIGINT: leave nothing running.
    async fn shutdown(&self);
}
