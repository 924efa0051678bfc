//! The `REPORT_DATA` binding: what the enclave puts in the 64 bytes of report data it asks the
//! firmware to sign, and what the device recomputes and compares.
//!
//! ```text
//! report_data = SHA-512( "pp/attested-tls/v1\0"
//!                        || u32be(len(exporter))    || exporter     (32 bytes)
//!                        || u32be(len(nonce))       || nonce        (32 bytes)
//!                        || u32be(len(release_ref)) || release_ref  (32 bytes)
//!                        || u32be(len(key_config))  || key_config )
//! ```
//!
//! - `exporter`: [`EXPORTER_LEN`] bytes of TLS keying material exported from *this* TLS 1.3
//!   session (RFC 8446 §7.5) with the label [`EXPORTER_LABEL`] and no context, so the report
//!   cannot be replayed into another session;
//! - `nonce`: the device's fresh 32-byte challenge, so the report cannot be replayed later;
//! - `release_ref`: the release the enclave says it was built as (the evidence bundle's
//!   `release_ref`), so that claim is signed by the hardware too, not only sent inside the session;
//! - `key_config`: the enclave's HPKE key configuration exactly as sent to the device, so the key
//!   the device encrypts requests to is the one the attested enclave holds.
//!
//! The label separates this use of SHA-512 from every other one and names the version; the
//! length prefixes make the encoding injective. SHA-512's 64-byte output fills `REPORT_DATA`.

use sha2::{Digest, Sha512};

/// The TLS exporter label both ends use for the `exporter` input (RFC 8446 §7.5, empty context).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-pp-attestation";
/// How many bytes both ends export.
pub const EXPORTER_LEN: usize = 32;

/// The domain-separation label, NUL included.
pub const REPORT_DATA_LABEL: &[u8] = b"pp/attested-tls/v1\0";

/// The 64 bytes of `REPORT_DATA` that bind a report to a TLS session, a device nonce, a release
/// reference and an HPKE key configuration. See the module documentation for the exact encoding.
pub fn report_data_for(
    exporter: &[u8; EXPORTER_LEN],
    nonce: &[u8; 32],
    release_ref: &[u8; 32],
    key_config: &[u8],
) -> [u8; 64] {
    let mut hash = Sha512::new();
    hash.update(REPORT_DATA_LABEL);
    for part in [&exporter[..], &nonce[..], &release_ref[..], key_config] {
        // Only `key_config` has a variable length, and it is the last field, so even a saturated
        // prefix (a key configuration of 4 GiB or more, which nothing sends) leaves the encoding
        // unambiguous: the earlier fields have fixed lengths and the rest is hashed in full.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        hash.update(len.to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The domain-separation label of publication evidence, NUL included.
pub const PUBLICATION_LABEL: &[u8] = b"pp/key-publication/v1\0";

/// The 64 bytes of `REPORT_DATA` in evidence the operator publishes on the key CDN: it names the
/// release and the HPKE key configuration an enclave instance holds, with no session and no
/// nonce (it is not fresh; the device gets fresh evidence inside its own session and requires the
/// same key configuration there).
///
/// ```text
/// SHA-512( "pp/key-publication/v1\0" || u32be(32) || release_ref || u32be(len) || key_config )
/// ```
pub fn publication_report_data(release_ref: &[u8; 32], key_config: &[u8]) -> [u8; 64] {
    let mut hash = Sha512::new();
    hash.update(PUBLICATION_LABEL);
    for part in [&release_ref[..], key_config] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        hash.update(len.to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_encoding() {
        let exporter = [1u8; 32];
        let nonce = [2u8; 32];
        let key_config = b"hpke-config";
        let mut manual = Vec::new();
        manual.extend_from_slice(b"pp/attested-tls/v1\0");
        manual.extend_from_slice(&[0, 0, 0, 32]);
        manual.extend_from_slice(&exporter);
        manual.extend_from_slice(&[0, 0, 0, 32]);
        manual.extend_from_slice(&nonce);
        manual.extend_from_slice(&[0, 0, 0, 32]);
        manual.extend_from_slice(&[3u8; 32]);
        manual.extend_from_slice(&[0, 0, 0, 11]);
        manual.extend_from_slice(key_config);
        let expected: [u8; 64] = Sha512::digest(&manual).into();
        assert_eq!(
            report_data_for(&exporter, &nonce, &[3u8; 32], key_config),
            expected
        );
    }

    #[test]
    fn publication_binding_is_separate_from_the_session_binding() {
        let mut manual = Vec::new();
        manual.extend_from_slice(b"pp/key-publication/v1\0");
        manual.extend_from_slice(&[0, 0, 0, 32]);
        manual.extend_from_slice(&[3u8; 32]);
        manual.extend_from_slice(&[0, 0, 0, 1]);
        manual.extend_from_slice(b"k");
        let expected: [u8; 64] = Sha512::digest(&manual).into();
        assert_eq!(publication_report_data(&[3; 32], b"k"), expected);
        assert_ne!(
            publication_report_data(&[3; 32], b"k"),
            publication_report_data(&[3; 32], b"K")
        );
    }

    #[test]
    fn every_input_changes_the_result() {
        let base = report_data_for(&[1; 32], &[2; 32], &[3; 32], b"k");
        assert_ne!(base, report_data_for(&[9; 32], &[2; 32], &[3; 32], b"k"));
        assert_ne!(base, report_data_for(&[1; 32], &[9; 32], &[3; 32], b"k"));
        assert_ne!(base, report_data_for(&[1; 32], &[2; 32], &[9; 32], b"k"));
        assert_ne!(base, report_data_for(&[1; 32], &[2; 32], &[3; 32], b"K"));
        assert_ne!(base, report_data_for(&[1; 32], &[2; 32], &[3; 32], b""));
    }
}
