//! The evidence bundle the enclave sends after the device's nonce (or the operator's publication
//! request).
//!
//! ```text
//! version (1) | report: u16 len + 1184 bytes | VCEK DER: u16 len + bytes | ASK DER | ARK DER
//!             | key configuration (RFC 9458): u16 len + bytes | release_ref (32)
//! ```
//! Lengths are big-endian. The report's `report_data` binds this session (see docs/protocol.md).
//! `release_ref` names the release the enclave was built as: the sha256 over the hashes of the
//! build's pinned inputs, as the release manifest records it (not the hash of `manifest.json`).

use alloc::vec::Vec;

use crate::{Error, Result};

pub const VERSION: u8 = 1;
/// An SEV-SNP attestation report (ABI spec 56860).
pub const REPORT_LEN: usize = 1184;
/// Largest certificate accepted (AMD's are under 2 KiB).
pub const MAX_CERT_LEN: usize = 8 * 1024;
/// Largest key configuration accepted.
pub const MAX_KEY_CONFIG_LEN: usize = 1024;
/// Length of the release reference (a sha256).
pub const RELEASE_REF_LEN: usize = 32;
/// The largest valid bundle: what a reader may allocate for one before parsing it.
pub const MAX_LEN: usize =
    1 + (2 + REPORT_LEN) + 3 * (2 + MAX_CERT_LEN) + (2 + MAX_KEY_CONFIG_LEN) + RELEASE_REF_LEN;

mod field {
    /// The version byte.
    pub const VERSION: usize = 0;
    /// Where the first length-prefixed field starts.
    pub const FIELDS: usize = 1;
    /// The variable-length fields, in wire order, with their bounds (min, max).
    pub const BOUNDS: [(usize, usize); 5] = [
        (super::REPORT_LEN, super::REPORT_LEN),
        (1, super::MAX_CERT_LEN),
        (1, super::MAX_CERT_LEN),
        (1, super::MAX_CERT_LEN),
        (1, super::MAX_KEY_CONFIG_LEN),
    ];
    pub const REPORT: usize = 0;
    pub const VCEK: usize = 1;
    pub const ASK: usize = 2;
    pub const ARK: usize = 3;
    pub const KEY_CONFIG: usize = 4;
}

/// A checked view over an encoded bundle. The field walk happens once, in [`Self::check_len`];
/// the accessors then never panic.
#[derive(Debug, Clone)]
pub struct Evidence<T: AsRef<[u8]>> {
    buffer: T,
    /// Byte ranges of the five variable fields, found by `check_len`.
    spans: [(usize, usize); 5],
}

impl<T: AsRef<[u8]>> Evidence<T> {
    /// Wrap bytes without checks; call [`Self::check_len`] before using the accessors.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self {
            buffer,
            spans: [(0, 0); 5],
        }
    }

    /// Wrap bytes holding exactly one bundle, walking and bound-checking every field.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let mut view = Self::new_unchecked(buffer);
        view.check_len()?;
        Ok(view)
    }

    /// Check the version, every length against its bound, and that nothing trails the bundle;
    /// records where each field lies.
    pub fn check_len(&mut self) -> Result<()> {
        let data = self.buffer.as_ref();
        let version = *data.get(field::VERSION).ok_or(Error::Truncated)?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let mut pos = field::FIELDS;
        // Recorded only when every field checks out: a failed check leaves no half-filled view.
        let mut spans = [(0, 0); 5];
        for (span, (min, max)) in spans.iter_mut().zip(field::BOUNDS) {
            let len_bytes: [u8; 2] = data
                .get(pos..pos + 2)
                .ok_or(Error::Truncated)?
                .try_into()
                .map_err(|_| Error::Truncated)?;
            let len = usize::from(u16::from_be_bytes(len_bytes));
            if len > max {
                return Err(Error::TooLong);
            }
            if len < min {
                return Err(Error::Malformed);
            }
            pos += 2;
            if data.len() < pos + len {
                return Err(Error::Truncated);
            }
            *span = (pos, pos + len);
            pos += len;
        }
        match data.len().cmp(&(pos + RELEASE_REF_LEN)) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Greater => Err(Error::TrailingBytes),
            core::cmp::Ordering::Equal => {
                self.spans = spans;
                Ok(())
            }
        }
    }

    fn span(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        self.buffer.as_ref().get(a..b).unwrap_or_default()
    }

    pub fn report(&self) -> &[u8] {
        self.span(field::REPORT)
    }
    pub fn vcek(&self) -> &[u8] {
        self.span(field::VCEK)
    }
    pub fn ask(&self) -> &[u8] {
        self.span(field::ASK)
    }
    pub fn ark(&self) -> &[u8] {
        self.span(field::ARK)
    }
    pub fn key_config(&self) -> &[u8] {
        self.span(field::KEY_CONFIG)
    }
    /// The release the enclave states it was built as (signed inside `report_data`).
    pub fn release_ref(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(data.len().saturating_sub(RELEASE_REF_LEN)..)
            .unwrap_or_default()
    }
}

/// The bundle as plain data, borrowing the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRepr<'a> {
    pub report: &'a [u8],
    pub vcek: &'a [u8],
    pub ask: &'a [u8],
    pub ark: &'a [u8],
    pub key_config: &'a [u8],
    pub release_ref: [u8; RELEASE_REF_LEN],
}

impl<'a> EvidenceRepr<'a> {
    /// Parse a checked view; the repr borrows the view's bytes.
    pub fn parse(view: &Evidence<&'a [u8]>) -> Result<Self> {
        let data: &'a [u8] = view.buffer;
        let span = |i: usize| -> Result<&'a [u8]> {
            let (a, b) = view.spans[i];
            data.get(a..b).ok_or(Error::Truncated)
        };
        let report = span(field::REPORT)?;
        if report.len() != REPORT_LEN {
            // A view whose `check_len` was never called.
            return Err(Error::Truncated);
        }
        Ok(Self {
            report,
            vcek: span(field::VCEK)?,
            ask: span(field::ASK)?,
            ark: span(field::ARK)?,
            key_config: span(field::KEY_CONFIG)?,
            release_ref: view
                .release_ref()
                .try_into()
                .map_err(|_| Error::Truncated)?,
        })
    }

    /// Check bytes and parse them in one step.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        Self::parse(&Evidence::new_checked(bytes)?)
    }

    fn fields(&self) -> [&'a [u8]; 5] {
        [self.report, self.vcek, self.ask, self.ark, self.key_config]
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        1 + self.fields().iter().map(|f| 2 + f.len()).sum::<usize>() + RELEASE_REF_LEN
    }

    /// Write the bundle into `buf` (at least [`Self::buffer_len`] bytes), checking the same bounds
    /// `check_len` enforces; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.buffer_len();
        let out = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        out[field::VERSION] = VERSION;
        let mut pos = field::FIELDS;
        for (value, (min, max)) in self.fields().iter().zip(field::BOUNDS) {
            if value.len() > max {
                return Err(Error::TooLong);
            }
            if value.len() < min {
                return Err(Error::Malformed);
            }
            let len = u16::try_from(value.len()).map_err(|_| Error::TooLong)?;
            out[pos..pos + 2].copy_from_slice(&len.to_be_bytes());
            out[pos + 2..pos + 2 + value.len()].copy_from_slice(value);
            pos += 2 + value.len();
        }
        out[pos..].copy_from_slice(&self.release_ref);
        Ok(total)
    }

    /// `emit` into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = alloc::vec![0u8; self.buffer_len()];
        self.emit(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(report: &[u8]) -> EvidenceRepr<'_> {
        EvidenceRepr {
            report,
            vcek: b"vcek-der",
            ask: b"ask",
            ark: b"ark",
            key_config: b"\x01\x00\x20",
            release_ref: [9; 32],
        }
    }

    #[test]
    fn round_trips() {
        let report = [0xab; REPORT_LEN];
        let repr = sample(&report);
        let bytes = repr.to_vec().unwrap();
        assert_eq!(bytes.len(), repr.buffer_len());
        let view = Evidence::new_checked(&bytes[..]).unwrap();
        assert_eq!(view.release_ref(), &[9; 32]);
        assert_eq!(view.key_config(), b"\x01\x00\x20");
        assert_eq!(EvidenceRepr::parse(&view).unwrap(), repr);
        assert_eq!(EvidenceRepr::from_bytes(&bytes).unwrap(), repr);
    }

    #[test]
    fn the_largest_bundle_is_max_len() {
        let report = [1; REPORT_LEN];
        let cert = [2; MAX_CERT_LEN];
        let key_config = [3; MAX_KEY_CONFIG_LEN];
        let repr = EvidenceRepr {
            report: &report,
            vcek: &cert,
            ask: &cert,
            ark: &cert,
            key_config: &key_config,
            release_ref: [4; 32],
        };
        assert_eq!(repr.to_vec().unwrap().len(), MAX_LEN);
    }

    #[test]
    fn an_unchecked_view_neither_panics_nor_parses() {
        let view = Evidence::new_unchecked(&[1u8, 2, 3][..]);
        assert_eq!(view.report(), b"");
        assert_eq!(EvidenceRepr::parse(&view).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn a_failed_check_leaves_the_view_unparseable() {
        let report = [0xab; REPORT_LEN];
        let mut bytes = sample(&report).to_vec().unwrap();
        bytes.push(0);
        let mut view = Evidence::new_unchecked(&bytes[..]);
        assert_eq!(view.check_len().unwrap_err(), Error::TrailingBytes);
        assert_eq!(EvidenceRepr::parse(&view).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn emit_refuses_a_short_buffer() {
        let report = [0xab; REPORT_LEN];
        let repr = sample(&report);
        let mut buf = alloc::vec![0; repr.buffer_len() - 1];
        assert_eq!(repr.emit(&mut buf).unwrap_err(), Error::BufferTooSmall);
    }

    #[test]
    fn refuses_bad_bundles() {
        let report = [0xab; REPORT_LEN];
        let bytes = sample(&report).to_vec().unwrap();
        for cut in [0, 1, 2, 100, bytes.len() - 1] {
            assert_eq!(
                Evidence::new_checked(&bytes[..cut]).unwrap_err(),
                Error::Truncated,
                "cut at {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            Evidence::new_checked(&extra[..]).unwrap_err(),
            Error::TrailingBytes
        );
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(
            Evidence::new_checked(&version[..]).unwrap_err(),
            Error::UnsupportedVersion(2)
        );
        // A report of the wrong size.
        let short = [0u8; REPORT_LEN - 1];
        assert_eq!(sample(&short).to_vec().unwrap_err(), Error::Malformed);
        let mut wrong_len = bytes.clone();
        wrong_len[1..3].copy_from_slice(&((REPORT_LEN - 1) as u16).to_be_bytes());
        assert_eq!(
            Evidence::new_checked(&wrong_len[..]).unwrap_err(),
            Error::Malformed
        );
        // An oversized certificate length.
        let mut huge = bytes.clone();
        let vcek_len_at = 1 + 2 + REPORT_LEN;
        huge[vcek_len_at..vcek_len_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            Evidence::new_checked(&huge[..]).unwrap_err(),
            Error::TooLong
        );
    }
}
