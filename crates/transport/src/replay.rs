//! Replays bytes from a hostile peer into the client's readers over in-memory streams: the ttrpc
//! reader of [`Client`] and the hybrid-vsock reply reader of [`hybrid_handshake`]. The same code
//! paths as a real connection, with the peer's side scripted; the entry points of the fuzz
//! targets in `fuzz/` and of the regression tests below.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{CallError, Client};
use crate::dial::{hybrid_handshake, Address, DialError};
use crate::frame::split_frame;

/// Calls a replay has in flight; they use stream ids 1, 3 and 5.
pub const REPLAY_CALLS: usize = 3;

/// Starts [`REPLAY_CALLS`] calls on a [`Client`], waits until the peer has received all of
/// them, then has the peer send `peer_bytes` and close the connection. Returns each call's
/// result in stream id order. Must run inside a tokio runtime; never hangs, since the peer's
/// close ends the reader.
pub async fn replay_ttrpc_peer(peer_bytes: &[u8]) -> Vec<Result<Vec<u8>, CallError>> {
    // Room for everything the peer sends, so its write never waits on a reader that stopped.
    let (ours, mut theirs) = tokio::io::duplex(peer_bytes.len() + (64 << 10));
    let client = Client::new(Box::pin(ours));
    let peer = async move {
        let mut seen = Vec::new();
        let mut frames = 0;
        let mut buf = [0u8; 4096];
        while frames < REPLAY_CALLS {
            match theirs.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            while let Ok((_, _, rest)) = split_frame(&seen) {
                let consumed = seen.len() - rest.len();
                seen.drain(..consumed);
                frames += 1;
            }
        }
        let _ = theirs.write_all(peer_bytes).await;
        // Dropping the peer's end is the connection closing: the reader sees EOF.
    };
    let call = |payload: &'static [u8]| client.call("grpc.AgentService", "Check", payload, None);
    let (a, b, c, ()) = tokio::join!(call(b"one"), call(b"three"), call(b"five"), peer);
    vec![a, b, c]
}

/// Runs [`hybrid_handshake`] against a peer that replies `reply` and then closes. Returns the
/// handshake's result and, when it succeeded, the bytes the stream still holds (what the ttrpc
/// client would read next).
pub async fn replay_hybrid_reply(reply: &[u8]) -> Result<Vec<u8>, DialError> {
    let (ours, mut theirs) = tokio::io::duplex(reply.len() + 64);
    theirs
        .write_all(reply)
        .await
        .expect("the duplex buffer holds the whole reply");
    // Shut down, not drop: the handshake still writes its `connect` line to the peer.
    theirs
        .shutdown()
        .await
        .expect("an in-memory stream shuts down");
    let addr = Address::HybridVsock {
        path: "replay".into(),
        port: 1024,
    };
    let mut s = hybrid_handshake(ours, &addr, 1024).await?;
    drop(theirs);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .await
        .expect("an in-memory stream reads to its end");
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Header, TYPE_RESPONSE};

    fn response_frame(stream_id: u32, data: &[u8]) -> Vec<u8> {
        let h = Header {
            length: u32::try_from(data.len()).unwrap(),
            stream_id,
            kind: TYPE_RESPONSE,
            flags: 0,
        };
        [h.encode().to_vec(), data.to_vec()].concat()
    }

    #[tokio::test]
    async fn replay_delivers_a_response_and_fails_the_rest_on_close() {
        // Response { payload: "hi" } for stream 3, then EOF.
        let results = replay_ttrpc_peer(&response_frame(3, &[0x12, 0x02, b'h', b'i'])).await;
        assert_eq!(results[1], Ok(b"hi".to_vec()));
        for r in [&results[0], &results[2]] {
            assert!(matches!(r, Err(CallError::ConnectionLost { .. })), "{r:?}");
        }
    }

    #[tokio::test]
    async fn replay_ignores_unknown_stream_ids_and_types() {
        let mut bytes = response_frame(7, &[0x12, 0x01, b'x']);
        let mut data_frame = response_frame(1, &[0x12, 0x01, b'y']);
        data_frame[8] = 0x03;
        bytes.extend(data_frame);
        bytes.extend(response_frame(1, &[0x12, 0x01, b'z']));
        let results = replay_ttrpc_peer(&bytes).await;
        assert_eq!(results[0], Ok(b"z".to_vec()));
    }

    #[tokio::test]
    async fn replay_of_a_truncated_frame_is_a_connection_error() {
        let frame = response_frame(1, &[0x12, 0x02, b'h', b'i']);
        let results = replay_ttrpc_peer(&frame[..frame.len() - 1]).await;
        for r in &results {
            assert!(
                matches!(r, Err(CallError::ConnectionLost { reason }) if reason.contains("frame data")),
                "{r:?}"
            );
        }
    }

    // Found by fuzz/hybrid_handshake: a 263-byte reply line starting with "OK" was accepted after
    // 256 bytes, one byte was dropped and the rest of the line was left for the ttrpc reader.
    #[tokio::test]
    async fn hybrid_reply_line_over_the_limit_is_refused() {
        let mut reply = b"OK".to_vec();
        reply.extend([0xff; 259]);
        reply.extend(b"\nz");
        let err = replay_hybrid_reply(&reply).await.unwrap_err();
        assert!(
            matches!(&err, DialError::HandshakeTooLong { start, .. } if start.starts_with("OK")),
            "{err:?}"
        );
        assert!(err.to_string().contains("longer than 256 bytes"), "{err}");
    }

    #[tokio::test]
    async fn hybrid_reply_line_at_the_limit_is_accepted() {
        let mut reply = b"OK ".to_vec();
        reply.extend([b'7'; 253]);
        reply.extend(b"\nz");
        assert_eq!(replay_hybrid_reply(&reply).await.unwrap(), b"z");
    }

    #[tokio::test]
    async fn hybrid_reply_keeps_the_bytes_after_the_line() {
        assert_eq!(
            replay_hybrid_reply(b"OK 1073741824\nttrpc").await.unwrap(),
            b"ttrpc"
        );
    }
}
