//! The server half of the ttrpc envelope: decoding `ttrpc.Request` (metadata is skipped) and
//! encoding `ttrpc.Response`, by hand like the client half in `wire.rs`.

use crate::varint::{put_len_field, put_signed, read_varint};
use crate::wire::Status;

/// A decoded `ttrpc.Request`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    pub service: String,
    pub method: String,
    pub payload: Vec<u8>,
    /// The client's deadline in nanoseconds; 0 = none.
    pub timeout_nano: i64,
}

/// A request the server cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ttrpc request: {0}")]
pub struct RequestError(pub &'static str);

fn varint(bytes: &mut &[u8]) -> Result<u64, RequestError> {
    read_varint(bytes).map_err(|e| RequestError(e.as_str()))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], RequestError> {
    if n > bytes.len() {
        return Err(RequestError("truncated field"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn len_field<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], RequestError> {
    let n = usize::try_from(varint(bytes)?).map_err(|_| RequestError("length overflow"))?;
    take(bytes, n)
}

fn text(b: &[u8]) -> Result<String, RequestError> {
    String::from_utf8(b.to_vec()).map_err(|_| RequestError("service or method is not UTF-8"))
}

impl Incoming {
    /// Decodes a request; unknown fields (metadata = 5) are skipped.
    pub fn decode(mut bytes: &[u8]) -> Result<Incoming, RequestError> {
        let mut req = Incoming::default();
        let b = &mut bytes;
        while !b.is_empty() {
            let key = varint(b)?;
            match (key >> 3, key & 7) {
                (1, 2) => req.service = text(len_field(b)?)?,
                (2, 2) => req.method = text(len_field(b)?)?,
                (3, 2) => req.payload = len_field(b)?.to_vec(),
                (4, 0) => req.timeout_nano = i64::from_ne_bytes(varint(b)?.to_ne_bytes()),
                (_, 0) => drop(varint(b)?),
                (_, 1) => drop(take(b, 8)?),
                (_, 2) => drop(len_field(b)?),
                (_, 5) => drop(take(b, 4)?),
                _ => return Err(RequestError("unsupported wire type")),
            }
        }
        Ok(req)
    }
}

/// Encodes a `ttrpc.Response`. The status is always present (`0a00` when OK), as containerd's
/// Go server sends it; an error response carries no payload.
pub fn encode_response(result: &Result<Vec<u8>, Status>) -> Vec<u8> {
    let mut out = Vec::new();
    match result {
        Ok(payload) => {
            put_len_field(&mut out, 0x0a, &[]);
            if !payload.is_empty() {
                put_len_field(&mut out, 0x12, payload);
            }
        }
        Err(status) => {
            let mut s = Vec::new();
            if status.code != 0 {
                s.push(0x08);
                // int32: negative values are sign-extended to 10 bytes, as protobuf does.
                put_signed(&mut s, i64::from(status.code));
            }
            if !status.message.is_empty() {
                put_len_field(&mut s, 0x12, status.message.as_bytes());
            }
            put_len_field(&mut out, 0x0a, &s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Request, Response};

    #[test]
    fn request_round_trips_through_the_client_encoder() {
        let payload = [1u8, 2, 3];
        let bytes = Request {
            service: "containerd.task.v2.Task",
            method: "State",
            payload: &payload,
            timeout_nano: 5_000_000_000,
        }
        .encode();
        let req = Incoming::decode(&bytes).unwrap();
        assert_eq!(req.service, "containerd.task.v2.Task");
        assert_eq!(req.method, "State");
        assert_eq!(req.payload, payload);
        assert_eq!(req.timeout_nano, 5_000_000_000);
    }

    #[test]
    fn metadata_is_skipped() {
        // service "s", metadata { key "containerd-namespace-ttrpc", value "default" }, method "m"
        let md = [
            &[0x0a, 26][..],
            b"containerd-namespace-ttrpc",
            &[0x12, 7],
            b"default",
        ]
        .concat();
        let mut bytes = vec![0x0a, 1, b's', 0x2a, u8::try_from(md.len()).unwrap()];
        bytes.extend(md);
        bytes.extend([0x12, 1, b'm']);
        let req = Incoming::decode(&bytes).unwrap();
        assert_eq!((req.service.as_str(), req.method.as_str()), ("s", "m"));
    }

    #[test]
    fn truncated_request_is_refused() {
        assert!(Incoming::decode(&[0x0a, 5, b'a']).is_err());
        assert!(Incoming::decode(&[0x0b]).is_err());
    }

    #[test]
    fn ok_response_is_golden_and_decodes() {
        let bytes = encode_response(&Ok(b"hi".to_vec()));
        assert_eq!(bytes, [0x0a, 0x00, 0x12, 0x02, b'h', b'i']);
        let res = Response::decode(&bytes).unwrap();
        assert_eq!(res.payload, b"hi");
        assert_eq!(res.status.unwrap().code, 0);
    }

    #[test]
    fn error_response_decodes_with_negative_codes_too() {
        for code in [5, -1] {
            let status = Status {
                code,
                message: "nope".into(),
            };
            let res = Response::decode(&encode_response(&Err(status.clone()))).unwrap();
            assert_eq!(res.status, Some(status));
            assert!(res.payload.is_empty());
        }
    }
}
