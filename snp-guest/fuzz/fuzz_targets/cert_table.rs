//! The host's certificate table is untrusted: parsing and lookups must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_snp_guest::certs::{CertKind, CertTable};

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = CertTable::parse(data) {
        for kind in [CertKind::Ark, CertKind::Ask, CertKind::Vcek, CertKind::Vlek] {
            if let Some(cert) = table.get(kind) {
                assert!(cert.len() <= data.len());
            }
        }
    }
});
