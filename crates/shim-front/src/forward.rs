//! Forwards each request from containerd to the daemon, unchanged, and its answer back. When
//! the daemon goes away under a call, the call is sent again to the restarted daemon if
//! repeating it cannot do anything twice (reads, waits, the shutdown and registration of a
//! pod); any other call is answered UNAVAILABLE, never guessed.

use std::sync::Arc;
use std::time::Duration;

use transport::server::{Incoming, Reply};
use transport::wire::Status;
use transport::CallError;

use crate::supervisor::Supervisor;

/// google.rpc codes the front answers with itself.
const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;

/// How long a call waits for a (restarting) daemon: re-attaching to running VMs takes seconds.
const DAEMON_WAIT: Duration = Duration::from_secs(90);
/// Tries of a repeatable call across daemon restarts.
const ATTEMPTS: usize = 3;

/// Methods whose repetition after a lost answer is harmless.
fn repeatable(method: &str) -> bool {
    matches!(
        method,
        "State" | "Wait" | "Pids" | "Connect" | "Stats" | "Shutdown" | "Register" | "Release"
    )
}

fn status(code: i32, message: String) -> Status {
    Status { code, message }
}

async fn forward(supervisor: Arc<Supervisor>, req: Incoming) -> Reply {
    let timeout = u64::try_from(req.timeout_nano)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_nanos);
    for _ in 0..ATTEMPTS {
        let Some(client) = supervisor.client(DAEMON_WAIT).await else {
            break;
        };
        match client
            .call(&req.service, &req.method, &req.payload, timeout)
            .await
        {
            Ok(payload) => return Ok(payload),
            Err(CallError::Status { code, message, .. }) => return Err(status(code, message)),
            Err(e @ CallError::Timeout { .. }) => {
                return Err(status(DEADLINE_EXCEEDED, e.to_string()))
            }
            Err(e @ CallError::TooLarge { .. }) => {
                return Err(status(RESOURCE_EXHAUSTED, e.to_string()))
            }
            Err(CallError::ConnectionLost { .. } | CallError::Closed) => {
                if !repeatable(&req.method) {
                    return Err(status(
                        UNAVAILABLE,
                        format!(
                            "{}: the kata-ts daemon went away during the call; it is restarting, retry",
                            req.method
                        ),
                    ));
                }
            }
        }
    }
    Err(status(
        UNAVAILABLE,
        format!("{}: the kata-ts daemon is not available", req.method),
    ))
}

/// The server's handler.
pub fn handler(
    supervisor: Arc<Supervisor>,
) -> impl Fn(Incoming) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>
       + Send
       + Sync
       + 'static {
    move |req| Box::pin(forward(supervisor.clone(), req))
}

#[cfg(test)]
mod tests {
    use super::repeatable;

    #[test]
    fn only_harmless_calls_are_repeated() {
        for m in ["State", "Wait", "Pids", "Connect", "Shutdown", "Register"] {
            assert!(repeatable(m), "{m}");
        }
        for m in [
            "Create", "Start", "Kill", "Exec", "Delete", "CloseIO", "Update",
        ] {
            assert!(!repeatable(m), "{m}");
        }
    }
}
