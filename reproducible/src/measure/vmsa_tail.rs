//! The last step of an SNP launch digest: the VMSA pages, one per vCPU, added to the digest of
//! everything measured before them.
//!
//! Written from the SEV-SNP firmware ABI specification (AMD 56860, SNP_LAUNCH_UPDATE and its
//! PAGE_INFO structure): after each page the launch digest becomes SHA-384 of PAGE_INFO =
//! DIGEST_CUR (48 bytes) ‖ CONTENTS (48: SHA-384 of the page) ‖ LENGTH (u16, 0x70) ‖ PAGE_TYPE
//! (u8) ‖ IMI_PAGE (u8) ‖ VMPL3_PERMS ‖ VMPL2_PERMS ‖ VMPL1_PERMS (u8 each) ‖ reserved (u8) ‖
//! GPA (u64), little endian. The `sev` crate computes the same but does not expose an unfinished
//! digest; `tests/against_sev_snp_measure.rs` checks this against both.

use sha2::{Digest, Sha384};

use super::DIGEST_LEN;

/// PAGE_INFO's size, which is also its LENGTH field.
const PAGE_INFO_LEN: u16 = 0x70;
/// PAGE_TYPE of a VMSA page.
const PAGE_TYPE_VMSA: u8 = 0x2;
/// The GPA every VMSA page is measured at: all ones, page-aligned, bits above 51 clear.
const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// `prefix` extended by `pages` as VMSA pages, in order.
pub(super) fn extend(prefix: [u8; DIGEST_LEN], pages: &[Vec<u8>]) -> [u8; DIGEST_LEN] {
    pages.iter().fold(prefix, |current, page| {
        let mut info = Vec::with_capacity(PAGE_INFO_LEN.into());
        info.extend_from_slice(&current);
        info.extend_from_slice(&Sha384::digest(page));
        info.extend_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info.push(PAGE_TYPE_VMSA);
        info.push(0); // IMI_PAGE: not an incoming-migration image page
        info.extend_from_slice(&[0, 0, 0]); // VMPL3, VMPL2, VMPL1 permissions: none
        info.push(0); // reserved
        info.extend_from_slice(&VMSA_GPA.to_le_bytes());
        debug_assert_eq!(info.len(), usize::from(PAGE_INFO_LEN));
        Sha384::digest(&info).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pages_leave_the_prefix() {
        assert_eq!(extend([7; DIGEST_LEN], &[]), [7; DIGEST_LEN]);
    }

    #[test]
    fn each_page_changes_the_digest_in_order() {
        let (a, b) = (vec![1u8; 4096], vec![2u8; 4096]);
        let ab = extend([0; DIGEST_LEN], &[a.clone(), b.clone()]);
        let ba = extend([0; DIGEST_LEN], &[b, a.clone()]);
        assert_ne!(ab, ba);
        assert_eq!(
            ab,
            extend(
                extend([0; DIGEST_LEN], std::slice::from_ref(&a)),
                &[vec![2u8; 4096]]
            )
        );
    }
}
