//! Which attester this build carries.
//!
//! The release image has only the hardware attester: under SEV-SNP (the kernel hands out the
//! secrets page) [`pp_attestation::SnpAttester`] over the kernel's guest-request system call,
//! anywhere else [`pp_attestation::NoSnp`], which refuses. A test image, built with the
//! `test-attester` feature, signs reports with test material that `cargo xtask` generated on the host (a test VCEK key and its
//! ARK/ASK/VCEK chain), embedded here at build time — so its bytes, and its launch measurement,
//! differ from the release image's.

use pp_attestation::Attester;

/// The attester of this build, and its name for the serial log.
pub fn attester() -> Result<(Box<dyn Attester + Send + Sync>, &'static str), &'static str> {
    #[cfg(feature = "test-attester")]
    {
        Ok((test::attester()?, "test (NOT SEV-SNP)"))
    }
    #[cfg(not(feature = "test-attester"))]
    {
        #[cfg(target_os = "hermit")]
        if let Some(attester) = snp::attester()? {
            return Ok((attester, "sev-snp"));
        }
        Ok((
            Box::new(pp_attestation::NoSnp),
            "none (not an SEV-SNP guest: attestation refused)",
        ))
    }
}

/// The SNP attester on Hermit: VMPCK0 and its message counter from the secrets page, the
/// exchange through the kernel (`kernel/sev/guest_request.rs`).
#[cfg(all(target_os = "hermit", not(feature = "test-attester")))]
#[allow(unsafe_code)]
mod snp {
    use pp_attestation::{Attester, SnpAttester};
    use pp_snp_guest::channel::{GuestChannel, Transport, TransportError};
    use pp_snp_guest::guest_call;
    use pp_snp_guest::guest_msg::{PAGE_LEN, Vmpck};
    use pp_snp_guest::secrets::{self, SECRETS_PAGE_LEN};

    unsafe extern "C" {
        fn sys_pp_snp_secrets() -> *mut u8;
        fn sys_pp_snp_guest_request(
            request: *const u8,
            response: *mut u8,
            certs: *mut u8,
            certs_len: usize,
            info: *mut u64,
        ) -> i32;
    }

    /// `None` when this is not an SNP guest; an error when it is but VMPCK0 is unusable (the
    /// enclave then does not start: it must not run unable to attest without saying so).
    pub fn attester() -> Result<Option<Box<dyn Attester + Send + Sync>>, &'static str> {
        // SAFETY: a kernel call without arguments; null when there is no secrets page.
        let page = unsafe { sys_pp_snp_secrets() };
        if page.is_null() {
            return Ok(None);
        }
        // SAFETY: the kernel returns the identity-mapped 4 KiB secrets page, which lives as long
        // as the guest; only read here.
        let secrets = page as usize;
        let page = unsafe { &*(page as *const [u8; SECRETS_PAGE_LEN]) };
        let key = secrets::vmpck(page, 0).map_err(|_| "VMPCK0 in the secrets page is unusable")?;
        let counter = secrets::msg_seqno(page, 0).map_err(|_| "no message counter for VMPCK0")?;
        let channel = GuestChannel::new(Kernel { secrets }, Vmpck::new(0, &key), counter);
        Ok(Some(Box::new(SnpAttester::new(channel))))
    }

    /// The kernel's guest-request call; `secrets` is the secrets page's address, where the
    /// message counter is kept and VMPCK0 wiped after a failure (one attester per boot uses it,
    /// behind the attester's lock).
    struct Kernel {
        secrets: usize,
    }

    impl Kernel {
        fn secrets_page(&mut self) -> &mut [u8; SECRETS_PAGE_LEN] {
            // SAFETY: the identity-mapped, writable secrets page the kernel handed out; only
            // this attester touches it, through `&mut self`.
            unsafe { &mut *(self.secrets as *mut [u8; SECRETS_PAGE_LEN]) }
        }
    }

    impl Transport for Kernel {
        fn request(
            &mut self,
            request: &[u8; PAGE_LEN],
            response: &mut [u8; PAGE_LEN],
            certs: Option<&mut [u8]>,
        ) -> Result<(), TransportError> {
            let (certs_ptr, certs_len) = match certs {
                Some(c) => (c.as_mut_ptr(), c.len()),
                None => (core::ptr::null_mut(), 0),
            };
            let mut info = 0u64;
            // SAFETY: both pages are 4096 bytes, `certs` is `certs_len` writable bytes, `info`
            // a local; the kernel copies in and out and keeps no pointer.
            let code = unsafe {
                sys_pp_snp_guest_request(
                    request.as_ptr(),
                    response.as_mut_ptr(),
                    certs_ptr,
                    certs_len,
                    &mut info,
                )
            };
            guest_call::decode(code, info)
        }

        fn counter_advanced(&mut self, counter: u32) {
            // VMPCK 0 always exists: this cannot fail.
            let _ = secrets::set_msg_seqno(self.secrets_page(), 0, counter);
        }

        fn key_disabled(&mut self) {
            let _ = secrets::wipe_vmpck(self.secrets_page(), 0);
        }

        fn busy_wait(&mut self, attempt: u32) {
            // Up to 16 waits of at most 2 s: the hypervisor throttles guest requests.
            let ms = (250 * u64::from(attempt)).min(2000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

#[cfg(feature = "test-attester")]
mod test {
    use pp_attestation::Attester;
    use pp_attestation::test_signer::{PrecomputedAttester, TEST_MEASUREMENT, TEST_TCB};

    macro_rules! material {
        ($file:literal) => {
            include_bytes!(concat!(env!("PP_TEST_ROOT_DIR"), "/", $file))
        };
    }

    pub fn attester() -> Result<Box<dyn Attester + Send + Sync>, &'static str> {
        let chip_id: [u8; 64] = material!("chip_id.bin")
            .as_slice()
            .try_into()
            .map_err(|_| "bad test chip id")?;
        let attester = PrecomputedAttester::new(
            material!("vcek.key"),
            material!("vcek.der").to_vec(),
            material!("ask.der").to_vec(),
            material!("ark.der").to_vec(),
            chip_id,
            TEST_TCB,
            TEST_MEASUREMENT,
        )
        .map_err(|_| "bad test attester material")?;
        Ok(Box::new(attester))
    }
}
