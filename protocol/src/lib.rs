//! Wire formats of the Private Processing session, shared by the enclave and the device.
//!
//! Parsing happens once, here, in the smoltcp `wire` style: for each format a checked view over
//! bytes (`new_checked` validates what is needed to read it without panicking; accessors never
//! panic) and a plain `Repr` that `parse`s (validating everything) and `emit`s. No I/O, no crypto,
//! no allocation in the views. See `docs/protocol.md` for the session these frames carry. With the
//! `std` feature, [`io`] reads and writes frames on a stream for both ends.
#![no_std]

extern crate alloc;

pub mod app;
pub mod cdn_index;
pub mod evidence;
pub mod frame;
#[cfg(feature = "std")]
pub mod io;
pub mod key_config;
pub mod padding;

/// The TLS server name (SNI) a device sends when it opens a session with an enclave. The enclave's
/// certificate is self-signed and made at boot, so the name is not checked against anything:
/// trust comes from the attestation. One name for every device, so it singles out nobody.
pub const ENCLAVE_SERVER_NAME: &str = "enclave.pp.invalid";

/// How long an enclave HPKE key is the current one, in seconds of the enclave's monotonic clock
/// (docs/protocol.md §8): then a new key is made, the old one stays open one more period as the
/// previous key, and the one before is dropped. A constant of the measured image.
pub const KEY_PERIOD_SECS: u64 = 3600;
/// Slack on top of [`KEY_PERIOD_SECS`] for the age of a logged key CDN index: a device refuses
/// an index published longer ago than the sum (freshness without a nonce).
pub const KEY_SLACK_SECS: u64 = 900;

/// Why bytes were refused. Carries no peer data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer bytes than the format needs.
    Truncated,
    /// A length field exceeds its bound.
    TooLong,
    /// Bytes left over after the structure.
    TrailingBytes,
    /// Wrong magic number.
    BadMagic,
    /// A protocol version this code does not speak.
    UnsupportedVersion(u8),
    /// A field holds a value the format forbids.
    Malformed,
    /// The output buffer is too small for `emit`.
    BufferTooSmall,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated"),
            Self::TooLong => f.write_str("length exceeds its bound"),
            Self::TrailingBytes => f.write_str("trailing bytes"),
            Self::BadMagic => f.write_str("bad magic"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            Self::Malformed => f.write_str("malformed field"),
            Self::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
