//! The evidence bundle the enclave sends after the device's nonce.
//!
//! ```text
//! version (1) | report: u16 len + 1184 bytes | VCEK DER: u16 len + bytes | ASK DER | ARK DER
//!             | key configuration (RFC 9458): u16 len + bytes | release manifest sha256 (32)
//! ```
//! Lengths are big-endian. The report's `report_data` binds this session (see docs/protocol.md).

use alloc::vec::Vec;

use crate::{Error, Result};

pub const VERSION: u8 = 1;
/// An SEV-SNP attestation report (ABI spec 56860).
pub const REPORT_LEN: usize = 1184;
/// Largest certificate accepted (AMD's are under 2 KiB).
pub const MAX_CERT_LEN: usize = 8 * 1024;
/// Largest key configuration accepted.
pub const MAX_KEY_CONFIG_LEN: usize = 1024;
pub const MANIFEST_DIGEST_LEN: usize = 32;

/// The variable-length fields, in wire order, with their bounds.
const FIELDS: [(usize, usize); 5] = [
    (REPORT_LEN, REPORT_LEN),
    (1, MAX_CERT_LEN),
    (1, MAX_CERT_LEN),
    (1, MAX_CERT_LEN),
    (1, MAX_KEY_CONFIG_LEN),
];

/// A checked view over an encoded bundle.
#[derive(Debug, Clone)]
pub struct Evidence<T: AsRef<[u8]>> {
    buffer: T,
    /// Byte ranges of the five variable fields, found by `new_checked`.
    spans: [(usize, usize); 5],
}

impl<T: AsRef<[u8]>> Evidence<T> {
    /// Walk and bound-check every field; refuse trailing bytes.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        let version = *data.first().ok_or(Error::Truncated)?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let mut pos = 1;
        let mut spans = [(0, 0); 5];
        for (span, (min, max)) in spans.iter_mut().zip(FIELDS) {
            let len_bytes: [u8; 2] = data
                .get(pos..pos + 2)
                .ok_or(Error::Truncated)?
                .try_into()
                .map_err(|_| Error::Truncated)?;
            let len = u16::from_be_bytes(len_bytes) as usize;
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
        match data.len().cmp(&(pos + MANIFEST_DIGEST_LEN)) {
            core::cmp::Ordering::Less => return Err(Error::Truncated),
            core::cmp::Ordering::Greater => return Err(Error::TrailingBytes),
            core::cmp::Ordering::Equal => {}
        }
        Ok(Self { buffer, spans })
    }

    fn span(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        &self.buffer.as_ref()[a..b]
    }

    pub fn report(&self) -> &[u8] {
        self.span(0)
    }
    pub fn vcek(&self) -> &[u8] {
        self.span(1)
    }
    pub fn ask(&self) -> &[u8] {
        self.span(2)
    }
    pub fn ark(&self) -> &[u8] {
        self.span(3)
    }
    pub fn key_config(&self) -> &[u8] {
        self.span(4)
    }
    pub fn manifest_sha256(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[data.len() - MANIFEST_DIGEST_LEN..]
    }
}

/// The bundle as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRepr<'a> {
    pub report: &'a [u8],
    pub vcek: &'a [u8],
    pub ask: &'a [u8],
    pub ark: &'a [u8],
    pub key_config: &'a [u8],
    pub manifest_sha256: [u8; MANIFEST_DIGEST_LEN],
}

impl<'a> EvidenceRepr<'a> {
    /// Parse a checked view; the repr borrows the view's bytes.
    pub fn parse(view: &Evidence<&'a [u8]>) -> Result<Self> {
        let data: &'a [u8] = view.buffer;
        let span = |i: usize| -> &'a [u8] { &data[view.spans[i].0..view.spans[i].1] };
        Ok(Self {
            report: span(0),
            vcek: span(1),
            ask: span(2),
            ark: span(3),
            key_config: span(4),
            manifest_sha256: data[data.len() - MANIFEST_DIGEST_LEN..]
                .try_into()
                .map_err(|_| Error::Malformed)?,
        })
    }

    fn fields(&self) -> [&'a [u8]; 5] {
        [self.report, self.vcek, self.ask, self.ark, self.key_config]
    }

    pub fn buffer_len(&self) -> usize {
        1 + self.fields().iter().map(|f| 2 + f.len()).sum::<usize>() + MANIFEST_DIGEST_LEN
    }

    /// Encode, checking the same bounds `new_checked` enforces.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.push(VERSION);
        for (field, (min, max)) in self.fields().iter().zip(FIELDS) {
            if field.len() > max {
                return Err(Error::TooLong);
            }
            if field.len() < min {
                return Err(Error::Malformed);
            }
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.manifest_sha256);
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
            manifest_sha256: [9; 32],
        }
    }

    #[test]
    fn round_trips() {
        let report = [0xab; REPORT_LEN];
        let repr = sample(&report);
        let bytes = repr.to_vec().unwrap();
        assert_eq!(bytes.len(), repr.buffer_len());
        let view = Evidence::new_checked(&bytes[..]).unwrap();
        assert_eq!(EvidenceRepr::parse(&view).unwrap(), repr);
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
