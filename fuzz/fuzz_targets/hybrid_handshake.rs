//! The hybrid-vsock reply reader (`OK <port>\n`) against a malicious or broken peer: a reply
//! line starting with `OK` is accepted, anything else refused, and on success the stream holds
//! exactly the bytes after the reply line (they are the first ttrpc frames).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;
use transport::dial::HANDSHAKE_REPLY_MAX as REPLY_MAX;
use transport::replay::replay_hybrid_reply;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|reply: &[u8]| {
    let result = runtime().block_on(replay_hybrid_reply(reply));
    let line_end = reply.iter().position(|&b| b == b'\n');
    match (&result, line_end) {
        (Ok(rest), Some(end)) => {
            assert!(reply.starts_with(b"OK"), "accepted {reply:?}");
            assert!(end <= REPLY_MAX, "accepted a {end}-byte reply line");
            assert_eq!(
                rest.as_slice(),
                &reply[end + 1..],
                "stream lost or kept reply bytes"
            );
        }
        (Ok(_), None) => panic!("accepted a reply without a line end: {reply:?}"),
        (Err(_), Some(end)) if end <= REPLY_MAX && reply.starts_with(b"OK") => {
            panic!("refused a valid reply {reply:?}: {result:?}")
        }
        (Err(_), _) => {}
    }
});
