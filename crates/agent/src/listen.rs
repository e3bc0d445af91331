//! Where the agent listens: a unix socket, a hybrid-vsock front (Firecracker/Cloud Hypervisor
//! style `connect <port>\n` → `OK <n>\n` handshake on a unix socket, then ttrpc on the same
//! stream), a serial device (virtio-serial port in the guest, opened read-write once per host
//! connection), or vsock.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use ttrpc::r#async::transport::{Listener, Socket};

/// A `--listen` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `unix:<path>`
    Unix(PathBuf),
    /// `hvsock:<path>`: accepts `connect <port>\n` for `port` only.
    HybridVsock { path: PathBuf, port: u32 },
    /// `serial:<path>`
    Serial(PathBuf),
    /// `vsock:<port>` (any CID)
    Vsock(u32),
}

impl ListenAddr {
    /// Parses `unix:<path>`, `hvsock:<path>[:<port>]` (port 1024 by default), `serial:<path>`,
    /// `vsock:<port>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("bad --listen {text:?}"))?;
        match kind {
            "unix" => Ok(ListenAddr::Unix(rest.into())),
            "serial" => Ok(ListenAddr::Serial(rest.into())),
            "vsock" => rest
                .parse()
                .map(ListenAddr::Vsock)
                .map_err(|e| format!("bad vsock port {rest:?}: {e}")),
            "hvsock" => {
                let (path, port) = match rest.rsplit_once(':') {
                    Some((p, port))
                        if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() =>
                    {
                        (
                            p,
                            port.parse()
                                .map_err(|e| format!("bad hvsock port {port:?}: {e}"))?,
                        )
                    }
                    _ => (rest, 1024),
                };
                Ok(ListenAddr::HybridVsock {
                    path: path.into(),
                    port,
                })
            }
            _ => Err(format!(
                "unknown --listen kind {kind:?} (unix, hvsock, serial, vsock)"
            )),
        }
    }

    /// Binds the address as a ttrpc listener.
    pub fn listen(&self) -> io::Result<Listener> {
        match self {
            ListenAddr::Unix(path) => Ok(Listener::from(bind_unix(path)?)),
            ListenAddr::HybridVsock { path, port } => Ok(hybrid_vsock(bind_unix(path)?, *port)),
            ListenAddr::Serial(path) => Ok(serial(path.clone())),
            ListenAddr::Vsock(port) => Listener::bind(format!("vsock://-1:{port}")),
        }
    }
}

/// Connections open now; `on_last_close` runs whenever the count drops to zero.
struct Open {
    count: AtomicUsize,
    on_last_close: Box<dyn Fn() + Send + Sync>,
}

/// One accepted connection, counted in [`Open`] until ttrpc drops it.
struct Counted {
    socket: Socket,
    open: Arc<Open>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.open.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.open.on_last_close)();
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// `listener` with its connections counted: `on_last_close` runs each time the last open one
/// closes (the host is gone, so whatever it left half done is abandoned).
pub fn counted(listener: Listener, on_last_close: impl Fn() + Send + Sync + 'static) -> Listener {
    let open = Arc::new(Open {
        count: AtomicUsize::new(0),
        on_last_close: Box::new(on_last_close),
    });
    Listener::new(listener.map(move |accepted| {
        accepted.map(|socket| {
            open.count.fetch_add(1, Ordering::AcqRel);
            Counted {
                socket,
                open: open.clone(),
            }
        })
    }))
}

fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    UnixListener::bind(path)
}

/// Reads the `connect <port>\n` line (at most 64 bytes) and answers `OK <n>\n` when the port
/// is ours; anything else closes the connection, as Firecracker does for a port nobody serves.
async fn handshake(mut s: UnixStream, port: u32, local: u32) -> io::Result<UnixStream> {
    let mut line = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        if s.read(&mut byte).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during handshake",
            ));
        }
        if byte[0] == b'\n' {
            let text = String::from_utf8_lossy(&line);
            return match text.trim().strip_prefix("connect ").map(str::parse::<u32>) {
                Some(Ok(p)) if p == port => {
                    s.write_all(format!("OK {local}\n").as_bytes()).await?;
                    Ok(s)
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad handshake {text:?}"),
                )),
            };
        }
        line.push(byte[0]);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "handshake line too long",
    ))
}

fn hybrid_vsock(listener: UnixListener, port: u32) -> Listener {
    let (tx, rx) = mpsc::channel::<io::Result<UnixStream>>(16);
    // Firecracker answers with the host-side port it assigned; any increasing number will do.
    let next_local = Arc::new(AtomicU32::new(1 << 30));
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let tx = tx.clone();
            let local = next_local.fetch_add(1, Ordering::Relaxed);
            // One slow client must not hold up the others' handshakes.
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(5), handshake(s, port, local)).await
                {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(s)).await;
                    }
                    Ok(Err(e)) => eprintln!("kata-ts-agent: hvsock: {e}"),
                    Err(_) => eprintln!("kata-ts-agent: hvsock: handshake timed out"),
                }
            });
        }
    });
    Listener::new(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|s| (s, rx))
    }))
}

/// A serial device opened non-blocking and driven by epoll.
#[derive(Debug)]
pub struct SerialPort {
    fd: AsyncFd<File>,
    // Dropped with the connection, which lets the listener reopen the device.
    _closed: oneshot::Sender<()>,
}

impl SerialPort {
    fn open(path: &Path) -> io::Result<(Self, oneshot::Receiver<()>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)?;
        let (tx, rx) = oneshot::channel();
        // SAFETY: `file` is an open descriptor owned by the AsyncFd until it is dropped; nothing
        // else closes or replaces it.
        let fd = unsafe { AsyncFd::register(file) }.map_err(io::Error::from)?;
        Ok((SerialPort { fd, _closed: tx }, rx))
    }
}

impl AsyncRead for SerialPort {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|f| f.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for SerialPort {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|f| f.get_ref().write(data)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Yields the device as one connection at a time: a virtio-serial port has a single opener, so
/// it is reopened only after ttrpc dropped the previous connection (the host went away).
fn serial(path: PathBuf) -> Listener {
    let state: (PathBuf, Option<oneshot::Receiver<()>>) = (path, None);
    Listener::new(stream::unfold(state, |(path, previous)| async move {
        if let Some(rx) = previous {
            let _ = rx.await;
            // The host end may still be gone; do not spin on a port that reads EOF at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match SerialPort::open(&path) {
            Ok((port, rx)) => Some((Ok(port), (path, Some(rx)))),
            Err(e) => {
                eprintln!("kata-ts-agent: open {}: {e}", path.display());
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((Err(e), (path, None)))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_addresses() {
        let rows: [(&str, ListenAddr); 5] = [
            ("unix:/tmp/a.sock", ListenAddr::Unix("/tmp/a.sock".into())),
            (
                "hvsock:/tmp/h.sock",
                ListenAddr::HybridVsock {
                    path: "/tmp/h.sock".into(),
                    port: 1024,
                },
            ),
            (
                "hvsock:/tmp/h.sock:2000",
                ListenAddr::HybridVsock {
                    path: "/tmp/h.sock".into(),
                    port: 2000,
                },
            ),
            (
                "serial:/dev/vport0p1",
                ListenAddr::Serial("/dev/vport0p1".into()),
            ),
            ("vsock:1024", ListenAddr::Vsock(1024)),
        ];
        for (text, want) in rows {
            assert_eq!(ListenAddr::parse(text).unwrap(), want, "{text}");
        }
        assert!(ListenAddr::parse("tcp:1").is_err());
        assert!(ListenAddr::parse("nocolon").is_err());
    }
}
