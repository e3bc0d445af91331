//! Dialers for the agent channel: vsock (`AF_VSOCK` cid:port), hybrid vsock (a unix socket
//! that forwards to a guest vsock port after a `connect <port>\n` / `OK …` handshake, as in
//! Firecracker, Cloud Hypervisor and Dragonball) and a plain unix stream (a QEMU virtio-serial
//! chardev). Dialing retries with exponential backoff until the dial timeout: the agent may not
//! be listening yet while the guest boots.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// A connected byte stream to the agent.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Pin<Box<dyn Stream>>;

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix stream socket (QEMU virtio-serial chardev, or a test agent).
    Unix { path: PathBuf },
    /// A hybrid-vsock unix socket and the guest vsock port behind it.
    HybridVsock { path: PathBuf, port: u32 },
    /// A vsock CID and port.
    Vsock { cid: u32, port: u32 },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix { path } => write!(f, "unix://{}", path.display()),
            Address::HybridVsock { path, port } => write!(f, "hvsock://{}:{port}", path.display()),
            Address::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
        }
    }
}

/// The dial step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStep {
    Socket,
    Connect,
    HandshakeWrite,
    HandshakeRead,
}

impl fmt::Display for DialStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialStep::Socket => "socket",
            DialStep::Connect => "connect",
            DialStep::HandshakeWrite => "send hybrid-vsock 'connect' line",
            DialStep::HandshakeRead => "read hybrid-vsock reply",
        })
    }
}

/// Why dialing failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// A system call failed (the errno is in `source`).
    #[error("dial {addr}: {step}: {source} (errno {errno})", errno = source.raw_os_error().unwrap_or(0))]
    Io {
        addr: String,
        step: DialStep,
        source: io::Error,
    },
    /// The hybrid-vsock peer answered something other than `OK …`.
    #[error("dial {addr}: hybrid-vsock handshake refused: reply {reply:?}")]
    Handshake { addr: String, reply: String },
    /// The hybrid-vsock peer's reply line did not end within [`HANDSHAKE_REPLY_MAX`] bytes.
    #[error("dial {addr}: hybrid-vsock reply longer than {HANDSHAKE_REPLY_MAX} bytes without a line end (starts {start:?})")]
    HandshakeTooLong { addr: String, start: String },
    /// The dial timeout ran out; `last` is the last attempt's error.
    #[error(
        "dial {addr}: gave up after {attempts} attempt(s) in {elapsed_ms} ms; last error: {last}"
    )]
    TimedOut {
        addr: String,
        attempts: u32,
        elapsed_ms: u128,
        last: Box<DialError>,
    },
}

impl DialError {
    /// Errors no retry can fix (the host lacks vsock, a bad argument, no permission).
    fn is_permanent(&self) -> bool {
        let DialError::Io { source, .. } = self else {
            return false;
        };
        matches!(source.raw_os_error(), Some(code) if [
            97, // EAFNOSUPPORT: no vsock in this kernel
            13, // EACCES
            1,  // EPERM
            22, // EINVAL
            36, // ENAMETOOLONG
            88, // ENOTSOCK
        ].contains(&code))
    }
}

/// Longest hybrid-vsock reply line accepted, without its `\n`.
pub const HANDSHAKE_REPLY_MAX: usize = 256;

/// Runs the hybrid-vsock handshake on a connected stream: sends `connect <port>\n` and reads the
/// peer's reply line, which must start with `OK`. Bytes after the reply line stay in the stream.
/// Generic over the stream so the reply reader can be fed from memory (tests, `fuzz/`).
pub async fn hybrid_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    addr: &Address,
    port: u32,
) -> Result<S, DialError> {
    let io_err = |step| {
        move |source| DialError::Io {
            addr: addr.to_string(),
            step,
            source,
        }
    };
    s.write_all(format!("connect {port}\n").as_bytes())
        .await
        .map_err(io_err(DialStep::HandshakeWrite))?;
    // Byte by byte: what follows the reply line is already ttrpc and must stay in the stream.
    let mut reply = Vec::with_capacity(16);
    let mut byte = [0u8; 1];
    loop {
        let n = s
            .read(&mut byte)
            .await
            .map_err(io_err(DialStep::HandshakeRead))?;
        if n == 0 {
            let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed before replying");
            return Err(io_err(DialStep::HandshakeRead)(eof));
        }
        if byte[0] == b'\n' {
            break;
        }
        // Stopping short of the line end would hand the rest of the line to the ttrpc reader.
        if reply.len() == HANDSHAKE_REPLY_MAX {
            return Err(DialError::HandshakeTooLong {
                addr: addr.to_string(),
                start: String::from_utf8_lossy(&reply[..16]).into_owned(),
            });
        }
        reply.push(byte[0]);
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    // runtime-rs requires the reply to contain "OK"; the protocol says it starts with it.
    if !reply.starts_with("OK") {
        return Err(DialError::Handshake {
            addr: addr.to_string(),
            reply,
        });
    }
    Ok(s)
}

/// One connection attempt.
pub async fn dial_once(addr: &Address) -> Result<BoxStream, DialError> {
    let io_err = |step| {
        move |source| DialError::Io {
            addr: addr.to_string(),
            step,
            source,
        }
    };
    match addr {
        Address::Unix { path } => {
            let s = UnixStream::connect(path)
                .await
                .map_err(io_err(DialStep::Connect))?;
            Ok(Box::pin(s))
        }
        Address::HybridVsock { path, port } => {
            let s = UnixStream::connect(path)
                .await
                .map_err(io_err(DialStep::Connect))?;
            Ok(Box::pin(hybrid_handshake(s, addr, *port).await?))
        }
        Address::Vsock { cid, port } => {
            let target = tokio_vsock::VsockAddr::new(*cid, *port);
            let s = tokio_vsock::VsockStream::connect(target)
                .await
                .map_err(|source| {
                    // socket(2) itself fails with EAFNOSUPPORT when the kernel has no vsock.
                    let step = if source.raw_os_error() == Some(97) {
                        DialStep::Socket
                    } else {
                        DialStep::Connect
                    };
                    io_err(step)(source)
                })?;
            Ok(Box::pin(s))
        }
    }
}

/// Backoff between attempts: 10 ms doubling to 200 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1u64 << attempt.min(5)).min(200))
}

/// Dials `addr`, retrying transient failures until `timeout` has passed.
pub async fn dial(addr: &Address, timeout: Duration) -> Result<BoxStream, DialError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt =
            tokio::time::timeout(remaining.max(Duration::from_millis(1)), dial_once(addr)).await;
        let err = match attempt {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.is_permanent() => return Err(e),
            Ok(Err(e)) => e,
            Err(_) => DialError::Io {
                addr: addr.to_string(),
                step: DialStep::Connect,
                source: io::Error::new(io::ErrorKind::TimedOut, "attempt did not finish in time"),
            },
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(DialError::TimedOut {
                addr: addr.to_string(),
                attempts,
                elapsed_ms: start.elapsed().as_millis(),
                last: Box::new(err),
            });
        }
        // The last attempt happens at the deadline, not a backoff step before it.
        tokio::time::sleep(backoff(attempts).min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    fn temp_sock(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("transport-dial-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("s.sock");
        let _ = std::fs::remove_file(&p);
        p
    }

    #[tokio::test]
    async fn unix_dial_to_a_missing_socket_times_out_naming_address_step_and_errno() {
        let path = temp_sock("missing");
        let addr = Address::Unix { path: path.clone() };
        let err = dial(&addr, Duration::from_millis(150)).await.err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains(&format!("unix://{}", path.display())),
            "{text}"
        );
        assert!(text.contains("connect"), "{text}");
        assert!(text.contains("errno 2"), "{text}");
        let DialError::TimedOut { attempts, .. } = err else {
            panic!("{err:?}")
        };
        assert!(attempts > 1);
    }

    #[tokio::test]
    async fn unix_dial_retries_until_the_listener_appears() {
        let path = temp_sock("late");
        let p2 = path.clone();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let l = UnixListener::bind(&p2).unwrap();
            l.accept().await.unwrap()
        });
        let addr = Address::Unix { path };
        assert!(dial(&addr, Duration::from_secs(3)).await.is_ok());
        server.await.unwrap();
    }

    async fn hvsock_server(path: PathBuf, reply: &'static str) -> tokio::task::JoinHandle<String> {
        let l = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).await.unwrap() == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            s.write_all(reply.as_bytes()).await.unwrap();
            s.write_all(b"after").await.unwrap();
            String::from_utf8(line).unwrap()
        })
    }

    #[tokio::test]
    async fn hybrid_vsock_sends_connect_and_keeps_bytes_after_ok() {
        let path = temp_sock("hv-ok");
        let server = hvsock_server(path.clone(), "OK 1073741824\n").await;
        let mut s = dial(
            &Address::HybridVsock { path, port: 1024 },
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        let mut rest = [0u8; 5];
        s.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"after");
        assert_eq!(server.await.unwrap(), "connect 1024");
    }

    #[tokio::test]
    async fn hybrid_vsock_reply_without_ok_is_a_handshake_error() {
        let path = temp_sock("hv-bad");
        let _server = hvsock_server(path.clone(), "NO such port\n").await;
        let err = dial_once(&Address::HybridVsock { path, port: 1024 })
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, DialError::Handshake { reply, .. } if reply == "NO such port"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn vsock_dial_without_a_vsock_device_fails_clearly() {
        // No /dev/vhost-vsock on these hosts: the error must name the address and the errno.
        let err = dial(
            &Address::Vsock { cid: 3, port: 1024 },
            Duration::from_millis(100),
        )
        .await
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains("vsock://3:1024"), "{text}");
        assert!(text.contains("errno"), "{text}");
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(30), Duration::from_millis(200));
    }
}
