//! The ttrpc client's frame/message reader against a malicious agent: whatever the peer sends
//! (wrong lengths, > 4 MiB, truncated frames, unknown types, responses for unknown stream ids,
//! malformed envelopes), every pending call ends with a response, an agent status or a
//! connection error — never a panic, a hang or another kind of error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use transport::replay::{replay_ttrpc_peer, REPLAY_CALLS};
use transport::CallError;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|peer_bytes: &[u8]| {
    let results = runtime().block_on(replay_ttrpc_peer(peer_bytes));
    assert_eq!(results.len(), REPLAY_CALLS);
    for r in &results {
        match r {
            Ok(_) | Err(CallError::Status { .. }) | Err(CallError::ConnectionLost { .. }) => {}
            Err(e) => panic!("unexpected call result {e:?}"),
        }
        if peer_bytes.len() < 10 {
            // Not even one whole header: nothing can have answered.
            assert!(matches!(r, Err(CallError::ConnectionLost { .. })), "{r:?}");
        }
    }
});
