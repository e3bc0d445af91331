//! ttrpc framing (containerd/ttrpc PROTOCOL.md; ttrpc-rust `MESSAGE_HEADER_LENGTH`,
//! `MESSAGE_LENGTH_MAX`): a 10-byte header — data length u32 BE, stream id u32 BE, type u8,
//! flags u8 — then the data.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Header size in bytes.
pub const HEADER_LEN: usize = 10;
/// Largest data length either side accepts (4 MiB).
pub const MESSAGE_LENGTH_MAX: usize = 4 << 20;

/// Frame type: a request (client → server).
pub const TYPE_REQUEST: u8 = 0x01;
/// Frame type: a response (server → client).
pub const TYPE_RESPONSE: u8 = 0x02;
/// Frame type: stream data.
pub const TYPE_DATA: u8 = 0x03;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub stream_id: u32,
    pub kind: u8,
    pub flags: u8,
}

/// A frame that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The data is longer than ttrpc allows.
    #[error("message of {length} bytes exceeds the ttrpc limit of {MESSAGE_LENGTH_MAX} bytes")]
    TooLarge { length: usize },
    /// Fewer bytes than a header needs.
    #[error("truncated frame header: {got} of {HEADER_LEN} bytes")]
    TruncatedHeader { got: usize },
    /// Fewer data bytes than the header announced.
    #[error("truncated frame data: {got} of {want} bytes")]
    TruncatedData { got: usize, want: usize },
}

impl Header {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        out[8] = self.kind;
        out[9] = self.flags;
        out
    }

    /// Decodes a header and checks the length limit.
    pub fn decode(bytes: &[u8]) -> Result<Header, FrameError> {
        let b: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(FrameError::TruncatedHeader { got: bytes.len() })?;
        let header = Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
            flags: b[9],
        };
        header.check()?;
        Ok(header)
    }

    /// The data length as usize, after the limit check.
    pub fn data_len(&self) -> usize {
        usize::try_from(self.length).unwrap_or(usize::MAX)
    }

    fn check(&self) -> Result<(), FrameError> {
        let length = self.data_len();
        if length > MESSAGE_LENGTH_MAX {
            return Err(FrameError::TooLarge { length });
        }
        Ok(())
    }
}

/// Builds one request frame (header + data) for `stream_id`; refuses data over the limit.
pub fn request_frame(stream_id: u32, data: &[u8]) -> Result<Vec<u8>, FrameError> {
    let length = u32::try_from(data.len())
        .ok()
        .filter(|_| data.len() <= MESSAGE_LENGTH_MAX)
        .ok_or(FrameError::TooLarge { length: data.len() })?;
    let header = Header {
        length,
        stream_id,
        kind: TYPE_REQUEST,
        flags: 0,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(data);
    Ok(out)
}

/// Splits one complete frame off the front of `bytes`: header, data and the rest.
pub fn split_frame(bytes: &[u8]) -> Result<(Header, &[u8], &[u8]), FrameError> {
    let header = Header::decode(bytes)?;
    let body = &bytes[HEADER_LEN..];
    let want = header.data_len();
    if body.len() < want {
        return Err(FrameError::TruncatedData {
            got: body.len(),
            want,
        });
    }
    Ok((header, &body[..want], &body[want..]))
}

/// Reads exactly `length` bytes of frame data. The buffer grows with what arrives (as
/// `read_to_end` does), so a peer that announces 4 MiB and sends a few bytes costs a few bytes,
/// not a 4 MiB buffer per idle connection.
pub async fn read_data<R: AsyncRead + Unpin>(
    rd: &mut R,
    length: usize,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let want = u64::try_from(length).unwrap_or(u64::MAX);
    rd.take(want).read_to_end(&mut data).await?;
    if data.len() < length {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn request_header_for_stream_1_is_the_golden_bytes() {
        let h = Header {
            length: 110,
            stream_id: 1,
            kind: TYPE_REQUEST,
            flags: 0,
        };
        assert_eq!(hex(&h.encode()), "0000006e000000010100");
    }

    #[test]
    fn response_header_decodes() {
        let h = Header::decode(&[0, 0, 0, 2, 0, 0, 0, 1, 2, 0]).unwrap();
        assert_eq!(
            h,
            Header {
                length: 2,
                stream_id: 1,
                kind: TYPE_RESPONSE,
                flags: 0
            }
        );
    }

    #[test]
    fn header_round_trips_with_high_stream_ids() {
        let h = Header {
            length: 7,
            stream_id: u32::MAX,
            kind: TYPE_DATA,
            flags: 1,
        };
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn length_over_4_mib_is_refused_on_decode() {
        let h = Header {
            length: 4 << 20,
            stream_id: 1,
            kind: 2,
            flags: 0,
        };
        assert!(Header::decode(&h.encode()).is_ok());
        let over = Header {
            length: (4 << 20) + 1,
            ..h
        };
        assert_eq!(
            Header::decode(&over.encode()),
            Err(FrameError::TooLarge {
                length: (4 << 20) + 1
            })
        );
    }

    #[test]
    fn request_over_4_mib_is_refused_before_framing() {
        let data = vec![0u8; MESSAGE_LENGTH_MAX + 1];
        assert_eq!(
            request_frame(1, &data),
            Err(FrameError::TooLarge {
                length: MESSAGE_LENGTH_MAX + 1
            })
        );
        assert_eq!(
            request_frame(1, &data[..MESSAGE_LENGTH_MAX]).unwrap().len(),
            MESSAGE_LENGTH_MAX + HEADER_LEN
        );
    }

    #[test]
    fn truncated_header_is_reported() {
        assert_eq!(
            Header::decode(&[0, 0, 0]),
            Err(FrameError::TruncatedHeader { got: 3 })
        );
        assert_eq!(
            split_frame(&[]).unwrap_err(),
            FrameError::TruncatedHeader { got: 0 }
        );
    }

    #[test]
    fn truncated_data_is_reported() {
        let frame = request_frame(3, b"hello").unwrap();
        assert_eq!(
            split_frame(&frame[..12]).unwrap_err(),
            FrameError::TruncatedData { got: 2, want: 5 }
        );
    }

    #[test]
    fn split_frame_returns_the_rest() {
        let mut two = request_frame(1, b"ab").unwrap();
        two.extend(request_frame(3, b"cde").unwrap());
        let (h1, d1, rest) = split_frame(&two).unwrap();
        assert_eq!((h1.stream_id, d1), (1, &b"ab"[..]));
        let (h2, d2, rest) = split_frame(rest).unwrap();
        assert_eq!((h2.stream_id, d2, rest.len()), (3, &b"cde"[..], 0));
    }
}
