//! The RPCs whose guest mode (`--guest`) differs from the model: each does the real work with
//! [`GuestSandbox`] (blocking parts on the blocking pool) and keeps [`crate::state::Sandbox`]'s
//! bookkeeping, which ReadStdout/ReadStderr/WaitProcess serve unchanged.

use std::sync::Arc;
use std::time::Duration;

use protobuf::well_known_types::empty::Empty;
use tokio::io::AsyncWriteExt;
use ttrpc::Code;

use crate::guest::error::GuestError;
use crate::guest::{power_off, process_io, GuestSandbox};
use crate::protocols::agent;
use crate::service::{state_err, status, Agent};
use crate::state::{StateError, Stream};

/// Delay between DestroySandbox's reply and the power-off, so the reply leaves first.
const POWER_OFF_DELAY: Duration = Duration::from_millis(200);

fn guest_err(e: GuestError) -> ttrpc::Error {
    status(e.code(), e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GuestError> + Send + 'static,
) -> ttrpc::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| status(Code::INTERNAL, format!("guest task failed: {e}")))?
        .map_err(guest_err)
}

impl Agent {
    pub(crate) async fn guest_create_sandbox(
        &self,
        g: &Arc<GuestSandbox>,
        req: agent::CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        if self.sandbox.lock().await.id.is_some() {
            return Err(state_err(StateError::Precondition(
                "sandbox already created".into(),
            )));
        }
        let (g, r) = (g.clone(), req.clone());
        blocking(move || g.create_sandbox(&r)).await?;
        self.sandbox
            .lock()
            .await
            .create_sandbox(&req.sandbox_id)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    pub(crate) async fn guest_destroy_sandbox(
        &self,
        g: &Arc<GuestSandbox>,
    ) -> ttrpc::Result<Empty> {
        let g2 = g.clone();
        let result = blocking(move || g2.destroy_sandbox()).await;
        self.sandbox.lock().await.destroy_sandbox();
        if g.poweroff_on_destroy() {
            tokio::spawn(async {
                tokio::time::sleep(POWER_OFF_DELAY).await;
                let _ = tokio::task::spawn_blocking(power_off).await;
            });
        }
        result.map(|()| Empty::new())
    }

    pub(crate) async fn guest_create_container(
        &self,
        g: &Arc<GuestSandbox>,
        req: agent::CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let cid = req.container_id.clone();
        self.sandbox
            .lock()
            .await
            .create_container(&cid)
            .map_err(state_err)?;
        let g = g.clone();
        if let Err(e) = blocking(move || g.create_container(&req)).await {
            let _ = self.sandbox.lock().await.remove_container(&cid);
            return Err(e);
        }
        Ok(Empty::new())
    }

    pub(crate) async fn guest_start_container(
        &self,
        g: &Arc<GuestSandbox>,
        cid: &str,
    ) -> ttrpc::Result<Empty> {
        {
            let mut sb = self.sandbox.lock().await;
            if sb.container(cid).map_err(state_err)?.started {
                return Err(state_err(StateError::Precondition(format!(
                    "container {cid} already started"
                ))));
            }
            // Before the spawn, so an early exit is never mistaken for the end of output.
            sb.attach_pipes(cid, "").map_err(state_err)?;
        }
        let (g2, c) = (g.clone(), cid.to_string());
        self.run_started(g, cid, "", blocking(move || g2.start_container(&c)).await)
            .await?;
        self.sandbox
            .lock()
            .await
            .start_container(cid)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    pub(crate) async fn guest_exec_process(
        &self,
        g: &Arc<GuestSandbox>,
        req: agent::ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        let (cid, eid) = (req.container_id.clone(), req.exec_id.clone());
        {
            let mut sb = self.sandbox.lock().await;
            sb.exec_process(&cid, &eid).map_err(state_err)?;
            sb.attach_pipes(&cid, &eid).map_err(state_err)?;
        }
        let process = req.process.as_ref().cloned().unwrap_or_default();
        let (g2, c, e) = (g.clone(), cid.clone(), eid.clone());
        let spawned = blocking(move || g2.exec_process(&c, &e, &process)).await;
        if spawned.is_err() {
            self.sandbox.lock().await.remove_process(&cid, &eid);
        }
        self.run_started(g, &cid, &eid, spawned).await?;
        Ok(Empty::new())
    }

    /// Wires a spawn's pipes up, or ends the process's streams when it did not start.
    async fn run_started(
        &self,
        g: &Arc<GuestSandbox>,
        cid: &str,
        eid: &str,
        spawned: ttrpc::Result<crate::guest::spawn::Spawned>,
    ) -> ttrpc::Result<()> {
        match spawned {
            Ok(sp) => process_io::attach(&self.sandbox, g, cid, eid, sp)
                .map_err(|e| status(Code::INTERNAL, format!("attach stdio of {cid}/{eid}: {e}"))),
            Err(e) => {
                let mut sb = self.sandbox.lock().await;
                sb.close_output(cid, eid, Stream::Stdout);
                sb.close_output(cid, eid, Stream::Stderr);
                Err(e)
            }
        }
    }

    pub(crate) async fn guest_signal_process(
        &self,
        g: &Arc<GuestSandbox>,
        req: &agent::SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        {
            let mut sb = self.sandbox.lock().await;
            if sb
                .process(&req.container_id, &req.exec_id)
                .map_err(state_err)?
                .exit_status
                .is_some()
            {
                return Ok(Empty::new());
            }
        }
        g.signal(&req.container_id, &req.exec_id, req.signal)
            .map_err(guest_err)?;
        Ok(Empty::new())
    }

    pub(crate) async fn guest_write_stdin(
        &self,
        g: &Arc<GuestSandbox>,
        req: &agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        let pipe = g.stdin(&req.container_id, &req.exec_id).ok_or_else(|| {
            status(
                Code::FAILED_PRECONDITION,
                format!("stdin of {}/{} is closed", req.container_id, req.exec_id),
            )
        })?;
        pipe.lock()
            .await
            .write_all(&req.data)
            .await
            .map_err(|e| status(Code::INTERNAL, format!("write stdin: {e}")))?;
        Ok(agent::WriteStreamResponse {
            len: u32::try_from(req.data.len()).unwrap_or(u32::MAX),
            ..Default::default()
        })
    }

    pub(crate) async fn guest_close_stdin(
        &self,
        g: &Arc<GuestSandbox>,
        req: &agent::CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        g.close_stdin(&req.container_id, &req.exec_id);
        Ok(Empty::new())
    }

    pub(crate) async fn guest_remove_container(
        &self,
        g: &Arc<GuestSandbox>,
        req: &agent::RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        self.sandbox
            .lock()
            .await
            .container(&req.container_id)
            .map_err(state_err)?;
        let (g, cid, t) = (g.clone(), req.container_id.clone(), req.timeout);
        let result = blocking(move || g.remove_container(&cid, t)).await;
        let _ = self
            .sandbox
            .lock()
            .await
            .remove_container(&req.container_id);
        result.map(|()| Empty::new())
    }

    /// On SIGTERM/SIGINT in guest mode: kill the containers and unmount, as DestroySandbox
    /// would (without powering off), so a stopped agent leaves nothing running.
    pub async fn shutdown(&self) {
        if let Some(g) = self.guest() {
            let g = g.clone();
            if let Err(e) = blocking(move || g.destroy_sandbox()).await {
                eprintln!("kata-ts-agent: cleanup on shutdown: {e}");
            }
        }
    }

    pub(crate) async fn guest_update_ephemeral_mounts(
        &self,
        g: &Arc<GuestSandbox>,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        let g = g.clone();
        blocking(move || g.update_ephemeral_mounts(&req.storages)).await?;
        Ok(Empty::new())
    }

    pub(crate) async fn guest_online_cpu_mem(
        &self,
        g: &Arc<GuestSandbox>,
        req: &agent::OnlineCPUMemRequest,
    ) -> ttrpc::Result<Empty> {
        let (g, wait, nb, cpu_only) = (g.clone(), req.wait, req.nb_cpus, req.cpu_only);
        blocking(move || g.online_cpu_mem(wait, nb, cpu_only)).await?;
        Ok(Empty::new())
    }
}
