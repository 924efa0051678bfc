//! The SNP secrets page (SEV-SNP ABI spec 56860 "PAGE_TYPE_SECRETS"; its OS area as the GHCB spec
//! 56421 §2.7 "SEV-SNP Secrets Page" defines it): the VM platform communication keys the guest
//! encrypts guest messages with, and the per-key message counters the guest itself keeps.
//!
//! Offsets checked against edk2 `MdePkg/Include/Register/Amd/SnpSecretsPage.h` and Linux
//! `struct snp_secrets_page`. Only the 32-bit counters are used (as Linux does); the newer
//! high halves of the OS area are left alone.

/// The page.
pub const SECRETS_PAGE_LEN: usize = 4096;
/// `VMPCK0`..`VMPCK3`, 32 bytes each.
const VMPCK: usize = 0x20;
/// `MSG_SEQNO_0`..`_3` in the OS area, 32 bits each.
const MSG_SEQNO: usize = 0xA0;

/// Why the secrets page cannot be used for guest messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsError {
    /// VMPCKs exist for VMPL 0 to 3 only.
    NoSuchKey,
    /// The key is all zeros: never provisioned, or wiped after a failure.
    KeyWiped,
}

impl core::fmt::Display for SecretsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoSuchKey => "there is no such VMPCK (0 to 3)",
            Self::KeyWiped => "the VMPCK is all zeros (wiped or never provisioned)",
        })
    }
}

/// `VERSION`, the first field of the page.
pub fn version(page: &[u8; SECRETS_PAGE_LEN]) -> u32 {
    u32::from_le_bytes([page[0], page[1], page[2], page[3]])
}

/// VMPCK `id` (0–3), refused if all zeros.
pub fn vmpck(page: &[u8; SECRETS_PAGE_LEN], id: u8) -> Result<[u8; 32], SecretsError> {
    if !vmpck_is_set(page, id)? {
        return Err(SecretsError::KeyWiped);
    }
    let at = key_offset(id)?;
    let mut key = [0; 32];
    key.copy_from_slice(&page[at..at + 32]);
    Ok(key)
}

/// Whether VMPCK `id` is still set (not all zeros), read in place: no copy of the key is made.
pub fn vmpck_is_set(page: &[u8; SECRETS_PAGE_LEN], id: u8) -> Result<bool, SecretsError> {
    let at = key_offset(id)?;
    Ok(page[at..at + 32].iter().any(|&b| b != 0))
}

/// Zero VMPCK `id` in the page, so that nothing in this guest can use it again (after a guest
/// message failure that leaves the sequence state unknown, reusing the key could reuse an IV).
pub fn wipe_vmpck(page: &mut [u8; SECRETS_PAGE_LEN], id: u8) -> Result<(), SecretsError> {
    let at = key_offset(id)?;
    page[at..at + 32].fill(0);
    Ok(())
}

/// The message counter kept for VMPCK `id`.
pub fn msg_seqno(page: &[u8; SECRETS_PAGE_LEN], id: u8) -> Result<u32, SecretsError> {
    let at = seqno_offset(id)?;
    Ok(u32::from_le_bytes([
        page[at],
        page[at + 1],
        page[at + 2],
        page[at + 3],
    ]))
}

/// Store the message counter for VMPCK `id` (after a completed exchange).
pub fn set_msg_seqno(
    page: &mut [u8; SECRETS_PAGE_LEN],
    id: u8,
    value: u32,
) -> Result<(), SecretsError> {
    let at = seqno_offset(id)?;
    page[at..at + 4].copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn key_offset(id: u8) -> Result<usize, SecretsError> {
    match id {
        0..=3 => Ok(VMPCK + 32 * usize::from(id)),
        _ => Err(SecretsError::NoSuchKey),
    }
}

fn seqno_offset(id: u8) -> Result<usize, SecretsError> {
    match id {
        0..=3 => Ok(MSG_SEQNO + 4 * usize::from(id)),
        _ => Err(SecretsError::NoSuchKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> [u8; SECRETS_PAGE_LEN] {
        let mut p = [0u8; SECRETS_PAGE_LEN];
        p[0] = 3; // VERSION
        for (i, b) in p[0x20..0xA0].iter_mut().enumerate() {
            *b = (i / 32 + 1) as u8; // VMPCK n filled with n + 1
        }
        p[0xA0..0xA4].copy_from_slice(&7u32.to_le_bytes());
        p[0xA4..0xA8].copy_from_slice(&9u32.to_le_bytes());
        p
    }

    #[test]
    fn keys_and_counters_sit_where_the_specs_put_them() {
        let mut p = page();
        assert_eq!(version(&p), 3);
        assert_eq!(vmpck(&p, 0), Ok([1; 32]));
        assert_eq!(vmpck(&p, 3), Ok([4; 32]));
        assert_eq!(vmpck(&p, 4), Err(SecretsError::NoSuchKey));
        assert_eq!(msg_seqno(&p, 0), Ok(7));
        assert_eq!(msg_seqno(&p, 1), Ok(9));
        set_msg_seqno(&mut p, 0, 0x0102_0304).unwrap();
        assert_eq!(&p[0xA0..0xA4], &[4, 3, 2, 1]);
        assert_eq!(
            &p[0xA4..0xA8],
            &9u32.to_le_bytes(),
            "its neighbour untouched"
        );
    }

    #[test]
    fn a_wiped_key_is_refused_and_the_others_survive() {
        let mut p = page();
        wipe_vmpck(&mut p, 0).unwrap();
        assert_eq!(vmpck(&p, 0), Err(SecretsError::KeyWiped));
        assert_eq!(vmpck(&p, 1), Ok([2; 32]));
        assert!(p[0x20..0x40].iter().all(|&b| b == 0));
        assert_eq!(wipe_vmpck(&mut p, 9), Err(SecretsError::NoSuchKey));
    }

    #[test]
    fn a_key_is_checked_in_place() {
        let mut p = [0u8; SECRETS_PAGE_LEN];
        assert!(!vmpck_is_set(&p, 0).unwrap());
        p[0x20] = 1;
        assert!(vmpck_is_set(&p, 0).unwrap());
        wipe_vmpck(&mut p, 0).unwrap();
        assert!(!vmpck_is_set(&p, 0).unwrap());
        assert!(vmpck_is_set(&p, 4).is_err());
    }
}
