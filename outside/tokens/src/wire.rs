//! What the wire parsers share: the error enum, a bounds-checked reader and the QUIC-style
//! variable-length integer of draft-ietf-privacypass-batched-tokens §4.2.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Why bytes were refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the format needs.
    #[error("truncated")]
    Truncated,
    /// Bytes left over after the structure.
    #[error("trailing bytes")]
    TrailingBytes,
    /// A token type other than 0x0002 where only 0x0002 is understood.
    #[error("unsupported token type")]
    UnsupportedTokenType,
    /// A length field or item count exceeds its bound.
    #[error("length exceeds its bound")]
    TooLong,
    /// A field holds a value the format forbids.
    #[error("malformed field")]
    Malformed,
    /// A batch with no entries.
    #[error("empty batch")]
    EmptyBatch,
    /// Text that is not the canonical base64url the format uses.
    #[error("bad base64url")]
    BadBase64,
}

/// A cursor over input bytes; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    /// Refuse leftover bytes.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes)
        }
    }

    /// A variable-length integer (RFC 9000 §16), minimal encoding required.
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut value = u64::from(first & 0x3f);
        for &b in self.take(len - 1)? {
            value = (value << 8) | u64::from(b);
        }
        if varint_len(value) != len {
            return Err(WireError::Malformed);
        }
        Ok(value)
    }
}

/// Bytes the minimal varint encoding of `value` takes.
fn varint_len(value: u64) -> usize {
    match value {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

/// Append the minimal varint encoding of `value` (at most 2^62 - 1; callers bound it far lower).
pub(crate) fn put_varint(out: &mut Vec<u8>, value: u64) {
    debug_assert!(value < 1 << 62);
    let len = varint_len(value);
    let tag = (len.trailing_zeros() as u64) << (8 * len - 2);
    out.extend_from_slice(&(value | tag).to_be_bytes()[8 - len..]);
}

/// base64url without padding, refusing padding and non-canonical trailing bits.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// base64url that accepts the padded form too (RFC 9578 §4 directory keys are written padded).
const B64URL_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn b64url_encode(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// Base64url with padding (RFC 4648 §5 as written): the form RFC 9577 header parameters and the
/// RFC 9578 directory carry, and what other implementations (privacypass-ts) insist on.
pub(crate) fn b64url_encode_padded(bytes: &[u8]) -> String {
    let mut text = b64url_encode(bytes);
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    text
}

/// Decode unpadded base64url; `max_len` bounds the decoded size before any allocation.
pub(crate) fn b64url_decode(text: &str, max_len: usize) -> Result<Vec<u8>, WireError> {
    if text.len() > max_len.div_ceil(3) * 4 {
        return Err(WireError::TooLong);
    }
    B64URL.decode(text).map_err(|_| WireError::BadBase64)
}

/// Decode base64url with or without padding; `max_len` bounds the decoded size.
pub(crate) fn b64url_decode_any_pad(text: &str, max_len: usize) -> Result<Vec<u8>, WireError> {
    if text.len() > max_len.div_ceil(3) * 4 {
        return Err(WireError::TooLong);
    }
    B64URL_ANY_PAD
        .decode(text)
        .map_err(|_| WireError::BadBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_minimal() {
        for v in [
            0u64,
            1,
            0x3f,
            0x40,
            0x137,
            0x3fff,
            0x4000,
            0x3fff_ffff,
            0x4000_0000,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), v);
            r.finish().unwrap();
        }
        // The batched-tokens draft's example length prefix.
        let mut out = Vec::new();
        put_varint(&mut out, 311);
        assert_eq!(out, [0x41, 0x37]);
    }

    #[test]
    fn varint_refuses_non_minimal_and_truncated() {
        assert_eq!(
            Reader::new(&[0x40, 0x01]).varint(),
            Err(WireError::Malformed)
        );
        assert_eq!(Reader::new(&[0x41]).varint(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url_decode("-_8", 16).unwrap(), [0xfb, 0xff]);
        assert_eq!(b64url_decode("-_8=", 16), Err(WireError::BadBase64));
        assert_eq!(b64url_decode("+/8", 16), Err(WireError::BadBase64));
        // Non-zero trailing bits are not canonical.
        assert_eq!(b64url_decode("-_9", 16), Err(WireError::BadBase64));
        assert_eq!(b64url_decode(&"A".repeat(100), 16), Err(WireError::TooLong));
        assert_eq!(b64url_decode_any_pad("-_8=", 16).unwrap(), [0xfb, 0xff]);
    }
}
