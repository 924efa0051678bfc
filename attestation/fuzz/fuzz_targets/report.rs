//! Arbitrary bytes through the checked report view and the `Repr`: nothing may panic, and a report
//! that parses must survive emit → parse unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_attestation::report::{Report, ReportRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(report) = Report::new_checked(data) else {
        return;
    };
    // Every accessor on a checked view.
    let _ = (
        report.signed_bytes(),
        report.signature().to_p384_be(),
        report.signing_key(),
        report.signature_algo(),
        report.reported_tcb().meets(&report.current_tcb()),
    );
    let repr = ReportRepr::parse(&report).expect("a checked report parses");
    let emitted = repr.to_bytes();
    let view = Report::new_checked(&emitted[..]).expect("an emitted report is checked again");
    assert_eq!(ReportRepr::parse(&view).expect("re-parse"), repr);
    // Emit copies every field and zeroes the reserved areas, so a byte it changed is now zero.
    assert!(data.iter().zip(&emitted).all(|(d, e)| d == e || *e == 0));
});
