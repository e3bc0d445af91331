// `start_call` from a thread outside the runtime (as the binding's JS thread calls it), against
// the scripted peer of client_tests.rs over an in-memory duplex stream.
use std::sync::mpsc;
use std::time::Duration;

use super::*;
use crate::client::tests::peer;

type Seen = tokio::sync::mpsc::UnboundedReceiver<(u32, Vec<u8>)>;

/// A client whose stream buffers `capacity` bytes each way.
fn client(capacity: usize) -> (Arc<Client>, Seen) {
    let (a, b) = tokio::io::duplex(capacity);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(peer(b, tx));
    (Arc::new(Client::new(Box::pin(a))), rx)
}

/// Starts a call on a plain thread and waits (off the runtime) for its delivery.
async fn start(
    c: &Arc<Client>,
    method: &'static str,
    payload: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, CallError> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            c.start_call(
                "svc",
                method,
                &payload,
                timeout,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_started_outside_the_runtime_gets_its_reply() {
    let (c, mut seen) = client(1 << 20);
    let secs = Some(Duration::from_secs(5));
    assert_eq!(
        start(&c, "Echo", b"abcd".to_vec(), secs).await.unwrap(),
        b"abcd"
    );
    // Awaited and callback calls share the connection and its stream ids.
    assert_eq!(c.call("svc", "Echo", b"efgh", secs).await.unwrap(), b"efgh");
    assert_eq!(
        start(&c, "Echo", b"ijkl".to_vec(), None).await.unwrap(),
        b"ijkl"
    );
    let ids: Vec<u32> = [seen.recv().await, seen.recv().await, seen.recv().await]
        .into_iter()
        .map(|s| s.unwrap().0)
        .collect();
    assert_eq!(ids, [1, 3, 5]);
    assert_eq!(c.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_is_delivered_decoded() {
    let (c, _seen) = client(1 << 20);
    let err = start(&c, "Fail", Vec::new(), Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Status { code: 5, message, .. } if message == "no such thing"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_the_socket_buffer_arrives_whole() {
    // 64 KiB through a 4 KiB pipe: most of the frame goes out from a runtime task, after
    // whatever the calling thread could write; the peer parses it as one frame.
    let (c, mut seen) = client(4096);
    let payload = vec![0x5a; 64 << 10];
    let err = start(&c, "Fail", payload.clone(), Some(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Status { code: 5, .. }), "{err:?}");
    let (id, data) = seen.recv().await.unwrap();
    assert_eq!(id, 1);
    let want = crate::wire::Request {
        service: "svc",
        method: "Fail",
        payload: &payload,
        timeout_nano: 5_000_000_000,
    }
    .encode();
    assert_eq!(data, want);
    // The connection is still in step: the next call is answered.
    assert_eq!(c.call("svc", "Echo", b"next", None).await.unwrap(), b"next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_call_times_out_and_the_connection_stays_usable() {
    let (c, _seen) = client(1 << 20);
    let t0 = std::time::Instant::now();
    let err = start(&c, "Slow", Vec::new(), Some(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Timeout {
                timeout_ms: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(c.pending(), 0);
    // A later call with a later deadline does not fire early, an earlier one re-arms the timer.
    let (slow, fast) = tokio::join!(
        start(&c, "Slow", Vec::new(), Some(Duration::from_millis(600))),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            start(&c, "Slow", Vec::new(), Some(Duration::from_millis(100))).await
        }
    );
    assert!(matches!(
        fast,
        Err(CallError::Timeout {
            timeout_ms: 100,
            ..
        })
    ));
    assert!(matches!(
        slow,
        Err(CallError::Timeout {
            timeout_ms: 600,
            ..
        })
    ));
    assert_eq!(
        start(&c, "Echo", b"live".to_vec(), None).await.unwrap(),
        b"live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_connection_fails_waiting_callbacks_and_later_calls() {
    let (c, _seen) = client(1 << 20);
    let (slow, hang) = tokio::join!(start(&c, "Slow", Vec::new(), None), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        start(&c, "Hangup", Vec::new(), None).await
    });
    assert!(
        matches!(slow, Err(CallError::ConnectionLost { .. })),
        "{slow:?}"
    );
    assert!(
        matches!(hang, Err(CallError::ConnectionLost { .. })),
        "{hang:?}"
    );
    let later = start(&c, "Echo", b"gone".to_vec(), None).await;
    assert!(
        matches!(later, Err(CallError::ConnectionLost { .. })),
        "{later:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_limit_fails_at_once() {
    let (c, _seen) = client(1 << 20);
    let big = vec![0u8; crate::MESSAGE_LENGTH_MAX];
    let err = start(&c, "Echo", big, None).await.unwrap_err();
    assert!(matches!(err, CallError::TooLarge { .. }), "{err:?}");
    assert_eq!(c.pending(), 0);
}
