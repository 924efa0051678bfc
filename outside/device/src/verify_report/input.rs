//! Reading what an auditor hands `pp verify-report`: the report file (raw or hex), certificate
//! files (DER or PEM), hex values and the TCB floor. Every error names the option and says what
//! was expected; none carries bytes from the files.

use std::io::Read;
use std::path::Path;

use pp_attestation::report::REPORT_LEN;
use pp_attestation::tcb::TcbVersion;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::Ia5StringRef;
use x509_cert::der::oid::ObjectIdentifier;

/// Largest input file read (a report is 1184 bytes, its hex 2368; a certificate a few KiB).
const MAX_FILE: u64 = 64 * 1024;

/// AMD's VCEK `productName` extension (`Milan-B0`, `Genoa-B1`, …).
const PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");

/// Something wrong with the command's input: exit status 2, nothing verified.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{option} {path}: cannot read: {source}")]
    Read {
        option: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{option} {path}: larger than {MAX_FILE} bytes, not a report or certificate")]
    TooLarge { option: &'static str, path: String },
    #[error("--report {path}: {reason}")]
    Report {
        path: String,
        reason: ReportFormError,
    },
    #[error("{option} {path}: {reason}")]
    Certificate {
        option: &'static str,
        path: String,
        reason: CertFormError,
    },
    #[error(
        "--vcek {path}: cannot tell which AMD ASK/ARK to use: {reason}; pass --ask and --ark \
         (AMD's built-in chains here: Milan, Genoa)"
    )]
    NoBuiltinChain { path: String, reason: String },
    #[error("{0} could not be read (built into this program: a bug)")]
    BuiltIn(String),
    #[error("--guest-policy {policy:#x}: {reason}")]
    GuestPolicy {
        policy: u64,
        reason: pp_verifier::verify::PolicyError,
    },
    #[error("--crl {path}: cannot be used: {reason}")]
    Crl {
        path: String,
        reason: pp_verifier::verify::PolicyError,
    },
}

/// Why a report file is not a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportFormError {
    #[error("the file is empty; expected a report: {REPORT_LEN} raw bytes or their hex text")]
    Empty,
    #[error(
        "hex text of {0} digits is not a report: expected {digits} digits ({REPORT_LEN} bytes)",
        digits = REPORT_LEN * 2
    )]
    HexLength(usize),
    #[error(
        "{0} bytes, neither a raw report (exactly {REPORT_LEN} bytes) nor hex text (only hex digits \
         and whitespace)"
    )]
    Length(usize),
}

/// Why a certificate file is not one certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertFormError {
    #[error("not an X.509 certificate in DER or PEM")]
    NotCertificate,
    #[error("PEM that does not decode (bad base64 or framing)")]
    BadPem,
    #[error("the PEM block is `{0}`, expected `CERTIFICATE`")]
    PemLabel(String),
    #[error("holds {0} PEM blocks; give one certificate per file")]
    SeveralPem(usize),
}

/// Reads at most [`MAX_FILE`] bytes of `path`.
pub(super) fn read_file(option: &'static str, path: &Path) -> Result<Vec<u8>, InputError> {
    let shown = || path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| InputError::Read {
        option,
        path: shown(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            option,
            path: shown(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(InputError::TooLarge {
            option,
            path: shown(),
        });
    }
    Ok(bytes)
}

/// The report's bytes from a file that holds either the raw report or its hex text.
///
/// A file of only hex digits and whitespace is hex text and must hold exactly 2368 digits. Any
/// other file must be exactly 1184 bytes. A raw report is never mistaken for hex: its version
/// field and reserved areas hold zero bytes, which are not hex digits.
pub fn parse_report(bytes: &[u8]) -> Result<Vec<u8>, ReportFormError> {
    if bytes.is_empty() {
        return Err(ReportFormError::Empty);
    }
    let is_hex_text = bytes
        .iter()
        .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    if is_hex_text {
        let digits: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(u8::is_ascii_hexdigit)
            .collect();
        if digits.len() != REPORT_LEN * 2 {
            return Err(ReportFormError::HexLength(digits.len()));
        }
        return hex::decode(digits).map_err(|_| ReportFormError::HexLength(0));
    }
    if bytes.len() != REPORT_LEN {
        return Err(ReportFormError::Length(bytes.len()));
    }
    Ok(bytes.to_vec())
}

/// The DER of the one certificate in `bytes` (DER, or one PEM `CERTIFICATE` block), checked to
/// parse as X.509 with the same parser the verifier uses.
pub fn parse_certificate(bytes: &[u8]) -> Result<Vec<u8>, CertFormError> {
    let text = bytes.trim_ascii_start();
    let der = if text.starts_with(b"-----BEGIN") {
        let blocks = text.windows(11).filter(|w| w == b"-----BEGIN ").count();
        if blocks != 1 {
            return Err(CertFormError::SeveralPem(blocks));
        }
        let (label, der) =
            x509_cert::der::pem::decode_vec(text).map_err(|_| CertFormError::BadPem)?;
        if label != "CERTIFICATE" {
            return Err(CertFormError::PemLabel(label.chars().take(40).collect()));
        }
        der
    } else {
        bytes.to_vec()
    };
    Certificate::from_der(&der).map_err(|_| CertFormError::NotCertificate)?;
    Ok(der)
}

/// The VCEK's `productName` (e.g. `Milan-B0`), if it has a readable one.
pub fn product_name(vcek_der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(vcek_der).ok()?;
    let mut values = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|ext| ext.extn_id == PRODUCT_NAME);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let name = Ia5StringRef::from_der(value.extn_value.as_bytes()).ok()?;
    // Printed back to the auditor: keep it short and printable.
    let name = name.as_str();
    (name.len() <= 32 && name.chars().all(|c| c.is_ascii_graphic())).then(|| name.to_owned())
}

/// `N` bytes from exactly `2 * N` hex digits (either case). For clap's value parsers.
pub fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    if text.len() != 2 * N {
        return Err(format!(
            "expected {} hex digits ({N} bytes), got {} characters",
            2 * N,
            text.len()
        ));
    }
    let mut out = [0; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| "not hex digits".to_owned())?;
    Ok(out)
}

/// A TCB floor: `bl=3,tee=0,snp=24,ucode=219` (decimal; components left out are 0) or the
/// `TCB_VERSION` as one 16-hex-digit number, `0x` optional (most significant byte first:
/// `ucode`, `snp`, four reserved bytes that must be zero, `tee`, `bl`).
pub fn parse_tcb(text: &str) -> Result<TcbVersion, String> {
    if !text.contains('=') {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(
                "expected bl=N,tee=N,snp=N,ucode=N or a TCB_VERSION of 16 hex digits".to_owned(),
            );
        }
        let raw = u64::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
        let tcb = TcbVersion::from_u64(raw);
        if tcb.reserved != [0; 4] {
            return Err("the reserved bytes 2..=5 of a TCB_VERSION must be zero".to_owned());
        }
        return Ok(tcb);
    }
    let mut tcb = TcbVersion::default();
    let mut seen = Vec::new();
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not name=value"))?;
        let key = key.trim();
        let value: u8 = value
            .trim()
            .parse()
            .map_err(|_| format!("{key}: expected a number 0..=255"))?;
        let slot = match key {
            "bl" => &mut tcb.boot_loader,
            "tee" => &mut tcb.tee,
            "snp" => &mut tcb.snp,
            "ucode" => &mut tcb.microcode,
            other => {
                return Err(format!(
                    "unknown TCB component `{other}` (bl, tee, snp, ucode)"
                ));
            }
        };
        if seen.contains(&key) {
            return Err(format!("{key} given twice"));
        }
        seen.push(key);
        *slot = value;
    }
    Ok(tcb)
}

/// A guest policy for `--guest-policy`: hex, with or without `0x` (e.g. `0x30000`).
pub fn parse_policy(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected a guest policy in hex, e.g. 0x30000".to_owned());
    }
    u64::from_str_radix(digits, 16).map_err(|_| "expected a guest policy in hex".to_owned())
}

/// A time for `--at`: `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    let bad = || format!("`{text}`: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, time.strip_suffix('Z').ok_or_else(bad)?),
        None => (text, "00:00:00"),
    };
    let numbers = |part: &str, sep: char, widths: [usize; 3]| -> Option<[u16; 3]> {
        let fields: Vec<&str> = part.split(sep).collect();
        let mut out = [0u16; 3];
        if fields.len() != 3 {
            return None;
        }
        for ((field, width), slot) in fields.iter().zip(widths).zip(&mut out) {
            if field.len() != width || !field.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = field.parse().ok()?;
        }
        Some(out)
    };
    let [y, mo, d] = numbers(date, '-', [4, 2, 2]).ok_or_else(bad)?;
    let [h, mi, s] = numbers(time, ':', [2, 2, 2]).ok_or_else(bad)?;
    let narrow = |v: u16| u8::try_from(v).map_err(|_| bad());
    x509_cert::der::DateTime::new(
        y,
        narrow(mo)?,
        narrow(d)?,
        narrow(h)?,
        narrow(mi)?,
        narrow(s)?,
    )
    .map(|t| std::time::UNIX_EPOCH + t.unix_duration())
    .map_err(|_| bad())
}

/// `bl=3,tee=0,snp=8,ucode=115 (0x7308000000000003)`: the `--min-tcb` syntax and the number.
pub fn show_tcb(tcb: &TcbVersion) -> String {
    format!(
        "bl={},tee={},snp={},ucode={} ({:#018x})",
        tcb.boot_loader,
        tcb.tee,
        tcb.snp,
        tcb.microcode,
        tcb.to_u64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_raw_or_hex_and_nothing_else() {
        let mut raw = vec![0xAB; REPORT_LEN];
        raw[0] = 2;
        raw[1] = 0;
        assert_eq!(parse_report(&raw).unwrap(), raw);
        let mut text = hex::encode_upper(&raw[..600]).into_bytes();
        text.extend_from_slice(b"\n  \t");
        text.extend_from_slice(hex::encode(&raw[600..]).as_bytes());
        text.push(b'\n');
        assert_eq!(parse_report(&text).unwrap(), raw);

        assert_eq!(parse_report(b""), Err(ReportFormError::Empty));
        assert_eq!(
            parse_report(&raw[..1000]),
            Err(ReportFormError::Length(1000))
        );
        assert_eq!(
            parse_report(hex::encode(&raw[..1000]).as_bytes()),
            Err(ReportFormError::HexLength(2000))
        );
        // Hex text with anything else in it (a `0x` prefix, a comment) is neither form.
        let mut prefixed = b"0x".to_vec();
        prefixed.extend_from_slice(hex::encode(&raw).as_bytes());
        assert_eq!(
            parse_report(&prefixed),
            Err(ReportFormError::Length(2 * REPORT_LEN + 2))
        );
    }

    #[test]
    fn certificates_der_or_one_pem_block() {
        let ark_pem = sev::certs::snp::builtin::milan::ARK;
        let der = parse_certificate(ark_pem).unwrap();
        assert_eq!(parse_certificate(&der).unwrap(), der);
        let crlf = String::from_utf8(ark_pem.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(parse_certificate(crlf.as_bytes()).unwrap(), der);
        assert_eq!(
            parse_certificate(b"garbage"),
            Err(CertFormError::NotCertificate)
        );
        let mut two = ark_pem.to_vec();
        two.extend_from_slice(sev::certs::snp::builtin::milan::ASK);
        assert_eq!(parse_certificate(&two), Err(CertFormError::SeveralPem(2)));
        let key = String::from_utf8(ark_pem.to_vec())
            .unwrap()
            .replace("CERTIFICATE", "PRIVATE KEY");
        assert_eq!(
            parse_certificate(key.as_bytes()),
            Err(CertFormError::PemLabel("PRIVATE KEY".into()))
        );
        assert_eq!(
            parse_certificate(&der[..der.len() - 1]),
            Err(CertFormError::NotCertificate)
        );
        // AMD's ARK has no productName.
        assert_eq!(product_name(&der), None);
    }

    #[test]
    fn hex_values_exact_length() {
        assert_eq!(parse_hex::<2>("0aFF"), Ok([0x0A, 0xFF]));
        assert!(
            parse_hex::<2>("0aF")
                .unwrap_err()
                .contains("expected 4 hex digits")
        );
        assert!(parse_hex::<2>("0aFg").unwrap_err().contains("not hex"));
    }

    #[test]
    fn tcb_by_components_or_number() {
        let want = TcbVersion::new(3, 0, 8, 115);
        assert_eq!(parse_tcb("bl=3,tee=0,snp=8,ucode=115"), Ok(want));
        assert_eq!(parse_tcb("ucode=115, snp=8,bl=3"), Ok(want));
        assert_eq!(parse_tcb("0x7308000000000003"), Ok(want));
        assert_eq!(parse_tcb("7308000000000003"), Ok(want));
        assert_eq!(
            show_tcb(&want),
            "bl=3,tee=0,snp=8,ucode=115 (0x7308000000000003)"
        );
        for bad in [
            "bl=3,bl=4",
            "fmc=1",
            "ucode=256",
            "snp",
            "0x73080000000003",
            "0x7308000000010003",
            "",
        ] {
            assert!(parse_tcb(bad).is_err(), "{bad}");
        }
    }
}
