//! Which attester this build carries.
//!
//! The release image has only the hardware attester: under SEV-SNP (the kernel hands out VMPCK0)
//! [`pp_attestation::SnpAttester`] over the kernel's guest-request system call,
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

/// The SNP attester on Hermit: a copy of VMPCK0 and its message counter from the kernel, which
/// keeps the secrets page and checks every exchange against its counter (`crate::sys`,
/// `kernel/sev/guest_request.rs`).
#[cfg(all(target_os = "hermit", not(feature = "test-attester")))]
mod snp {
    use pp_attestation::{Attester, SnpAttester};
    use pp_snp_guest::channel::{GuestChannel, Transport, TransportError};
    use pp_snp_guest::guest_msg::{PAGE_LEN, Vmpck};

    use crate::sys;

    /// `None` when this is not an SNP guest; an error when it is but VMPCK0 is unusable (the
    /// enclave then does not start: it must not run unable to attest without saying so).
    pub fn attester() -> Result<Option<Box<dyn Attester + Send + Sync>>, &'static str> {
        let Some((key, counter)) = sys::snp_vmpck0()
            .map_err(|_| "VMPCK0 is unusable (wiped, or never provisioned by the firmware)")?
        else {
            return Ok(None);
        };
        let channel = GuestChannel::new(Kernel, Vmpck::new(0, &key), counter);
        Ok(Some(Box::new(SnpAttester::new(channel))))
    }

    /// The kernel's SNP system calls (one attester per boot uses them, behind its lock).
    struct Kernel;

    impl Transport for Kernel {
        fn request(
            &mut self,
            request: &[u8; PAGE_LEN],
            response: &mut [u8; PAGE_LEN],
            certs: Option<&mut [u8]>,
        ) -> Result<(), TransportError> {
            sys::snp_guest_request(request, response, certs)
        }

        fn key_disabled(&mut self) {
            sys::snp_disable_vmpck0();
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
