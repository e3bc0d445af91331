//! `--guest`: each RPC does the real work with [`GuestSandbox`] (blocking parts on the blocking
//! pool) and keeps [`Sandbox`]'s bookkeeping, which ReadStdout/ReadStderr/WaitProcess serve
//! unchanged. What is not carried out in the guest answers UNIMPLEMENTED.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use ttrpc::Code;

use super::Backend;
use crate::guest::error::GuestError;
use crate::guest::storage::STORAGE_DRIVERS;
use crate::guest::{power_off, process_io, reaper, GuestConfig, GuestSandbox};
use crate::protocols::agent;
use crate::rpc_status::{guest_err, state_err, status, unimplemented};
use crate::state::{Sandbox, StateError, Stream};

/// Delay between DestroySandbox's reply and the power-off, so the reply leaves first.
const POWER_OFF_DELAY: Duration = Duration::from_millis(200);

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GuestError> + Send + 'static,
) -> ttrpc::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| status(Code::INTERNAL, format!("guest task failed: {e}")))?
        .map_err(guest_err)
}

/// The real sandbox and the bookkeeping the stream RPCs read.
#[derive(Debug)]
pub struct GuestBackend {
    sandbox: Arc<Mutex<Sandbox>>,
    guest: Arc<GuestSandbox>,
    /// Container ids from the OOM watchers, one per GetOOMEvent answer.
    ooms: Mutex<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

impl GuestBackend {
    /// Starts the child reaper and the exit recorder (needs the tokio runtime).
    pub fn start(sandbox: Arc<Mutex<Sandbox>>, cfg: GuestConfig) -> std::io::Result<Self> {
        let (oom_tx, ooms) = tokio::sync::mpsc::unbounded_channel();
        let guest = Arc::new(GuestSandbox::new(cfg, oom_tx));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        reaper::start(guest.table(), tx)?;
        process_io::record_exits(sandbox.clone(), rx);
        Ok(GuestBackend {
            sandbox,
            guest,
            ooms: Mutex::new(ooms),
        })
    }

    /// Wires a spawn's pipes up, or ends the process's streams when it did not start.
    async fn run_started(
        &self,
        cid: &str,
        eid: &str,
        spawned: ttrpc::Result<crate::guest::spawn::Spawned>,
    ) -> ttrpc::Result<()> {
        match spawned {
            Ok(sp) => process_io::attach(&self.sandbox, &self.guest, cid, eid, sp)
                .map_err(|e| status(Code::INTERNAL, format!("attach stdio of {cid}/{eid}: {e}"))),
            Err(e) => {
                let mut sb = self.sandbox.lock().await;
                sb.close_output(cid, eid, Stream::Stdout);
                sb.close_output(cid, eid, Stream::Stderr);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Backend for GuestBackend {
    fn storage_handlers(&self) -> Vec<String> {
        STORAGE_DRIVERS.iter().map(|d| (*d).to_string()).collect()
    }

    async fn create_sandbox(&self, req: agent::CreateSandboxRequest) -> ttrpc::Result<Empty> {
        if self.sandbox.lock().await.id.is_some() {
            return Err(state_err(StateError::Precondition(
                "sandbox already created".into(),
            )));
        }
        let (g, r) = (self.guest.clone(), req.clone());
        blocking(move || g.create_sandbox(&r)).await?;
        let mut sb = self.sandbox.lock().await;
        sb.create_sandbox(&req.sandbox_id).map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn destroy_sandbox(&self) -> ttrpc::Result<Empty> {
        let g = self.guest.clone();
        let result = blocking(move || g.destroy_sandbox()).await;
        self.sandbox.lock().await.destroy_sandbox();
        if self.guest.poweroff_on_destroy() {
            tokio::spawn(async {
                tokio::time::sleep(POWER_OFF_DELAY).await;
                let _ = tokio::task::spawn_blocking(power_off).await;
            });
        }
        result.map(|()| Empty::new())
    }

    async fn create_container(&self, req: agent::CreateContainerRequest) -> ttrpc::Result<Empty> {
        let cid = req.container_id.clone();
        self.sandbox
            .lock()
            .await
            .create_container(&cid)
            .map_err(state_err)?;
        let g = self.guest.clone();
        if let Err(e) = blocking(move || g.create_container(&req)).await {
            let _ = self.sandbox.lock().await.remove_container(&cid);
            return Err(e);
        }
        Ok(Empty::new())
    }

    async fn start_container(&self, req: &agent::StartContainerRequest) -> ttrpc::Result<Empty> {
        let cid = req.container_id.as_str();
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
        let (g, c) = (self.guest.clone(), cid.to_string());
        self.run_started(cid, "", blocking(move || g.start_container(&c)).await)
            .await?;
        self.sandbox
            .lock()
            .await
            .start_container(cid)
            .map_err(state_err)?;
        Ok(Empty::new())
    }

    async fn remove_container(&self, req: &agent::RemoveContainerRequest) -> ttrpc::Result<Empty> {
        self.sandbox
            .lock()
            .await
            .container(&req.container_id)
            .map_err(state_err)?;
        let (g, cid, t) = (self.guest.clone(), req.container_id.clone(), req.timeout);
        let result = blocking(move || g.remove_container(&cid, t)).await;
        let _ = self
            .sandbox
            .lock()
            .await
            .remove_container(&req.container_id);
        result.map(|()| Empty::new())
    }

    async fn exec_process(&self, req: agent::ExecProcessRequest) -> ttrpc::Result<Empty> {
        let (cid, eid) = (req.container_id.clone(), req.exec_id.clone());
        {
            let mut sb = self.sandbox.lock().await;
            sb.exec_process(&cid, &eid).map_err(state_err)?;
            sb.attach_pipes(&cid, &eid).map_err(state_err)?;
        }
        let process = req.process.as_ref().cloned().unwrap_or_default();
        let (g, c, e) = (self.guest.clone(), cid.clone(), eid.clone());
        let spawned = blocking(move || g.exec_process(&c, &e, &process)).await;
        if spawned.is_err() {
            self.sandbox.lock().await.remove_process(&cid, &eid);
        }
        self.run_started(&cid, &eid, spawned).await?;
        Ok(Empty::new())
    }

    async fn signal_process(&self, req: &agent::SignalProcessRequest) -> ttrpc::Result<Empty> {
        {
            let mut sb = self.sandbox.lock().await;
            let p = sb
                .process(&req.container_id, &req.exec_id)
                .map_err(state_err)?;
            if p.exit_status.is_some() {
                // Already gone: the signal has nothing to reach, as with the Kata agent.
                return Ok(Empty::new());
            }
        }
        self.guest
            .signal(&req.container_id, &req.exec_id, req.signal)
            .map_err(guest_err)?;
        Ok(Empty::new())
    }

    async fn update_container(&self, req: &agent::UpdateContainerRequest) -> ttrpc::Result<Empty> {
        self.sandbox
            .lock()
            .await
            .container(&req.container_id)
            .map_err(state_err)?;
        // No resources: nothing to change (the Kata agent answers OK too), if there is a cgroup.
        let resources = req.resources.as_ref().cloned();
        let (g, cid) = (self.guest.clone(), req.container_id.clone());
        blocking(move || g.update_container(&cid, resources.as_ref())).await?;
        Ok(Empty::new())
    }

    async fn stats_container(
        &self,
        req: &agent::StatsContainerRequest,
    ) -> ttrpc::Result<agent::StatsContainerResponse> {
        self.sandbox
            .lock()
            .await
            .container(&req.container_id)
            .map_err(state_err)?;
        let (g, cid) = (self.guest.clone(), req.container_id.clone());
        blocking(move || g.stats_container(&cid)).await
    }

    async fn oom_event(&self) -> ttrpc::Result<String> {
        match self.ooms.lock().await.recv().await {
            Some(cid) => Ok(cid),
            None => Err(status(Code::UNAVAILABLE, "agent shutting down")),
        }
    }

    async fn update_ephemeral_mounts(
        &self,
        req: agent::UpdateEphemeralMountsRequest,
    ) -> ttrpc::Result<Empty> {
        let g = self.guest.clone();
        blocking(move || g.update_ephemeral_mounts(&req.storages)).await?;
        Ok(Empty::new())
    }

    async fn write_stdin(
        &self,
        req: &agent::WriteStreamRequest,
    ) -> ttrpc::Result<agent::WriteStreamResponse> {
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        let pipe = self
            .guest
            .stdin(&req.container_id, &req.exec_id)
            .ok_or_else(|| {
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

    async fn close_stdin(&self, req: &agent::CloseStdinRequest) -> ttrpc::Result<Empty> {
        self.sandbox
            .lock()
            .await
            .process(&req.container_id, &req.exec_id)
            .map_err(state_err)?;
        self.guest.close_stdin(&req.container_id, &req.exec_id);
        Ok(Empty::new())
    }

    async fn tty_win_resize(&self, req: &agent::TtyWinResizeRequest) -> ttrpc::Result<Empty> {
        crate::guest::tty::resize(&req.container_id, &req.exec_id, req.row, req.column)
            .map_err(guest_err)?;
        Ok(Empty::new())
    }

    async fn online_cpu_mem(&self, req: &agent::OnlineCPUMemRequest) -> ttrpc::Result<Empty> {
        let (g, wait, nb, cpu_only) = (self.guest.clone(), req.wait, req.nb_cpus, req.cpu_only);
        blocking(move || g.online_cpu_mem(wait, nb, cpu_only)).await?;
        Ok(Empty::new())
    }

    async fn set_policy(&self, _req: &agent::SetPolicyRequest) -> ttrpc::Result<Empty> {
        // No policy engine: accepting a policy that is not enforced would be a false OK.
        Err(unimplemented("SetPolicy", "guest"))
    }

    async fn update_interface(
        &self,
        req: &agent::UpdateInterfaceRequest,
    ) -> ttrpc::Result<crate::protocols::types::Interface> {
        crate::guest::network::update_interface(&req.interface)
            .await
            .map_err(network_err)
    }

    async fn update_routes(
        &self,
        req: &agent::UpdateRoutesRequest,
    ) -> ttrpc::Result<agent::Routes> {
        let routes = crate::guest::network::update_routes(&req.routes.Routes)
            .await
            .map_err(network_err)?;
        Ok(agent::Routes {
            Routes: routes,
            ..Default::default()
        })
    }

    async fn add_arp_neighbors(&self, req: &agent::AddARPNeighborsRequest) -> ttrpc::Result<Empty> {
        crate::guest::network::add_arp_neighbors(&req.neighbors.ARPNeighbors)
            .await
            .map_err(network_err)?;
        Ok(Empty::new())
    }

    async fn shutdown(&self) {
        // Kill the containers and unmount, as DestroySandbox would (without powering off).
        let g = self.guest.clone();
        if let Err(e) = blocking(move || g.destroy_sandbox()).await {
            eprintln!("kata-ts-agent: cleanup on shutdown: {e}");
        }
    }
}

/// Pod networking errors: a bad request is INVALID_ARGUMENT, a missing NIC NOT_FOUND, else INTERNAL.
fn network_err(e: crate::guest::network::NetworkError) -> ttrpc::Error {
    use crate::guest::network::NetworkError as E;
    let code = match &e {
        E::Invalid { .. } => ttrpc::Code::INVALID_ARGUMENT,
        E::NoSuchInterface { .. } | E::NoSuchDevice { .. } => ttrpc::Code::NOT_FOUND,
        E::Netlink { .. } | E::Socket(_) => ttrpc::Code::INTERNAL,
    };
    crate::rpc_status::status(code, e.to_string())
}
