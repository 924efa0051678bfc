//! Which attester this build carries.
//!
//! The release image has only the hardware attester (which, until the SNP guest-request path
//! lands, answers "not on SNP"). A test image, built with the `test-attester` feature, signs
//! reports with test material that `cargo xtask` generated on the host (a test VCEK key and its
//! ARK/ASK/VCEK chain), embedded here at build time — so its bytes, and its launch measurement,
//! differ from the release image's.

use pp_attestation::Attester;

/// The attester of this build.
pub fn attester() -> Result<Box<dyn Attester + Send + Sync>, &'static str> {
    #[cfg(feature = "test-attester")]
    {
        test::attester()
    }
    #[cfg(not(feature = "test-attester"))]
    {
        Ok(Box::new(pp_attestation::NoSnp))
    }
}

/// Names the attester for the serial log.
pub const KIND: &str = if cfg!(feature = "test-attester") {
    "test (NOT SEV-SNP)"
} else {
    "sev-snp"
};

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
