//! The sandbox as this agent models it: containers and their processes, without running
//! anything. A process "exits" when signalled; its stdout echoes what was written to its stdin
//! (a `cat`), so the stdio calls have something to return.
//!
//! In guest mode (`--guest`) the same bookkeeping serves real processes: their pipes append
//! output, the reaper records exit statuses (see the `impl` block for guest mode).

use std::collections::HashMap;

use tokio::sync::watch;

/// Message the Kata agent uses for an unknown container (`sandbox.rs` `ERR_INVALID_CONTAINER_ID`).
pub const ERR_INVALID_CONTAINER_ID: &str = "Invalid container id";

/// Why a sandbox operation was refused; mapped to the status codes the Kata agent uses.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container with that id (Kata: INVALID_ARGUMENT).
    #[error("{ERR_INVALID_CONTAINER_ID}: {0}")]
    InvalidContainerId(String),
    /// No process with that exec id (Kata: NOT_FOUND).
    #[error("invalid exec id {exec_id} in container {container_id}")]
    InvalidExecId {
        container_id: String,
        exec_id: String,
    },
    /// The id is already taken.
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    /// The sandbox is not in a state that allows the call.
    #[error("{0}")]
    Precondition(String),
}

/// One process of a container; `""` is the container's init process.
#[derive(Debug, Default)]
pub struct Process {
    pub exit_status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Guest mode: output arrives through pipes, and a stream ends at its pipe's EOF (a
    /// background child may hold it open past the exit) rather than at the exit.
    pub piped: bool,
    pub stdout_closed: bool,
    pub stderr_closed: bool,
}

/// One container.
#[derive(Debug, Default)]
pub struct Container {
    pub started: bool,
    pub processes: HashMap<String, Process>,
}

/// The whole sandbox. `changed` ticks on every process change so blocked readers re-check.
#[derive(Debug)]
pub struct Sandbox {
    pub id: Option<String>,
    pub containers: HashMap<String, Container>,
    pub changed: watch::Sender<u64>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            id: None,
            containers: HashMap::new(),
            changed: watch::channel(0).0,
        }
    }
}

/// Which of a process's output streams.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Sandbox {
    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn create_sandbox(&mut self, id: &str) -> Result<(), StateError> {
        if self.id.is_some() {
            return Err(StateError::Precondition("sandbox already created".into()));
        }
        self.id = Some(id.to_string());
        Ok(())
    }

    pub fn destroy_sandbox(&mut self) {
        for c in self.containers.values_mut() {
            for p in c.processes.values_mut() {
                p.exit_status.get_or_insert(137);
            }
        }
        self.containers.clear();
        self.id = None;
        self.notify();
    }

    pub fn container(&mut self, id: &str) -> Result<&mut Container, StateError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| StateError::InvalidContainerId(id.to_string()))
    }

    pub fn process(&mut self, cid: &str, eid: &str) -> Result<&mut Process, StateError> {
        self.container(cid)?
            .processes
            .get_mut(eid)
            .ok_or_else(|| StateError::InvalidExecId {
                container_id: cid.to_string(),
                exec_id: eid.to_string(),
            })
    }

    pub fn create_container(&mut self, id: &str) -> Result<(), StateError> {
        if id.is_empty() {
            return Err(StateError::InvalidContainerId(String::new()));
        }
        if self.containers.contains_key(id) {
            return Err(StateError::AlreadyExists {
                what: "container",
                id: id.to_string(),
            });
        }
        let mut c = Container::default();
        c.processes.insert(String::new(), Process::default());
        self.containers.insert(id.to_string(), c);
        Ok(())
    }

    pub fn start_container(&mut self, id: &str) -> Result<(), StateError> {
        self.container(id)?.started = true;
        Ok(())
    }

    pub fn remove_container(&mut self, id: &str) -> Result<(), StateError> {
        self.container(id)?;
        self.containers.remove(id);
        self.notify();
        Ok(())
    }

    pub fn exec_process(&mut self, cid: &str, eid: &str) -> Result<(), StateError> {
        let c = self.container(cid)?;
        if c.processes.contains_key(eid) {
            return Err(StateError::AlreadyExists {
                what: "process",
                id: eid.to_string(),
            });
        }
        c.processes.insert(eid.to_string(), Process::default());
        Ok(())
    }

    /// Delivers `signal`; SIGKILL, SIGTERM, SIGINT and SIGHUP end the process with 128+signal.
    /// An empty exec id addresses every process of the container, as in Kata.
    pub fn signal(&mut self, cid: &str, eid: &str, signal: u32) -> Result<(), StateError> {
        let status = match signal {
            1 | 2 | 9 | 15 => i32::try_from(128 + signal).ok(),
            _ => None,
        };
        if eid.is_empty() {
            for p in self.container(cid)?.processes.values_mut() {
                if p.exit_status.is_none() {
                    p.exit_status = status;
                }
            }
        } else {
            let p = self.process(cid, eid)?;
            if p.exit_status.is_none() {
                p.exit_status = status;
            }
        }
        self.notify();
        Ok(())
    }

    pub fn write_stdin(&mut self, cid: &str, eid: &str, data: &[u8]) -> Result<usize, StateError> {
        let p = self.process(cid, eid)?;
        p.stdout.extend_from_slice(data);
        self.notify();
        Ok(data.len())
    }

    /// Takes up to `len` bytes of output; `None` means "nothing yet, still running".
    /// An exited process with nothing left returns empty data (end of stream).
    pub fn read(
        &mut self,
        cid: &str,
        eid: &str,
        stream: Stream,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let p = self.process(cid, eid)?;
        let ended = match (p.piped, stream) {
            (false, _) => p.exit_status.is_some(),
            (true, Stream::Stdout) => p.stdout_closed,
            (true, Stream::Stderr) => p.stderr_closed,
        };
        let buf = match stream {
            Stream::Stdout => &mut p.stdout,
            Stream::Stderr => &mut p.stderr,
        };
        if buf.is_empty() {
            return Ok(ended.then(Vec::new));
        }
        let n = if len == 0 {
            buf.len()
        } else {
            len.min(buf.len())
        };
        Ok(Some(buf.drain(..n).collect()))
    }
}

/// Guest mode: real processes feed the same bookkeeping.
impl Sandbox {
    /// Marks the process's output as coming from pipes.
    pub fn attach_pipes(&mut self, cid: &str, eid: &str) -> Result<(), StateError> {
        self.process(cid, eid)?.piped = true;
        Ok(())
    }

    /// Appends output read from a pipe; false when the process is gone (stop reading).
    pub fn append_output(&mut self, cid: &str, eid: &str, stream: Stream, data: &[u8]) -> bool {
        let Ok(p) = self.process(cid, eid) else {
            return false;
        };
        match stream {
            Stream::Stdout => p.stdout.extend_from_slice(data),
            Stream::Stderr => p.stderr.extend_from_slice(data),
        }
        self.notify();
        true
    }

    /// The pipe of `stream` reached EOF.
    pub fn close_output(&mut self, cid: &str, eid: &str, stream: Stream) {
        if let Ok(p) = self.process(cid, eid) {
            match stream {
                Stream::Stdout => p.stdout_closed = true,
                Stream::Stderr => p.stderr_closed = true,
            }
            self.notify();
        }
    }

    /// Records a real exit status (first one wins).
    pub fn set_exit(&mut self, cid: &str, eid: &str, status: i32) {
        if let Ok(p) = self.process(cid, eid) {
            p.exit_status.get_or_insert(status);
            self.notify();
        }
    }

    /// Forgets a process that could not be started.
    pub fn remove_process(&mut self, cid: &str, eid: &str) {
        if let Ok(c) = self.container(cid) {
            c.processes.remove(eid);
        }
        self.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_container_is_invalid_container_id() {
        let mut sb = Sandbox::default();
        assert!(
            matches!(sb.start_container("x"), Err(StateError::InvalidContainerId(id)) if id == "x")
        );
    }

    #[test]
    fn sigkill_ends_every_process_with_137_and_stdout_drains_then_eof() {
        let mut sb = Sandbox::default();
        sb.create_container("c").unwrap();
        sb.exec_process("c", "e").unwrap();
        sb.write_stdin("c", "", b"abc").unwrap();
        assert_eq!(
            sb.read("c", "", Stream::Stdout, 2).unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            sb.read("c", "e", Stream::Stdout, 2).unwrap(),
            None,
            "running, nothing written"
        );
        sb.signal("c", "", 9).unwrap();
        assert_eq!(sb.process("c", "e").unwrap().exit_status, Some(137));
        assert_eq!(
            sb.read("c", "", Stream::Stdout, 0).unwrap(),
            Some(b"c".to_vec())
        );
        assert_eq!(
            sb.read("c", "", Stream::Stdout, 0).unwrap(),
            Some(Vec::new()),
            "EOF after exit"
        );
    }

    #[test]
    fn non_terminating_signal_leaves_the_process_running() {
        let mut sb = Sandbox::default();
        sb.create_container("c").unwrap();
        sb.signal("c", "", 10).unwrap();
        assert_eq!(sb.process("c", "").unwrap().exit_status, None);
    }
}
