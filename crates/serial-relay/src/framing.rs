//! Host sessions told apart by the ttrpc framing of the host's bytes, not by the port's hang-up.
//!
//! The guest learns that the host disconnected from a virtio-serial control message, which the
//! guest kernel handles apart from (and possibly after) the data queue: a host that reconnects at
//! once can have its first request read before the guest has seen the hang-up. So the relay
//! reads the ttrpc frame headers (10 bytes: length u32 BE, stream id u32 BE, type u8, flags u8)
//! of the host → agent stream: a ttrpc client numbers its streams upward from 1 on every new
//! connection, so a request whose stream id is not above the last one seen starts a new host
//! session. The relay then opens a new agent connection for it.

/// ttrpc frame header length.
pub const HEADER_LEN: usize = 10;
/// ttrpc message type of a request.
const MESSAGE_TYPE_REQUEST: u8 = 1;

/// What the host sent, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole frame header; `new_session` when it starts a new host session.
    Header {
        /// The header's bytes, to forward.
        bytes: [u8; HEADER_LEN],
        /// A request whose stream id starts over.
        new_session: bool,
    },
    /// Payload bytes of the current frame.
    Payload(&'a [u8]),
}

/// Incremental parser of the host → agent byte stream.
#[derive(Debug, Default)]
pub struct Framer {
    header: Vec<u8>,
    remaining: u64,
    last_request: Option<u32>,
}

impl Framer {
    /// True between frames (no partial header or payload pending).
    pub fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.remaining == 0
    }

    /// Forgets a partial frame and the session's stream ids: the next bytes start a new session.
    pub fn reset(&mut self) {
        *self = Framer::default();
    }

    /// Feeds `input`, calling `on` for each header and payload piece, in order.
    pub fn feed<'a>(&mut self, mut input: &'a [u8], mut on: impl FnMut(Event<'a>)) {
        while !input.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                on(Event::Payload(&input[..n]));
                self.remaining -= n as u64;
                input = &input[n..];
                continue;
            }
            let want = HEADER_LEN - self.header.len();
            let n = want.min(input.len());
            self.header.extend_from_slice(&input[..n]);
            input = &input[n..];
            if self.header.len() < HEADER_LEN {
                continue;
            }
            let mut bytes = [0u8; HEADER_LEN];
            bytes.copy_from_slice(&self.header);
            self.header.clear();
            let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            let stream = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let mut new_session = false;
            if bytes[8] == MESSAGE_TYPE_REQUEST {
                new_session = self.last_request.is_some_and(|last| stream <= last);
                self.last_request = Some(stream);
            }
            self.remaining = u64::from(length);
            on(Event::Header { bytes, new_session });
        }
    }
}

#[cfg(test)]
pub(crate) fn frame(stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(&[MESSAGE_TYPE_REQUEST, 0]);
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (new_session flags of the headers, payload bytes) seen for `chunks` fed in order.
    fn run(f: &mut Framer, chunks: &[&[u8]]) -> (Vec<bool>, Vec<u8>) {
        let (mut sessions, mut payload) = (Vec::new(), Vec::new());
        for c in chunks {
            f.feed(c, |e| match e {
                Event::Header { new_session, .. } => sessions.push(new_session),
                Event::Payload(p) => payload.extend_from_slice(p),
            });
        }
        (sessions, payload)
    }

    #[test]
    fn a_stream_id_starting_over_is_a_new_session() {
        let mut f = Framer::default();
        let mut all = frame(1, b"check");
        all.extend(frame(3, b"details"));
        all.extend(frame(1, b"again"));
        all.extend(frame(3, b"more"));
        let (s, p) = run(&mut f, &[&all]);
        assert_eq!(s, [false, false, true, false]);
        assert_eq!(p, b"checkdetailsagainmore");
        assert!(f.at_boundary());
    }

    #[test]
    fn headers_and_payloads_split_anywhere() {
        let mut all = frame(1, b"abc");
        all.extend(frame(3, b""));
        all.extend(frame(1, &[0x55; 300]));
        for cut in 0..all.len() {
            let mut f = Framer::default();
            let (s, p) = run(&mut f, &[&all[..cut], &all[cut..]]);
            assert_eq!(s, [false, false, true], "cut at {cut}");
            assert_eq!(p.len(), 303, "cut at {cut}");
        }
        let mut f = Framer::default();
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(run(&mut f, &bytes).0, [false, false, true]);
    }

    #[test]
    fn payload_that_looks_like_a_header_is_payload() {
        let inner = frame(1, b"");
        let mut f = Framer::default();
        let mut all = frame(5, &inner);
        all.extend(frame(7, b"x"));
        let (s, p) = run(&mut f, &[&all]);
        assert_eq!(s, [false, false]);
        assert_eq!(p.len(), inner.len() + 1);
    }

    #[test]
    fn reset_forgets_a_partial_frame() {
        let mut f = Framer::default();
        let one = frame(9, b"abcdef");
        run(&mut f, &[&one[..12]]);
        assert!(!f.at_boundary());
        f.reset();
        assert!(f.at_boundary());
        let (s, p) = run(&mut f, &[&frame(1, b"z")]);
        assert_eq!((s, p), (vec![false], b"z".to_vec()));
    }
}
