// Server tests with this crate's ttrpc client as the peer, over real unix sockets. The
// interop test with containerd's Go client lives in __test__/shim/.
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::sync::Notify;

use super::*;
use crate::client::{CallError, Client};

fn socket(name: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let path = dir.0.join("s.sock");
    (dir, path)
}

/// A throwaway directory removed on drop (no tempfile dependency in this crate).
mod tempdir {
    use std::path::PathBuf;

    pub struct Dir(pub PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p =
                std::env::temp_dir().join(format!("ttrpc-server-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn client(path: &Path) -> Client {
    Client::new(Box::pin(UnixStream::connect(path).await.unwrap()))
}

/// Echoes `service/method:payload`; method `Fail` answers NOT_FOUND; `Hold` waits for `release`.
fn echo(release: Arc<Notify>) -> impl Handler {
    move |req: Incoming| {
        let release = release.clone();
        async move {
            match req.method.as_str() {
                "Fail" => Err(Status {
                    code: 5,
                    message: format!("no {}", String::from_utf8_lossy(&req.payload)),
                }),
                "Hold" => {
                    release.notified().await;
                    Ok(b"released".to_vec())
                }
                "Deadline" => Ok(req.timeout_nano.to_string().into_bytes()),
                _ => Ok([
                    format!("{}/{}:", req.service, req.method).as_bytes(),
                    &req.payload,
                ]
                .concat()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_call_with_the_handlers_payload() {
    let (_dir, path) = socket("echo");
    let server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    let c = client(&path).await;
    let out = c.call("svc.S", "Do", b"x", None).await.unwrap();
    assert_eq!(out, b"svc.S/Do:x");
    let empty = c
        .call("svc.S", "Deadline", b"", Some(Duration::from_secs(3)))
        .await
        .unwrap();
    assert_eq!(empty, b"3000000000");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_reaches_the_client_with_code_and_message() {
    let (_dir, path) = socket("status");
    let _server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    let c = client(&path).await;
    let err = c.call("svc.S", "Fail", b"task", None).await.unwrap_err();
    assert_eq!(
        err,
        CallError::Status {
            service: "svc.S".into(),
            method: "Fail".into(),
            code: 5,
            message: "no task".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_complete_while_another_is_held_open() {
    let (_dir, path) = socket("held");
    let release = Arc::new(Notify::new());
    let _server =
        Server::bind(&path, AllowedPeers::root_and_self(), echo(release.clone())).unwrap();
    let c = Arc::new(client(&path).await);
    let held = tokio::spawn({
        let c = c.clone();
        async move { c.call("svc.S", "Hold", b"", None).await }
    });
    for k in 0..20 {
        let out = c
            .call("svc.S", "State", format!("{k}").as_bytes(), None)
            .await
            .unwrap();
        assert_eq!(out, format!("svc.S/State:{k}").as_bytes());
    }
    assert!(!held.is_finished());
    release.notify_one();
    assert_eq!(held.await.unwrap().unwrap(), b"released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_are_served_and_counted() {
    let (_dir, path) = socket("conns");
    let server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    for _ in 0..3 {
        let c = client(&path).await;
        assert_eq!(c.call("a", "b", b"", None).await.unwrap(), b"a/b:");
        assert_eq!(server.connections(), 1);
        c.close();
        for _ in 0..100 {
            if server.connections() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.connections(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_pending_calls_and_removes_the_socket() {
    let (_dir, path) = socket("close");
    let server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    let c = Arc::new(client(&path).await);
    let held = tokio::spawn({
        let c = c.clone();
        async move { c.call("svc.S", "Hold", b"", None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.close();
    server.close();
    let err = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");
    assert!(server.is_closed());
    assert!(!path.exists());
    assert!(UnixStream::connect(&path).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_gets_resource_exhausted_and_the_connection_survives() {
    let (_dir, path) = socket("large");
    let _server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    let mut raw = UnixStream::connect(&path).await.unwrap();
    let over = MESSAGE_LENGTH_MAX + 1;
    let header = Header {
        length: u32::try_from(over).unwrap(),
        stream_id: 1,
        kind: TYPE_REQUEST,
        flags: 0,
    };
    raw.write_all(&header.encode()).await.unwrap();
    raw.write_all(&vec![0u8; over]).await.unwrap();
    let mut head = [0u8; HEADER_LEN];
    raw.read_exact(&mut head).await.unwrap();
    let h = Header::decode(&head).unwrap();
    let mut data = vec![0u8; h.data_len()];
    raw.read_exact(&mut data).await.unwrap();
    let res = crate::wire::Response::decode(&data).unwrap();
    assert_eq!((h.stream_id, h.kind), (1, TYPE_RESPONSE));
    assert_eq!(res.status.unwrap().code, RESOURCE_EXHAUSTED);
    let c = Client::new(Box::pin(raw));
    // The client's first stream id is 1 again: a new exchange on the same connection.
    assert_eq!(c.call("a", "b", b"", None).await.unwrap(), b"a/b:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_an_existing_path_fails_naming_it() {
    let (_dir, path) = socket("exists");
    std::fs::write(&path, b"").unwrap();
    let err = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("listen on {}", path.display())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_uid_is_not_allowed_is_disconnected_unanswered() {
    let (_dir, path) = socket("peer");
    let me = nix::unistd::geteuid().as_raw();
    let others = AllowedPeers::uids([me.wrapping_add(1)]);
    let server = Server::bind(&path, others, echo(Arc::new(Notify::new()))).unwrap();
    let c = client(&path).await;
    let err = c.call("svc.S", "State", b"", None).await.unwrap_err();
    assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");
    assert_eq!((server.refused(), server.connections()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0600_and_no_temp_name_is_left() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = socket("mode");
    let _server = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        echo(Arc::new(Notify::new())),
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, SOCKET_MODE);
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["s.sock"]);
}
