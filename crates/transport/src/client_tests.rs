// Client tests against a scripted in-process ttrpc peer over an in-memory duplex stream. The
// interop tests against ttrpc-rust (our agent binary) live in __test__/agent/.
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::frame::{split_frame, HEADER_LEN};

fn encode_response(code: i32, message: &str, payload: &[u8]) -> Vec<u8> {
    let mut status = Vec::new();
    if code != 0 {
        status.push(0x08);
        status.push(u8::try_from(code).unwrap());
    }
    if !message.is_empty() {
        status.push(0x12);
        status.push(u8::try_from(message.len()).unwrap());
        status.extend_from_slice(message.as_bytes());
    }
    let mut out = vec![0x0a, u8::try_from(status.len()).unwrap()];
    out.extend(status);
    if !payload.is_empty() {
        out.push(0x12);
        out.push(u8::try_from(payload.len()).unwrap());
        out.extend_from_slice(payload);
    }
    out
}

fn response_frame(stream_id: u32, data: &[u8]) -> Vec<u8> {
    let h = Header {
        length: u32::try_from(data.len()).unwrap(),
        stream_id,
        kind: TYPE_RESPONSE,
        flags: 0,
    };
    [h.encode().to_vec(), data.to_vec()].concat()
}

/// The peer: `Echo` answers its (4-byte) payload, `Fail` a NOT_FOUND
/// status, `Slow` never, `Hangup` closes the connection.
pub(crate) async fn peer(
    mut s: DuplexStream,
    seen: tokio::sync::mpsc::UnboundedSender<(u32, Vec<u8>)>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Ok((h, data, rest)) = split_frame(&buf) {
            let (h, data, consumed) = (h, data.to_vec(), buf.len() - rest.len());
            buf.drain(..consumed);
            let _ = seen.send((h.stream_id, data.clone()));
            let text = String::from_utf8_lossy(&data).to_string();
            if text.contains("Hangup") {
                return;
            } else if text.contains("Fail") {
                s.write_all(&response_frame(
                    h.stream_id,
                    &encode_response(5, "no such thing", &[]),
                ))
                .await
                .unwrap();
            } else if text.contains("Echo") {
                // The test payloads are 4 bytes: field 3 is `1a 04 <payload>`.
                let at = data
                    .windows(2)
                    .position(|w| w == [0x1a, 0x04])
                    .map_or(0, |i| i + 2);
                let payload = &data[at..(at + 4).min(data.len())];
                s.write_all(&response_frame(
                    h.stream_id,
                    &encode_response(0, "", payload),
                ))
                .await
                .unwrap();
            }
        }
    }
}

fn client() -> (Client, tokio::sync::mpsc::UnboundedReceiver<(u32, Vec<u8>)>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(peer(b, tx));
    (Client::new(Box::pin(a)), rx)
}

#[tokio::test]
async fn call_returns_the_payload_and_uses_odd_stream_ids() {
    let (c, mut seen) = client();
    let r = c
        .call("svc", "Echo", b"abcd", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(r, b"abcd");
    c.call("svc", "Echo", b"efgh", None).await.unwrap();
    assert_eq!(seen.recv().await.unwrap().0, 1);
    assert_eq!(seen.recv().await.unwrap().0, 3);
}

#[tokio::test]
async fn request_carries_timeout_nano() {
    let (c, mut seen) = client();
    c.call(
        "grpc.AgentService",
        "Echo",
        b"wxyz",
        Some(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let (_, data) = seen.recv().await.unwrap();
    let tail = [0x20, 0x80, 0xd8, 0x8e, 0xe1, 0x6f];
    assert!(data.ends_with(&tail), "{data:x?}");
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_response() {
    let (c, _seen) = client();
    let c = std::sync::Arc::new(c);
    let calls = (0..100u32).map(|i| {
        let c = c.clone();
        tokio::spawn(async move {
            let p = format!("{i:04}");
            (
                p.clone(),
                c.call("svc", "Echo", p.as_bytes(), Some(Duration::from_secs(5)))
                    .await
                    .unwrap(),
            )
        })
    });
    for h in calls {
        let (want, got) = h.await.unwrap();
        assert_eq!(got, want.as_bytes());
    }
    assert_eq!(c.pending(), 0);
}

#[tokio::test]
async fn error_status_keeps_code_and_message() {
    let (c, _seen) = client();
    let err = c
        .call("svc", "Fail", b"", Some(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CallError::Status {
            service: "svc".into(),
            method: "Fail".into(),
            code: 5,
            message: "no such thing".into()
        }
    );
    assert!(err.to_string().contains("NOT_FOUND (5)"));
}

#[tokio::test]
async fn a_call_times_out_locally_and_the_connection_stays_usable() {
    let (c, _seen) = client();
    let start = Instant::now();
    let err = c
        .call("svc", "Slow", b"", Some(Duration::from_millis(100)))
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
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(c.pending(), 0);
    assert_eq!(
        c.call("svc", "Echo", b"1234", Some(Duration::from_secs(1)))
            .await
            .unwrap(),
        b"1234"
    );
}

#[tokio::test]
async fn too_large_request_is_refused_before_sending() {
    let (c, mut seen) = client();
    let big = vec![0u8; MESSAGE_LENGTH_MAX];
    let err = c
        .call("svc", "Echo", &big, Some(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::TooLarge {
                max: MESSAGE_LENGTH_MAX,
                ..
            }
        ),
        "{err:?}"
    );
    c.call("svc", "Echo", b"next", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    // The refused call never reached the peer and did not consume a stream id.
    assert_eq!(seen.recv().await.unwrap().0, 1);
}

#[tokio::test]
async fn connection_loss_fails_every_pending_call_at_once() {
    let (c, _seen) = client();
    let c = std::sync::Arc::new(c);
    let slow: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call("svc", "Slow", b"", None).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.pending(), 10);
    let hang = c.call("svc", "Hangup", b"", None).await.unwrap_err();
    assert!(matches!(hang, CallError::ConnectionLost { .. }), "{hang:?}");
    for h in slow {
        let err = h.await.unwrap().unwrap_err();
        assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");
    }
    assert!(c.is_closed());
    let later = c.call("svc", "Echo", b"x", None).await.unwrap_err();
    assert!(matches!(later, CallError::ConnectionLost { .. }));
}

#[tokio::test]
async fn close_fails_pending_calls_with_closed() {
    let (c, _seen) = client();
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    let pending = tokio::spawn(async move { c2.call("svc", "Slow", b"", None).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.close();
    assert_eq!(pending.await.unwrap().unwrap_err(), CallError::Closed);
    assert_eq!(
        c.call("svc", "Echo", b"x", None).await.unwrap_err(),
        CallError::Closed
    );
}

#[tokio::test]
async fn oversized_frame_from_the_peer_breaks_the_connection() {
    let (a, mut b) = tokio::io::duplex(1024);
    let c = Client::new(Box::pin(a));
    let h = Header {
        length: (4 << 20) + 1,
        stream_id: 1,
        kind: TYPE_RESPONSE,
        flags: 0,
    };
    b.write_all(&h.encode()).await.unwrap();
    let err = c
        .call("svc", "Echo", b"", Some(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::ConnectionLost { reason } if reason.contains("exceeds")),
        "{err:?}"
    );
    let _ = HEADER_LEN;
}
