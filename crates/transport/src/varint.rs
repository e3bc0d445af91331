//! Protobuf base-128 varints (protobuf.dev/programming-guides/encoding/#varints): the one writer
//! and reader behind the hand-encoded ttrpc envelope (`wire.rs`, `server_wire.rs`) and the
//! watch crate's CopyFile requests.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// The bytes ended inside the varint.
    #[error("truncated varint")]
    Truncated,
    /// More than ten bytes (64 bits) of continuation.
    #[error("varint too long")]
    TooLong,
}

impl VarintError {
    /// The message, for the envelope decoders' static-string errors.
    pub fn as_str(self) -> &'static str {
        match self {
            VarintError::Truncated => "truncated varint",
            VarintError::TooLong => "varint too long",
        }
    }
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap_or(0) | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap_or(0));
}

/// Appends an `int32`/`int64` field value: negative values are sign-extended to 64 bits (ten
/// bytes), as protobuf encodes them.
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, u64::from_ne_bytes(v.to_ne_bytes()));
}

/// Appends a length-delimited field (`tag`, length, bytes), empty ones included.
pub fn put_len_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(bytes);
}

/// Reads one varint off the front of `bytes`, advancing it.
pub fn read_varint(bytes: &mut &[u8]) -> Result<u64, VarintError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(VarintError::Truncated)?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn golden_bytes_from_the_protobuf_guide() {
        assert_eq!(encoded(1), [0x01]);
        assert_eq!(encoded(150), [0x96, 0x01]);
        assert_eq!(encoded(300), [0xac, 0x02]);
    }

    #[test]
    fn negative_int32_takes_ten_bytes() {
        let mut out = Vec::new();
        put_signed(&mut out, -1);
        assert_eq!(
            out,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn round_trips_boundaries_and_advances() {
        for v in [0, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut bytes = encoded(v);
            bytes.push(0xee);
            let mut rest = &bytes[..];
            assert_eq!(read_varint(&mut rest), Ok(v));
            assert_eq!(rest, [0xee]);
        }
    }

    #[test]
    fn truncated_and_overlong_are_refused() {
        assert_eq!(
            read_varint(&mut &[0x80, 0x80][..]),
            Err(VarintError::Truncated)
        );
        assert_eq!(read_varint(&mut &[0xff; 11][..]), Err(VarintError::TooLong));
    }
}
