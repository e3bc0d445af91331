//! The ttrpc envelope messages (package `ttrpc`: `Request`, `Response`, `Status`) encoded by
//! hand: five fields are not worth a protobuf code generator in this crate. The encoding is
//! proto3-canonical (default values omitted), which the golden bytes below pin down.

use crate::varint::{put_len_field, put_signed, put_varint, read_varint};

/// `ttrpc.Request` as the client sends it (no metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub payload: &'a [u8],
    pub timeout_nano: i64,
}

/// `ttrpc.Status` (google.rpc.Status field numbers); details are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub code: i32,
    pub message: String,
}

/// `ttrpc.Response`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: Option<Status>,
    pub payload: Vec<u8>,
}

/// A response the client cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ttrpc response: {0}")]
pub struct DecodeError(pub &'static str);

/// Proto3 omits empty fields.
fn put_nonempty(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_field(out, tag, bytes);
    }
}

/// The envelope of a request whose payload is `payload_len` bytes sent separately: the bytes
/// before the payload and the bytes after it, so `head + payload + tail` equals
/// [`Request::encode`] of the same request without copying the payload.
pub fn request_envelope(
    service: &str,
    method: &str,
    payload_len: usize,
    timeout_nano: i64,
) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::with_capacity(service.len() + method.len() + 16);
    put_nonempty(&mut head, 0x0a, service.as_bytes());
    put_nonempty(&mut head, 0x12, method.as_bytes());
    if payload_len > 0 {
        head.push(0x1a);
        put_varint(&mut head, u64::try_from(payload_len).unwrap_or(u64::MAX));
    }
    let mut tail = Vec::new();
    if timeout_nano != 0 {
        tail.push(0x20);
        put_signed(&mut tail, timeout_nano);
    }
    (head, tail)
}

impl Request<'_> {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.service.len() + self.method.len() + self.payload.len() + 24);
        put_nonempty(&mut out, 0x0a, self.service.as_bytes());
        put_nonempty(&mut out, 0x12, self.method.as_bytes());
        put_nonempty(&mut out, 0x1a, self.payload);
        if self.timeout_nano != 0 {
            out.push(0x20);
            put_signed(&mut out, self.timeout_nano);
        }
        out
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        read_varint(&mut self.0).map_err(|e| DecodeError(e.as_str()))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        if len > self.0.len() {
            return Err(DecodeError("truncated field"));
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    /// Skips a field of `wire` type.
    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        let n = match wire {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.bytes().map(drop),
            5 => 4,
            _ => return Err(DecodeError("unsupported wire type")),
        };
        if self.0.len() < n {
            return Err(DecodeError("truncated fixed field"));
        }
        self.0 = &self.0[n..];
        Ok(())
    }

    /// Next (field number, wire type), or None at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>, DecodeError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }
}

fn decode_status(bytes: &[u8]) -> Result<Status, DecodeError> {
    let mut r = Reader(bytes);
    let mut status = Status::default();
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 0) => {
                // int32 on the wire: negative values are sign-extended to 64 bits.
                let low = u32::try_from(r.varint()? & 0xffff_ffff).unwrap_or(0);
                status.code = i32::from_ne_bytes(low.to_ne_bytes());
            }
            (2, 2) => status.message = String::from_utf8_lossy(r.bytes()?).into_owned(),
            _ => r.skip(wire)?,
        }
    }
    Ok(status)
}

impl Response {
    /// Decodes a response.
    pub fn decode(bytes: &[u8]) -> Result<Response, DecodeError> {
        let mut r = Reader(bytes);
        let mut res = Response::default();
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 2) => res.status = Some(decode_status(r.bytes()?)?),
                (2, 2) => res.payload = r.bytes()?.to_vec(),
                _ => r.skip(wire)?,
            }
        }
        Ok(res)
    }
}

/// Name of a google.rpc.Code value, for messages.
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN_CODE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const PATH_HEX: &str = "0a3d2f72756e2f6b6174612d636f6e7461696e6572732f7368617265642f636f6e7461696e6572732f63312d303031313232333334343535363637372d636d";

    #[test]
    fn copy_file_request_envelope_is_the_golden_110_bytes() {
        let payload = unhex(&format!("{PATH_HEX}100218a4830242026869"));
        assert_eq!(payload.len(), 73);
        let req = Request {
            service: "grpc.AgentService",
            method: "CopyFile",
            payload: &payload,
            timeout_nano: 30_000_000_000,
        };
        let bytes = req.encode();
        let want = unhex(&format!(
            "0a11677270632e4167656e74536572766963651208436f707946696c651a49{PATH_HEX}100218a48302420268692080d88ee16f"
        ));
        assert_eq!(bytes.len(), 110);
        assert_eq!(bytes, want);
    }

    #[test]
    fn envelope_around_a_separate_payload_is_the_encoded_request() {
        for (payload, timeout_nano) in [
            (&b"payload bytes"[..], 30_000_000_000),
            (&b""[..], 0),
            (&[7u8; 300][..], -1),
        ] {
            let (head, tail) =
                request_envelope("grpc.AgentService", "CopyFile", payload.len(), timeout_nano);
            let whole = [head, payload.to_vec(), tail].concat();
            let req = Request {
                service: "grpc.AgentService",
                method: "CopyFile",
                payload,
                timeout_nano,
            };
            assert_eq!(whole, req.encode());
        }
    }

    #[test]
    fn zero_timeout_and_empty_payload_are_omitted() {
        let req = Request {
            service: "grpc.Health",
            method: "Check",
            payload: &[],
            timeout_nano: 0,
        };
        assert_eq!(
            req.encode(),
            unhex("0a0b677270632e4865616c74681205436865636b")
        );
    }

    #[test]
    fn ok_response_with_explicit_status_decodes() {
        assert_eq!(
            Response::decode(&unhex("0a00")).unwrap(),
            Response {
                status: Some(Status::default()),
                payload: vec![]
            }
        );
        assert_eq!(Response::decode(&[]).unwrap(), Response::default());
    }

    #[test]
    fn error_status_decodes_code_and_message_and_skips_details() {
        // status { code: 5, message: "nope", details: [Any { type_url: "xy" }] }, payload "hi"
        let bytes = unhex("0a0e080512046e6f70651a040a027879");
        let bytes = [bytes, unhex("12026869")].concat();
        let res = Response::decode(&bytes).unwrap();
        assert_eq!(
            res.status,
            Some(Status {
                code: 5,
                message: "nope".into()
            })
        );
        assert_eq!(res.payload, b"hi");
    }

    #[test]
    fn negative_status_code_decodes() {
        // code: -1 as a 10-byte varint
        let status = unhex("08ffffffffffffffffff01");
        let mut bytes = vec![0x0a, u8::try_from(status.len()).unwrap()];
        bytes.extend(status);
        assert_eq!(Response::decode(&bytes).unwrap().status.unwrap().code, -1);
    }

    #[test]
    fn truncated_response_is_an_error() {
        assert!(Response::decode(&unhex("0a05")).is_err());
        assert!(Response::decode(&unhex("12ff")).is_err());
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN_CODE");
        assert_eq!(code_name(-1), "UNKNOWN_CODE");
    }
}
