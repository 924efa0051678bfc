//! AMD's X.509 extensions in a VCEK certificate (AMD "Versioned Chip Endorsement Key (VCEK)
//! Certificate and KDS Interface Specification", publication 57230), under `1.3.6.1.4.1.3704.1`:
//!
//! | OID suffix | name | value (the extension's `extnValue` contents) |
//! |------------|------|------------------------------------------------|
//! | `.1` | `structVersion` | DER `INTEGER` |
//! | `.2` | `productName` | DER `IA5String`, e.g. `Milan-B0`, `Genoa-B1` |
//! | `.3.1` | `blSPL` | DER `INTEGER` |
//! | `.3.2` | `teeSPL` | DER `INTEGER` |
//! | `.3.3` | `snpSPL` | DER `INTEGER` |
//! | `.3.4`..`.3.7` | `spl_4`..`spl_7` (reserved) | DER `INTEGER` |
//! | `.3.8` | `ucodeSPL` | DER `INTEGER` |
//! | `.4` | `hwID` | the 64-byte chip id, **raw**: AMD's KDS puts the bytes straight into `extnValue` without an inner `OCTET STRING` header (go-sev-guest notes the same) |
//!
//! For `hwID` both the raw 64 bytes and a DER `OCTET STRING` wrapping 64 bytes are accepted (they
//! differ in length, 64 against 66, so the two cannot be confused). Turin's `fmcSPL` (`.3.9`) is
//! not read: Turin is not supported.

// `STRUCT_VERSION` is only written by the test attester: a build without it leaves it unused.
#![cfg_attr(not(feature = "test-attester"), allow(dead_code))]

use crate::verify::ProductLine;
use pp_attestation::tcb::TcbVersion;
use x509_cert::Certificate;
use x509_cert::der::oid::ObjectIdentifier;

pub(crate) const STRUCT_VERSION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
pub(crate) const PRODUCT_NAME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
pub(crate) const BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
pub(crate) const TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
pub(crate) const SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
pub(crate) const SPL_4_TO_7: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.4"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.5"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.6"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.7"),
];
pub(crate) const UCODE_SPL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
pub(crate) const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// A VCEK extension, named when it is missing or malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VcekExtension {
    /// `productName` (`1.3.6.1.4.1.3704.1.2`).
    ProductName,
    /// `blSPL` (`1.3.6.1.4.1.3704.1.3.1`).
    BlSpl,
    /// `teeSPL` (`1.3.6.1.4.1.3704.1.3.2`).
    TeeSpl,
    /// `snpSPL` (`1.3.6.1.4.1.3704.1.3.3`).
    SnpSpl,
    /// One of the reserved `spl_4`..`spl_7` (`1.3.6.1.4.1.3704.1.3.4`..`.7`).
    ReservedSpl,
    /// `ucodeSPL` (`1.3.6.1.4.1.3704.1.3.8`).
    UcodeSpl,
    /// `hwID` (`1.3.6.1.4.1.3704.1.4`).
    HwId,
}

/// Why an extension could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtError {
    Missing(VcekExtension),
    Malformed(VcekExtension),
    /// The product is not Milan or Genoa, whose TCB layout is the only one supported.
    UnsupportedProduct,
}

/// The `extnValue` contents of the one extension with `oid`. Two with the same OID are malformed
/// (RFC 5280 §4.2).
fn value(
    cert: &Certificate,
    oid: ObjectIdentifier,
    name: VcekExtension,
) -> Result<Option<&[u8]>, ExtError> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|ext| ext.extn_id == oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(ExtError::Malformed(name));
    }
    Ok(first.map(|ext| ext.extn_value.as_bytes()))
}

fn spl(
    cert: &Certificate,
    oid: ObjectIdentifier,
    name: VcekExtension,
) -> Result<Option<u8>, ExtError> {
    use x509_cert::der::Decode;
    value(cert, oid, name)?
        .map(|bytes| u8::from_der(bytes).map_err(|_| ExtError::Malformed(name)))
        .transpose()
}

fn required_spl(
    cert: &Certificate,
    oid: ObjectIdentifier,
    name: VcekExtension,
) -> Result<u8, ExtError> {
    spl(cert, oid, name)?.ok_or(ExtError::Missing(name))
}

/// The product line the VCEK names: `Milan` for `productName` `Milan-B0` (the part before the
/// stepping).
pub(crate) fn product_line(cert: &Certificate) -> Result<&str, ExtError> {
    use x509_cert::der::{Decode, asn1::Ia5StringRef};
    let name = VcekExtension::ProductName;
    let bytes = value(cert, PRODUCT_NAME, name)?.ok_or(ExtError::Missing(name))?;
    let product = Ia5StringRef::from_der(bytes).map_err(|_| ExtError::Malformed(name))?;
    Ok(product.as_str().split('-').next().unwrap_or_default())
}

/// The product line from the product name, required to be Milan or Genoa (e.g. `Milan-B0`,
/// `Genoa-B1`).
pub(crate) fn product(cert: &Certificate) -> Result<ProductLine, ExtError> {
    ProductLine::from_name(product_line(cert)?).ok_or(ExtError::UnsupportedProduct)
}

/// The TCB the VCEK was issued for, from its extensions (Milan/Genoa layout). The reserved
/// `spl_4`..`spl_7` are read when present and taken as zero when absent.
pub(crate) fn tcb(cert: &Certificate) -> Result<TcbVersion, ExtError> {
    product(cert)?;
    let mut tcb = TcbVersion::new(
        required_spl(cert, BL_SPL, VcekExtension::BlSpl)?,
        required_spl(cert, TEE_SPL, VcekExtension::TeeSpl)?,
        required_spl(cert, SNP_SPL, VcekExtension::SnpSpl)?,
        required_spl(cert, UCODE_SPL, VcekExtension::UcodeSpl)?,
    );
    for (slot, oid) in tcb.reserved.iter_mut().zip(SPL_4_TO_7) {
        *slot = spl(cert, oid, VcekExtension::ReservedSpl)?.unwrap_or(0);
    }
    Ok(tcb)
}

/// The chip id the VCEK was issued for.
pub(crate) fn hw_id(cert: &Certificate) -> Result<[u8; 64], ExtError> {
    let name = VcekExtension::HwId;
    let bytes = value(cert, HW_ID, name)?.ok_or(ExtError::Missing(name))?;
    let raw = match bytes {
        // DER OCTET STRING, tag 0x04, short-form length 64.
        [0x04, 0x40, rest @ ..] if rest.len() == 64 => rest,
        raw => raw,
    };
    <[u8; 64]>::try_from(raw).map_err(|_| ExtError::Malformed(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::der::asn1::OctetString;
    use x509_cert::ext::Extension;

    /// A certificate shell with the given extensions; only the extensions are read here.
    fn cert_with(exts: Vec<(ObjectIdentifier, Vec<u8>)>) -> Certificate {
        // Any real certificate will do as the shell: the built-in Milan ARK.
        let ark = sev::certs::snp::builtin::milan::ark().unwrap();
        let mut cert: Certificate = ark.into();
        cert.tbs_certificate.extensions = Some(
            exts.into_iter()
                .map(|(oid, value)| Extension {
                    extn_id: oid,
                    critical: false,
                    extn_value: OctetString::new(value).unwrap(),
                })
                .collect(),
        );
        cert
    }

    fn int(v: u8) -> Vec<u8> {
        use x509_cert::der::Encode;
        v.to_der().unwrap()
    }

    fn ia5(s: &str) -> Vec<u8> {
        use x509_cert::der::{Encode, asn1::Ia5StringRef};
        Ia5StringRef::new(s).unwrap().to_der().unwrap()
    }

    fn full(product: &str, hw: Vec<u8>) -> Vec<(ObjectIdentifier, Vec<u8>)> {
        vec![
            (STRUCT_VERSION, int(1)),
            (PRODUCT_NAME, ia5(product)),
            (BL_SPL, int(3)),
            (TEE_SPL, int(0)),
            (SNP_SPL, int(8)),
            (SPL_4_TO_7[0], int(0)),
            (UCODE_SPL, int(209)),
            (HW_ID, hw),
        ]
    }

    #[test]
    fn reads_tcb_and_both_hwid_forms() {
        let cert = cert_with(full("Milan-B0", vec![7; 64]));
        assert_eq!(tcb(&cert), Ok(TcbVersion::new(3, 0, 8, 209)));
        assert_eq!(hw_id(&cert), Ok([7; 64]));
        let mut wrapped = vec![0x04, 0x40];
        wrapped.extend_from_slice(&[9; 64]);
        assert_eq!(product(&cert), Ok(ProductLine::Milan));
        let cert = cert_with(full("Genoa-B1", wrapped));
        assert_eq!(product(&cert), Ok(ProductLine::Genoa));
        assert_eq!(hw_id(&cert), Ok([9; 64]));
        assert!(tcb(&cert).is_ok());
    }

    #[test]
    fn refuses_turin_missing_duplicate_and_malformed() {
        let cert = cert_with(full("Turin-B0", vec![7; 64]));
        assert_eq!(tcb(&cert), Err(ExtError::UnsupportedProduct));

        let mut exts = full("Milan-B0", vec![7; 8]);
        exts.retain(|(oid, _)| *oid != SNP_SPL);
        let cert = cert_with(exts);
        assert_eq!(tcb(&cert), Err(ExtError::Missing(VcekExtension::SnpSpl)));
        assert_eq!(hw_id(&cert), Err(ExtError::Malformed(VcekExtension::HwId)));

        let mut exts = full("Milan-B0", vec![7; 64]);
        exts.push((BL_SPL, int(9)));
        assert_eq!(
            tcb(&cert_with(exts)),
            Err(ExtError::Malformed(VcekExtension::BlSpl))
        );

        // A negative INTEGER (0xFF without the leading zero) and a non-INTEGER.
        for bad in [vec![0x02, 0x01, 0xFF], ia5("3")] {
            let mut exts = full("Milan-B0", vec![7; 64]);
            exts.retain(|(oid, _)| *oid != UCODE_SPL);
            exts.push((UCODE_SPL, bad));
            assert_eq!(
                tcb(&cert_with(exts)),
                Err(ExtError::Malformed(VcekExtension::UcodeSpl))
            );
        }
    }
}
