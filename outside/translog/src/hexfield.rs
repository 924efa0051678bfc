//! Fixed-length lowercase hex fields of the JSON forms: one canonical spelling per value, so a
//! parsed value re-emits to the same text.

/// Why a hex field of a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexFieldError {
    /// The field holds something other than lowercase hex digits.
    #[error(
        "field `{field}` is not lowercase hex: send it as produced by the log, without prefix or spaces"
    )]
    NotLowercaseHex {
        /// The JSON field name.
        field: &'static str,
    },
    /// The field decodes to the wrong number of bytes.
    #[error(
        "field `{field}` has {got} hex digits, expected {expected}: the value is truncated or is not this kind of value"
    )]
    WrongLength {
        /// The JSON field name.
        field: &'static str,
        /// Hex digits expected.
        expected: usize,
        /// Hex digits found.
        got: usize,
    },
}

/// Decodes `text` as exactly `N` bytes of lowercase hex.
pub(crate) fn decode<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], HexFieldError> {
    if text.len() != 2 * N {
        return Err(HexFieldError::WrongLength {
            field,
            expected: 2 * N,
            got: text.len(),
        });
    }
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(HexFieldError::NotLowercaseHex { field });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| HexFieldError::NotLowercaseHex { field })?;
    Ok(out)
}
