//! The default backend: [`Sandbox`] models containers and processes and nothing runs. It is the
//! host side's test peer: calls are validated and recorded as the Kata agent would see them.

use std::sync::Arc;

use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;
use tokio::sync::Mutex;

use super::Backend;
use crate::protocols::agent;
use crate::rpc_status::{state_err, unimplemented};
use crate::state::Sandbox;

/// Requests applied to the modelled sandbox.
#[derive(Debug)]
pub struct ModelBackend {
    sandbox: Arc<Mutex<Sandbox>>,
}

impl ModelBackend {
    pub fn new(sandbox: Arc<Mutex<Sandbox>>) -> Self {
        ModelBackend { sandbox }
    }
}

#[async_trait]
impl Backend for ModelBackend {
    fn storage_handlers(&self) -> Vec<String> {
        vec!["local".into(), "ephemeral".into()]
    }

    async fn create_sandbox(&self, req: agent::CreateSandboxRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.create_sandbox(&req.sandbox_id).map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn destroy_sandbox(&self) -> ttrpc::Result<Empty> {
        self.sandbox.lock().await.destroy_sandbox();
        Ok(Empty::new())
    }

    async fn create_container(&self, req: agent::CreateContainerRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.create_container(&req.container_id).map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn start_container(&self, req: &agent::StartContainerRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.start_container(&req.container_id).map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn remove_container(&self, req: &agent::RemoveContainerRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.remove_container(&req.container_id).map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn exec_process(&self, req: agent::ExecProcessRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.exec_process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn signal_process(&self, req: &agent::SignalProcessRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.signal(&req.container_id, &req.exec_id, req.signal)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn update_container(&self, req: &agent::UpdateContainerRequest) -> ttrpc::Result<Empty> {
        // The model has no cgroups: an unknown container is still named, but nothing is
        // applied, so the answer is UNIMPLEMENTED rather than a false OK.
        let mut sb = self.sandbox.lock().await;
        sb.container(&req.container_id).map_err(state_err)?;
        Err(unimplemented("UpdateContainer", "modelled"))
    }

    async fn stats_container(
        &self,
        req: &agent::StatsContainerRequest,
    ) -> ttrpc::Result<agent::StatsContainerResponse> {
        let mut sb = self.sandbox.lock().await;
        sb.container(&req.container_id).map_err(state_err)?;
        Err(unimplemented("StatsContainer", "modelled"))
    }

    async fn oom_event(&self) -> ttrpc::Result<String> {
        // Nothing runs, so nothing is OOM-killed: never answer, as the Kata agent without OOMs.
        std::future::pending().await
    }

    async fn update_ephemeral_mounts(
        &self,
        _req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        Ok(Empty::new())
    }

    async fn write_stdin(
        &self,
        req: &agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        let mut sb = self.sandbox.lock().await;
        let n = sb
            .write_stdin(&req.container_id, &req.exec_id, &req.data)
            .map_err(state_err)?;
        Ok(agent::WriteStreamResponse {
            len: u32::try_from(n).unwrap_or(u32::MAX),
            ..Default::default()
        })
    }

    async fn close_stdin(&self, req: &agent::CloseStdinRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn tty_win_resize(&self, req: &agent::TtyWinResizeRequest) -> ttrpc::Result<Empty> {
        let mut sb = self.sandbox.lock().await;
        sb.process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn online_cpu_mem(&self, _req: &agent::OnlineCPUMemRequest) -> ttrpc::Result<Empty> {
        Ok(Empty::new())
    }

    async fn set_policy(&self, _req: &agent::SetPolicyRequest) -> ttrpc::Result<Empty> {
        // No policy engine: accepting a policy that is not enforced would be a false OK.
        Err(unimplemented("SetPolicy", "modelled"))
    }

    async fn shutdown(&self) {}
}
