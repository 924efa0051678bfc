//! Padding of the plaintext inside every sealed request and response, so that a sealed message's
//! length says only which size bucket its body fell in, not how long the thread is.
//!
//! ```text
//! padded = u32be(body length) || body || zero bytes, to exactly one bucket size
//! buckets: 1 KiB, 2 KiB, 4 KiB, … 512 KiB (powers of two), then MAX_PADDED
//! ```
//!
//! The padded plaintext is what HPKE seals (RFC 9458 encapsulation), so the length field and the
//! padding are authenticated with the body. [`unpad`] refuses a padded plaintext whose length is
//! not the body's own bucket, whose length field points past it, or whose padding is not all zero.
//! docs/protocol.md §4 states the same rule.

use alloc::vec::Vec;

use crate::frame::MAX_PAYLOAD;
use crate::{Error, Result};

/// Bytes of the length field in front of the body.
pub const LEN_FIELD: usize = 4;
/// The smallest bucket (1 KiB): every sealed body is padded to at least this.
pub const MIN_BUCKET: usize = 1024;
/// Room kept in a frame for the sealing around a padded plaintext: at least the largest overhead
/// of RFC 9458 encapsulation this protocol uses (request: 7-byte header, 32-byte X25519 key,
/// 16-byte tag; response: 32-byte nonce, 16-byte tag).
pub const SEAL_ROOM: usize = 64;
/// The largest bucket: what fits a frame ([`MAX_PAYLOAD`]) with the sealing around it. Every
/// other bucket is a power of two below it.
pub const MAX_PADDED: usize = MAX_PAYLOAD - SEAL_ROOM;
/// The longest body that can be padded.
pub const MAX_BODY: usize = MAX_PADDED - LEN_FIELD;

/// The padded size for a body of `body_len` bytes: the smallest bucket that holds the length
/// field and the body. `None` if it exceeds [`MAX_BODY`].
pub fn bucket(body_len: usize) -> Option<usize> {
    let needed = body_len.checked_add(LEN_FIELD)?;
    if needed > MAX_PADDED {
        return None;
    }
    let power = needed.max(MIN_BUCKET).next_power_of_two();
    Some(power.min(MAX_PADDED))
}

/// True if `len` is one of the bucket sizes.
pub fn is_bucket(len: usize) -> bool {
    len == MAX_PADDED || ((MIN_BUCKET..MAX_PADDED).contains(&len) && len.is_power_of_two())
}

/// Pads `body` into a new buffer of exactly its bucket's size, allocated once (a buffer that grew
/// would leave copies of the body in the blocks it left). [`Error::TooLong`] past [`MAX_BODY`].
pub fn pad(body: &[u8]) -> Result<Vec<u8>> {
    let size = bucket(body.len()).ok_or(Error::TooLong)?;
    let len = u32::try_from(body.len()).map_err(|_| Error::TooLong)?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.resize(size, 0);
    Ok(out)
}

/// The body inside a padded plaintext. Refused ([`Error::Malformed`]) unless the length is the
/// body's own bucket (the smallest that holds it: one padded form per body, as [`pad`] writes),
/// the length field fits, and every padding byte is zero.
pub fn unpad(padded: &[u8]) -> Result<&[u8]> {
    if !is_bucket(padded.len()) {
        return Err(Error::Malformed);
    }
    let (field, rest) = padded.split_at(LEN_FIELD);
    let len: [u8; LEN_FIELD] = field.try_into().map_err(|_| Error::Truncated)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > rest.len() || bucket(len) != Some(padded.len()) {
        return Err(Error::Malformed);
    }
    let (body, padding) = rest.split_at(len);
    if padding.iter().any(|&b| b != 0) {
        return Err(Error::Malformed);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn buckets_are_powers_of_two_from_1_kib_then_the_maximum() {
        assert_eq!(bucket(0), Some(1024));
        assert_eq!(bucket(1020), Some(1024));
        assert_eq!(bucket(1021), Some(2048));
        assert_eq!(bucket(300_000), Some(512 * 1024));
        assert_eq!(bucket(512 * 1024 - 4), Some(512 * 1024));
        assert_eq!(bucket(512 * 1024), Some(MAX_PADDED));
        assert_eq!(bucket(MAX_BODY), Some(MAX_PADDED));
        assert_eq!(bucket(MAX_BODY + 1), None);
        for len in [0, 1, 1500, 70_000, MAX_BODY] {
            assert!(is_bucket(bucket(len).unwrap()), "{len}");
        }
        assert!(!is_bucket(1023) && !is_bucket(1536) && !is_bucket(MAX_PAYLOAD));
    }

    #[test]
    fn round_trips_at_every_size_class() {
        for len in [0, 5, 1020, 1021, 4096, 512 * 1024, MAX_BODY] {
            let body = vec![0xA7; len];
            let padded = pad(&body).unwrap();
            assert_eq!(padded.len(), bucket(len).unwrap());
            assert_eq!(padded.capacity(), padded.len(), "allocated once");
            assert_eq!(unpad(&padded).unwrap(), &body[..]);
        }
        assert_eq!(pad(&vec![0; MAX_BODY + 1]), Err(Error::TooLong));
    }

    #[test]
    fn refuses_non_zero_padding_and_bad_lengths() {
        let good = pad(b"{\"a\":1}").unwrap();
        let mut dirty = good.clone();
        *dirty.last_mut().unwrap() = 1;
        assert_eq!(unpad(&dirty), Err(Error::Malformed));
        let mut long_field = good.clone();
        long_field[..4].copy_from_slice(&(1021u32).to_be_bytes());
        assert_eq!(unpad(&long_field), Err(Error::Malformed));
        assert_eq!(unpad(&good[..1000]), Err(Error::Malformed));
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(unpad(&extra), Err(Error::Malformed));
        assert_eq!(unpad(b"{\"a\":1}"), Err(Error::Malformed));
    }

    #[test]
    fn refuses_padding_past_the_bodys_own_bucket() {
        // A 7-byte body belongs in 1 KiB; the same body padded to 2 KiB is not its form.
        let body = b"{\"a\":1}";
        let mut over = vec![0u8; 2048];
        over[..4].copy_from_slice(&(body.len() as u32).to_be_bytes());
        over[4..4 + body.len()].copy_from_slice(body);
        assert_eq!(unpad(&over), Err(Error::Malformed));
        // The body that needs 2 KiB is accepted there.
        let big = vec![1u8; 1021];
        assert_eq!(unpad(&pad(&big).unwrap()).unwrap(), &big[..]);
    }
}
