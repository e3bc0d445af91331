// A peer that announces a 4 MiB frame and sends a few bytes must cost a few bytes: the server
// (and the client) buffer what has arrived, not what the header claims. Measured with a
// counting global allocator, so the figure is the live heap of this process, not RSS noise; the
// tests share it and take a lock so one runs at a time.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use transport::frame::{Header, MESSAGE_LENGTH_MAX, TYPE_REQUEST, TYPE_RESPONSE};
use transport::server::{AllowedPeers, Incoming, Server};
use transport::Client;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// SAFETY: every method forwards to the system allocator with the caller's layout and only
// adds bookkeeping on an atomic counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 50;
/// Generous per-connection overhead (tasks, channel, a small read buffer); 4 MiB is 64 times it.
const BUDGET_PER_CONNECTION: usize = 64 << 10;

fn announce_max(kind: u8) -> Vec<u8> {
    let header = Header {
        length: u32::try_from(MESSAGE_LENGTH_MAX).unwrap(),
        stream_id: 1,
        kind,
        flags: 0,
    };
    [&header.encode()[..], &[7u8; 100]].concat()
}

/// A throwaway directory removed on drop, so a failing assertion leaves nothing behind.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_socket(name: &str) -> (TempDir, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ttrpc-mem-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    (TempDir(dir), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_with_a_partial_frame_hold_what_arrived() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_dir, path) = temp_socket("server");
    let server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        |_req: Incoming| async { Ok(Vec::new()) },
    )
    .unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let mut peers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(&announce_max(TYPE_REQUEST)).await.unwrap();
        peers.push(s);
    }
    for _ in 0..200 {
        if server.connections() == CONNECTIONS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.connections(), CONNECTIONS);
    // Let every connection task read its header and bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grown < CONNECTIONS * BUDGET_PER_CONNECTION,
        "{CONNECTIONS} idle partial frames hold {grown} bytes"
    );
    drop(peers);
    server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_response_costs_the_client_what_arrived() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_dir, path) = temp_socket("client");
    let listener = UnixListener::bind(&path).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    let client = Client::new(Box::pin(UnixStream::connect(&path).await.unwrap()));
    let (mut agent, _) = listener.accept().await.unwrap();
    let call = tokio::spawn(async move {
        let _ = client
            .call("svc.S", "M", b"", Some(Duration::from_secs(5)))
            .await;
        client
    });
    let mut head = [0u8; 10];
    agent.read_exact(&mut head).await.unwrap();
    agent.write_all(&announce_max(TYPE_RESPONSE)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grown < BUDGET_PER_CONNECTION,
        "a partial response holds {grown} bytes"
    );
    drop(agent);
    drop(call.await);
}
