//! The relay proper: host sessions between the virtio-serial port and a connection to the
//! agent's unix socket, one agent connection per host session.
//!
//! virtio-serial semantics (drivers/char/virtio_console.c) shape the loop: the guest opens the
//! port once; while the host end is disconnected a read returns 0 at once and poll reports
//! POLLHUP, and a write blocks until the host comes back. The hang-up is a control message the
//! guest may handle after a reconnected host's first bytes, so it does not delimit sessions:
//! the ttrpc framing does (framing.rs). A request whose stream id starts over begins a new host
//! session: the relay drops the old agent connection with whatever it still had to say (a stale
//! reply must not reach a new client) and opens a new one. The agent closing its end ends the
//! agent connection; the host's next frame opens another. A hang-up in the middle of a frame
//! drops that frame's session (a host that is gone will not finish it).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::framing::{Event, Framer};

const BUF_BYTES: usize = 64 * 1024;
/// Pause between reads while the host end of the port is disconnected (reads return 0 at once).
pub const IDLE_PAUSE: Duration = Duration::from_millis(20);

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
    /// The current session's agent connection and buffers.
    state: State,
}

#[derive(Debug, Default)]
struct State {
    agent: Option<UnixStream>,
    framer: Framer,
    /// Host bytes are forwarded (false after the agent connection ended, until the next frame).
    forwarding: bool,
    to_agent: Vec<u8>,
    /// Offsets in `to_agent` of the frames not yet written at all: an agent connection that
    /// ends before taking them hands them to the next connection.
    unsent: VecDeque<usize>,
    to_host: Vec<u8>,
    /// Agent connections opened so far.
    sessions: u64,
}

impl<'a> Relay<'a> {
    /// A relay with no agent connection yet.
    pub fn new(port: &'a File, port_path: &'a Path, socket: &'a Path, budget: Duration) -> Self {
        Relay {
            port,
            port_path,
            socket,
            connect_budget: budget,
            state: State::default(),
        }
    }

    /// Agent connections opened so far (one per host session).
    #[cfg(test)]
    pub fn sessions(&self) -> u64 {
        self.state.sessions
    }

    /// Relays until the port reads EOF (the host end is disconnected as the guest sees it now);
    /// the caller pauses and calls again. The agent connection outlives the hang-up: a new
    /// session starts with the host's next connection, not with the hang-up.
    pub fn pump(&mut self) -> Result<(), RelayError> {
        let mut buf = vec![0u8; BUF_BYTES];
        loop {
            if self.state.agent.is_none() && self.state.forwarding {
                // Whole frames the last connection never took go to a new one.
                self.open_agent();
            }
            let (port_ev, agent_ev) = self.wait()?;
            let st = &mut self.state;
            if let Some(agent) = &st.agent {
                if !st.to_agent.is_empty()
                    && agent_ev
                        .intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP)
                {
                    match write_some(agent, &st.to_agent) {
                        Ok(n) => st.sent(n),
                        Err(_) => st.agent_closed(),
                    }
                }
            }
            if !st.to_host.is_empty() && port_ev.contains(PollFlags::POLLOUT) {
                // A failed write to the port means the host went away: its replies are dropped.
                match write_some(self.port, &st.to_host) {
                    Ok(n) => drop(st.to_host.drain(..n)),
                    Err(_) => st.to_host.clear(),
                }
            }
            if st.to_agent.len() < BUF_BYTES
                && port_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                match read_some(self.port, &mut buf) {
                    Ok(Some(0)) => {
                        if !st.framer.at_boundary() {
                            st.framer.reset();
                            st.end_session();
                        }
                        return Ok(());
                    }
                    Ok(Some(n)) => self.host_bytes(&buf[..n]),
                    Ok(None) => {}
                    Err(source) => {
                        return Err(RelayError::ReadPort {
                            path: self.port_path.to_path_buf(),
                            source,
                        })
                    }
                }
            }
            let st = &mut self.state;
            if let Some(agent) = &st.agent {
                if st.to_host.len() < BUF_BYTES
                    && agent_ev
                        .intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                {
                    match read_some(agent, &mut buf) {
                        Ok(Some(0)) | Err(_) => {
                            eprintln!("kata-ts-serial-relay: the agent closed the connection");
                            st.agent_closed();
                        }
                        Ok(Some(n)) => st.to_host.extend_from_slice(&buf[..n]),
                        Ok(None) => {}
                    }
                }
            }
        }
    }

    /// Host bytes: frame by frame to the current agent connection, a new one per host session.
    fn host_bytes(&mut self, bytes: &[u8]) {
        let mut events = Vec::new();
        self.state.framer.feed(bytes, |e| events.push(e));
        for e in events {
            match e {
                Event::Header { bytes, new_session } => {
                    if new_session || !self.state.forwarding {
                        self.state.end_session();
                        self.open_agent();
                    }
                    if self.state.forwarding {
                        let st = &mut self.state;
                        st.unsent.push_back(st.to_agent.len());
                        st.to_agent.extend_from_slice(&bytes);
                    }
                }
                Event::Payload(p) if self.state.forwarding => {
                    self.state.to_agent.extend_from_slice(p)
                }
                Event::Payload(_) => {}
            }
        }
    }

    /// A new agent connection for the frames pending (or about to be); none: they are dropped.
    fn open_agent(&mut self) {
        let st = &mut self.state;
        st.agent = None;
        let agent = self.connect();
        let st = &mut self.state;
        st.forwarding = agent.is_some();
        if agent.is_some() {
            st.sessions += 1;
        } else {
            st.to_agent.clear();
            st.unsent.clear();
        }
        st.agent = agent;
    }

    fn connect(&self) -> Option<UnixStream> {
        let deadline = Instant::now() + self.connect_budget;
        loop {
            match UnixStream::connect(self.socket) {
                Ok(s) if s.set_nonblocking(true).is_ok() => return Some(s),
                Ok(_) => return None,
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

    /// Polls for what the buffers allow: read a side only while the other side's buffer has
    /// room (back-pressure), write a side only when something waits for it.
    fn wait(&self) -> Result<(PollFlags, PollFlags), RelayError> {
        let st = &self.state;
        let interest = |pending_in: &[u8], pending_out: &[u8]| {
            let mut f = PollFlags::empty();
            if pending_in.len() < BUF_BYTES {
                f |= PollFlags::POLLIN;
            }
            if !pending_out.is_empty() {
                f |= PollFlags::POLLOUT;
            }
            f
        };
        let port_interest = interest(&st.to_agent, &st.to_host);
        let revents = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
        match &st.agent {
            Some(agent) => {
                let mut fds = [
                    PollFd::new(self.port.as_fd(), port_interest),
                    PollFd::new(agent.as_fd(), interest(&st.to_host, &st.to_agent)),
                ];
                poll(&mut fds, PollTimeout::NONE).or_else(ignore_eintr)?;
                Ok((revents(&fds[0]), revents(&fds[1])))
            }
            None => {
                let mut fds = [PollFd::new(self.port.as_fd(), port_interest)];
                poll(&mut fds, PollTimeout::NONE).or_else(ignore_eintr)?;
                Ok((revents(&fds[0]), PollFlags::empty()))
            }
        }
    }
}

impl State {
    /// Drops the agent connection and everything of its session not yet delivered.
    fn end_session(&mut self) {
        self.agent = None;
        self.forwarding = false;
        self.to_agent.clear();
        self.unsent.clear();
        self.to_host.clear();
    }

    /// `n` bytes of `to_agent` were written.
    fn sent(&mut self, n: usize) {
        self.to_agent.drain(..n);
        while self.unsent.front().is_some_and(|&o| o < n) {
            self.unsent.pop_front();
        }
        for o in &mut self.unsent {
            *o -= n;
        }
    }

    /// The agent ended the connection: its last replies still reach the host. Frames it never
    /// started to take go to a new connection; the rest of a frame it took part of is dropped,
    /// and so are the host's bytes up to its next frame.
    fn agent_closed(&mut self) {
        self.agent = None;
        match self.unsent.front().copied() {
            Some(first) => self.sent(first),
            None => {
                self.forwarding = false;
                self.to_agent.clear();
            }
        }
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
    //! host): EOF when the "host" end closes, like the port when the host disconnects. A
    //! reconnect the guest has not seen is the same socketpair carrying a stream id that starts
    //! over. The booted-guest behaviour is tested by __test__/guest/kata-agent.spec.ts.
    use super::*;
    use crate::framing::frame;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;

    fn port_pair() -> (File, UnixStream) {
        let (guest, host) = UnixStream::pair().unwrap();
        guest.set_nonblocking(true).unwrap();
        (File::from(OwnedFd::from(guest)), host)
    }

    /// An agent that echoes each connection's bytes, its first reply prefixed by the connection's number.
    fn echo_agent(dir: &Path) -> (PathBuf, Arc<AtomicUsize>) {
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut prefix = Some(b'0' + u8::try_from(n).unwrap());
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => {
                                let mut out: Vec<u8> = prefix.take().into_iter().collect();
                                out.extend_from_slice(&buf[..k]);
                                if conn.write_all(&out).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        (socket, accepted)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("serial-relay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Runs the relay in a thread until the host end closes; returns the agent connections opened.
    fn spawn_relay(port: File, socket: PathBuf, budget: Duration) -> thread::JoinHandle<u64> {
        thread::spawn(move || {
            let mut relay = Relay::new(&port, Path::new("test-port"), &socket, budget);
            relay.pump().unwrap();
            relay.sessions()
        })
    }

    fn read_n(host: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        host.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn relays_both_ways_and_a_new_stream_id_sequence_gets_a_new_agent_connection() {
        let dir = temp_dir("echo");
        let (socket, accepted) = echo_agent(&dir);
        let (port, mut host) = port_pair();
        let relay = spawn_relay(port, socket, Duration::from_secs(5));
        let one = frame(1, b"hello");
        host.write_all(&one).unwrap();
        let mut want = vec![b'1'];
        want.extend_from_slice(&one);
        assert_eq!(
            read_n(&mut host, want.len()),
            want,
            "first session, agent connection 1"
        );
        let big = frame(3, &vec![7u8; 300 * 1024]);
        let writer = {
            let mut h = host.try_clone().unwrap();
            let big = big.clone();
            thread::spawn(move || h.write_all(&big).unwrap())
        };
        let back = read_n(&mut host, big.len());
        writer.join().unwrap();
        assert!(back == big, "300 KiB echoed intact through both buffers");

        // A reconnect the guest never saw as a hang-up: the stream ids start over.
        let again = frame(1, b"again");
        host.write_all(&again).unwrap();
        let mut want = vec![b'2'];
        want.extend_from_slice(&again);
        assert_eq!(
            read_n(&mut host, want.len()),
            want,
            "new session, agent connection 2"
        );
        drop(host);
        assert_eq!(relay.join().unwrap(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_agent_drops_the_request_after_the_budget() {
        let dir = temp_dir("none");
        let (port, mut host) = port_pair();
        let relay = spawn_relay(port, dir.join("absent.sock"), Duration::from_millis(100));
        host.write_all(&frame(1, b"x")).unwrap();
        drop(host);
        assert_eq!(relay.join().unwrap(), 0, "no agent connection");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_agents_last_reply_reaches_the_host_and_the_next_frame_reconnects() {
        let dir = temp_dir("close");
        let socket = dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let request = frame(1, b"abc");
        let len = request.len();
        let agent = thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut b = vec![0u8; len];
            c.read_exact(&mut b).unwrap();
            c.write_all(b"bye").unwrap();
            drop(c);
            let (mut c, _) = listener.accept().unwrap();
            let mut b = vec![0u8; len];
            c.read_exact(&mut b).unwrap();
            c.write_all(b"hi!").unwrap();
        });
        let (port, mut host) = port_pair();
        let relay = spawn_relay(port, socket, Duration::from_secs(5));
        host.write_all(&request).unwrap();
        assert_eq!(
            read_n(&mut host, 3),
            b"bye",
            "the agent's last reply reached the host"
        );
        host.write_all(&frame(3, b"abc")).unwrap();
        assert_eq!(
            read_n(&mut host, 3),
            b"hi!",
            "the next frame opened a new connection"
        );
        agent.join().unwrap();
        drop(host);
        assert_eq!(relay.join().unwrap(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
