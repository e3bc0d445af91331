//! The relay proper: one host session at a time between the virtio-serial port and a fresh
//! connection to the agent's unix socket.
//!
//! virtio-serial semantics (drivers/char/virtio_console.c) shape the loop: the guest opens the
//! port once; while the host end is disconnected a read returns 0 at once and poll reports
//! POLLHUP, and a write blocks until the host comes back. So a session starts with the first
//! bytes the host sends, lasts until the port reads EOF (the host went away) or the agent
//! closes its end, and bytes of an ended session are dropped rather than delivered to the
//! next host connection (that would hand a stale reply to a new client).

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

const BUF_BYTES: usize = 64 * 1024;
/// Pause between reads while the host end of the port is disconnected (reads return 0 at once).
const IDLE_PAUSE: Duration = Duration::from_millis(20);

/// Failures that end the relay (a session's own failures only end that session).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// poll(2) on the port and socket failed.
    #[error("poll: {0}")]
    Poll(#[source] nix::Error),
    /// Reading the port failed with something other than EAGAIN/EINTR.
    #[error("read {path}: {source}")]
    ReadPort {
        /// The port's path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The port read EOF: the host closed its connection.
    HostGone,
    /// The agent closed the unix connection (or it failed).
    AgentClosed,
    /// No agent listened on the socket within the connect budget; the host's bytes were dropped.
    NoAgent,
}

/// Relay between `port` (already open, non-blocking) and the agent at `socket`.
#[derive(Debug)]
pub struct Relay<'a> {
    /// The virtio-serial port (or anything that behaves like one).
    pub port: &'a File,
    /// The port's path, for messages.
    pub port_path: &'a Path,
    /// The agent's unix socket.
    pub socket: &'a Path,
    /// How long to retry connecting to the agent at the start of a session.
    pub connect_budget: Duration,
}

impl Relay<'_> {
    /// Waits for the host's first bytes; `None` when the host end is still disconnected.
    pub fn wait_for_host(&self) -> Result<Option<Vec<u8>>, RelayError> {
        let mut fds = [PollFd::new(self.port.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE).or_else(ignore_eintr)?;
        let mut buf = vec![0u8; BUF_BYTES];
        match read_some(self.port, &mut buf) {
            Ok(Some(0)) => {
                sleep(IDLE_PAUSE);
                Ok(None)
            }
            Ok(Some(n)) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(RelayError::ReadPort {
                path: self.port_path.to_path_buf(),
                source,
            }),
        }
    }

    /// Runs one session that starts with `first` (bytes the host already sent).
    pub fn session(&self, first: Vec<u8>) -> Result<SessionEnd, RelayError> {
        let Some(agent) = self.connect() else {
            return Ok(SessionEnd::NoAgent);
        };
        if agent.set_nonblocking(true).is_err() {
            return Ok(SessionEnd::AgentClosed);
        }
        Pump {
            port: self.port,
            port_path: self.port_path,
            agent,
            to_agent: first,
            to_host: Vec::new(),
        }
        .run()
    }

    fn connect(&self) -> Option<UnixStream> {
        let deadline = Instant::now() + self.connect_budget;
        loop {
            match UnixStream::connect(self.socket) {
                Ok(s) => return Some(s),
                Err(e) if Instant::now() >= deadline => {
                    eprintln!(
                        "kata-ts-serial-relay: connect {}: {e}; dropping the host's request",
                        self.socket.display()
                    );
                    return None;
                }
                Err(_) => sleep(IDLE_PAUSE),
            }
        }
    }
}

struct Pump<'a> {
    port: &'a File,
    port_path: &'a Path,
    agent: UnixStream,
    to_agent: Vec<u8>,
    to_host: Vec<u8>,
}

impl Pump<'_> {
    fn run(mut self) -> Result<SessionEnd, RelayError> {
        let mut buf = vec![0u8; BUF_BYTES];
        loop {
            let (port_ev, agent_ev) = self.wait()?;
            if !self.to_agent.is_empty()
                && agent_ev.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP)
            {
                match write_some(&self.agent, &self.to_agent) {
                    Ok(n) => drop(self.to_agent.drain(..n)),
                    Err(_) => return Ok(SessionEnd::AgentClosed),
                }
            }
            if !self.to_host.is_empty() && port_ev.contains(PollFlags::POLLOUT) {
                // A failed write to the port means the host went away: the session is over.
                match write_some(self.port, &self.to_host) {
                    Ok(n) => drop(self.to_host.drain(..n)),
                    Err(_) => return Ok(SessionEnd::HostGone),
                }
            }
            if self.to_agent.is_empty()
                && port_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                match read_some(self.port, &mut buf) {
                    Ok(Some(0)) => return Ok(SessionEnd::HostGone),
                    Ok(Some(n)) => self.to_agent.extend_from_slice(&buf[..n]),
                    Ok(None) => {}
                    Err(source) => {
                        return Err(RelayError::ReadPort {
                            path: self.port_path.to_path_buf(),
                            source,
                        })
                    }
                }
            }
            if self.to_host.is_empty()
                && agent_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                match read_some(&self.agent, &mut buf) {
                    Ok(Some(0)) | Err(_) => return Ok(SessionEnd::AgentClosed),
                    Ok(Some(n)) => self.to_host.extend_from_slice(&buf[..n]),
                    Ok(None) => {}
                }
            }
        }
    }

    /// Polls for what the buffers allow: read a side only when its outgoing buffer is empty
    /// (back-pressure), write a side only when something waits for it.
    fn wait(&self) -> Result<(PollFlags, PollFlags), RelayError> {
        let interest = |pending_in: &[u8], pending_out: &[u8]| {
            let mut f = PollFlags::empty();
            if pending_in.is_empty() {
                f |= PollFlags::POLLIN;
            }
            if !pending_out.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            f
        };
        let mut fds = [
            PollFd::new(self.port.as_fd(), interest(&self.to_agent, &self.to_host)),
            PollFd::new(self.agent.as_fd(), interest(&self.to_host, &self.to_agent)),
        ];
        poll(&mut fds, PollTimeout::NONE).or_else(ignore_eintr)?;
        let revents = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
        Ok((revents(&fds[0]), revents(&fds[1])))
    }
}

fn ignore_eintr(e: nix::Error) -> Result<i32, RelayError> {
    if e == nix::Error::EINTR {
        Ok(0)
    } else {
        Err(RelayError::Poll(e))
    }
}

/// One read; `None` when it would block or was interrupted.
fn read_some(mut r: impl Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match r.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One write; 0 when it would block or was interrupted.
fn write_some(mut w: impl Write, data: &[u8]) -> io::Result<usize> {
    match w.write(data) {
        Ok(0) => Err(io::Error::from(ErrorKind::WriteZero)),
        Ok(n) => Ok(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    //! A socketpair stands in for the virtio-serial port (no virtio-serial device exists on the
    //! host): EOF when the "host" end closes, like the port when the host disconnects. The
    //! booted-guest behaviour is tested by __test__/guest/kata-agent.spec.ts.
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixListener;
    use std::thread;

    fn port_pair() -> (File, UnixStream) {
        let (guest, host) = UnixStream::pair().unwrap();
        guest.set_nonblocking(true).unwrap();
        (File::from(OwnedFd::from(guest)), host)
    }

    fn echo_agent(dir: &Path, connections: usize) -> (PathBuf, thread::JoinHandle<usize>) {
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let handle = thread::spawn(move || {
            let mut served = 0;
            for conn in listener.incoming().take(connections) {
                let mut conn = conn.unwrap();
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                    }
                }
                served += 1;
            }
            served
        });
        (socket, handle)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("serial-relay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn relays_both_ways_and_ends_when_the_host_goes_away() {
        let dir = temp_dir("echo");
        let (socket, agent) = echo_agent(&dir, 1);
        let (port, mut host) = port_pair();
        let relay = Relay {
            port: &port,
            port_path: Path::new("test-port"),
            socket: &socket,
            connect_budget: Duration::from_secs(5),
        };
        let host_thread = thread::spawn(move || {
            let big = vec![7u8; 300 * 1024];
            host.write_all(b"hello").unwrap();
            let mut got = [0u8; 5];
            host.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            let writer = {
                let mut h = host.try_clone().unwrap();
                let big = big.clone();
                thread::spawn(move || h.write_all(&big).unwrap())
            };
            let mut back = vec![0u8; big.len()];
            host.read_exact(&mut back).unwrap();
            writer.join().unwrap();
            assert!(back == big, "300 KiB echoed intact through both buffers");
        });
        let first = loop {
            if let Some(b) = relay.wait_for_host().unwrap() {
                break b;
            }
        };
        let end = relay.session(first).unwrap();
        host_thread.join().unwrap();
        assert_eq!(end, SessionEnd::HostGone);
        assert_eq!(
            agent.join().unwrap(),
            1,
            "the agent saw its connection closed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_agent_drops_the_request_after_the_budget() {
        let dir = temp_dir("none");
        let (port, _host) = port_pair();
        let relay = Relay {
            port: &port,
            port_path: Path::new("test-port"),
            socket: &dir.join("absent.sock"),
            connect_budget: Duration::from_millis(100),
        };
        assert_eq!(relay.session(b"x".to_vec()).unwrap(), SessionEnd::NoAgent);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn agent_closing_ends_the_session() {
        let dir = temp_dir("close");
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let agent = thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut b = [0u8; 3];
            c.read_exact(&mut b).unwrap();
            c.write_all(b"bye").unwrap();
        });
        let (port, mut host) = port_pair();
        let relay = Relay {
            port: &port,
            port_path: Path::new("test-port"),
            socket: &socket,
            connect_budget: Duration::from_secs(5),
        };
        assert_eq!(
            relay.session(b"abc".to_vec()).unwrap(),
            SessionEnd::AgentClosed
        );
        agent.join().unwrap();
        let mut got = [0u8; 3];
        host.read_exact(&mut got).unwrap();
        assert_eq!(
            &got, b"bye",
            "the agent's last reply reached the host before the session ended"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
