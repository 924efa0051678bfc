//! The TCB floor: the lowest TCB accepted per product line, and the check of every TCB the
//! evidence names against it.
//!
//! The floor is per product line because AMD numbers firmware and microcode per product: Milan's
//! microcode SPL `0xDB` and Genoa's `0x54` are the same fix (AMD-SB-3019). The product line comes
//! from the VCEK's `productName`, which the ASK signed, never from the report alone.
//!
//! Five TCBs are checked, component by component, and the first one below the floor is named:
//! the VCEK's (what AMD certified), then the report's `REPORTED_TCB` (what the VCEK was derived
//! for), `COMMITTED_TCB` (the anti-rollback floor of the platform), `LAUNCH_TCB` (the firmware the
//! guest was launched under) and `CURRENT_TCB` (what runs now). On honest hardware
//! `reported ≤ committed ≤ current`, so the VCEK's TCB meeting the floor implies most of the
//! others; each is still checked so that a refusal names the field that is low.
//!
//! Sources: the SNP and microcode values are AMD's fixes for "EntrySign", the microcode patch
//! loader's broken signature check: CVE-2024-56161 (AMD-SB-3019, the SEV bulletin) and
//! CVE-2024-36347 (AMD-SB-7033, the bulletin for Zen 1 to 5; the fixed microcode revisions per
//! CPU are what fwupd's EntrySign table lists). The bootloader (and TEE) floors have no bulletin
//! source: they are other verifiers' defaults (below).
//!
//! What the floor does not cover:
//!
//! - AMD-SB-3020 (RMPocalypse, CVE-2025-0033: RMP initialisation) and AMD-SB-3027 (StackWarp,
//!   CVE-2025-29943: stack-pointer corruption from the sibling thread, so it matters here, where
//!   the release guest policy allows SMT). For Genoa, third-party verifier code we found states
//!   SNP `0x1B` (AMD-SB-3020) and microcode `0x56` (AMD-SB-3027), but AMD's bulletins could not be
//!   read to confirm them, so [`GENOA_MINIMUM_TCB`] is not raised on that alone. For Milan we have
//!   no values for either. A release can raise the floor in its manifest; the built-in floor
//!   should be raised once the values are confirmed from AMD's bulletins.
//! - Milan itself, accepted as a stated residual risk: "Insecure Despite Proven Updated:
//!   Extracting the Root VCEK Seed on EPYC Milan via a Software-Only Attack" (arXiv 2605.12990,
//!   submitted 2026-05-13) reports code execution on Milan's AMD secure processor and the
//!   extraction of the hardware root seed the VCEKs are derived from, so whoever holds a chip's
//!   seed can sign valid reports for any TCB. No floor helps against that: the TCB in a forged
//!   report is whatever the forger writes. Refusing Milan is the only remedy; the device does not.

use core::fmt;

use pp_attestation::report::Report;
use pp_attestation::tcb::{TcbComponent, TcbVersion};

/// A product line whose TCB layout the verifier reads (the VCEK's `productName` up to the `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductLine {
    /// EPYC 7003 (Zen 3).
    Milan,
    /// EPYC 9004 (Zen 4).
    Genoa,
}

impl ProductLine {
    /// Every supported product line.
    pub const ALL: [ProductLine; 2] = [Self::Milan, Self::Genoa];

    /// The name as the VCEK and the release manifest spell it: `Milan`, `Genoa`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
        }
    }

    /// The product line named `name` (exactly as [`Self::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for ProductLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Milan floor: bootloader 3, TEE 0, SNP `0x18` (24), microcode `0xDB` (219).
///
/// - SNP `0x18` and microcode `0xDB`: AMD-SB-3019 (CVE-2024-56161, microcode signature
///   verification, "EntrySign"; also AMD-SB-7033 / CVE-2024-36347, EntrySign's bulletin for all
///   Zen 1 to 5 CPUs). AMD's bulletin gives `TCB[SNP] = 0x18` for Milan (quoted in
///   microsoft/CCF issue 6812) and the fixed microcode `0x0A0011DB` for Milan B1 (CPUID
///   `0x00A00F11`; fwupd's `fu_cpu_amd_model_id_to_entry_sign_fixed_ucode_version`); the TCB's
///   microcode SPL is the low byte of the patch level.
/// - Bootloader 3, TEE 0: no bulletin we rely on names a value; these are Edgeless Constellation's
///   Azure SEV-SNP (Milan) defaults, and every patched Milan report we found carries at least them
///   (e.g. 4, 0 in virtee/snphost issue 125, firmware 1.55.29).
///
/// Known limit: Milan-X (stepping 2) numbers its microcode `0x0A0012xx` (fixed at `0x44`), so its
/// SPL is below `0xDB` and this floor refuses it (fail closed).
pub const MILAN_MINIMUM_TCB: TcbVersion = TcbVersion::new(3, 0, 0x18, 0xDB);

/// The Genoa floor: bootloader 7, TEE 0, SNP `0x17` (23), microcode `0x54` (84).
///
/// - SNP `0x17` and microcode `0x54`: AMD-SB-3019 (CVE-2024-56161; and AMD-SB-7033 /
///   CVE-2024-36347), Genoa fix SEV firmware
///   1.55.40, `TCB[SNP] = 0x17`, microcode `0x0A101154` (CPUID `0x00A10F11`; the same values in
///   microsoft/CCF issue 6812 and fwupd's EntrySign table).
/// - Bootloader 7, TEE 0: tinfoil-go's Genoa floor (`verifier/attestation/sev.go`); no bulletin we
///   rely on names a value.
///
/// Known limit: Genoa-X (stepping 2) numbers its microcode `0x0A1012xx` (fixed at `0x4F`), so this
/// floor refuses it (fail closed). Later bulletins (AMD-SB-3020, AMD-SB-3027) are not in the
/// floor: see the module doc.
pub const GENOA_MINIMUM_TCB: TcbVersion = TcbVersion::new(7, 0, 0x17, 0x54);

/// The lowest TCB accepted, per product line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcbFloor {
    /// For VCEKs of product line Milan.
    pub milan: TcbVersion,
    /// For VCEKs of product line Genoa.
    pub genoa: TcbVersion,
}

impl TcbFloor {
    /// The floor from AMD's bulletins: [`MILAN_MINIMUM_TCB`] and [`GENOA_MINIMUM_TCB`]. A release
    /// manifest carries it, and a device never accepts less (see [`TcbFloor::raised_to`]).
    pub const AMD_BULLETINS: TcbFloor = TcbFloor {
        milan: MILAN_MINIMUM_TCB,
        genoa: GENOA_MINIMUM_TCB,
    };

    /// The floor for one product line.
    pub const fn for_product(&self, product: ProductLine) -> TcbVersion {
        match product {
            ProductLine::Milan => self.milan,
            ProductLine::Genoa => self.genoa,
        }
    }

    /// The component-wise maximum of both floors, per product: what a device uses when a release
    /// states a floor, so a release can raise the device's floor but never lower it.
    pub fn raised_to(&self, other: &TcbFloor) -> TcbFloor {
        fn max(a: TcbVersion, b: TcbVersion) -> TcbVersion {
            TcbVersion::new(
                a.boot_loader.max(b.boot_loader),
                a.tee.max(b.tee),
                a.snp.max(b.snp),
                a.microcode.max(b.microcode),
            )
        }
        TcbFloor {
            milan: max(self.milan, other.milan),
            genoa: max(self.genoa, other.genoa),
        }
    }
}

impl From<TcbVersion> for TcbFloor {
    /// The same floor for every product line.
    fn from(tcb: TcbVersion) -> Self {
        Self {
            milan: tcb,
            genoa: tcb,
        }
    }
}

/// Which TCB of the evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcbField {
    /// The TCB the VCEK certificate was issued for (its extensions).
    Vcek,
    /// The report's `REPORTED_TCB`.
    Reported,
    /// The report's `COMMITTED_TCB`.
    Committed,
    /// The report's `LAUNCH_TCB`.
    Launch,
    /// The report's `CURRENT_TCB`.
    Current,
}

impl TcbField {
    /// The field's name: `vcek_tcb`, `reported_tcb`, `committed_tcb`, `launch_tcb`, `current_tcb`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Vcek => "vcek_tcb",
            Self::Reported => "reported_tcb",
            Self::Committed => "committed_tcb",
            Self::Launch => "launch_tcb",
            Self::Current => "current_tcb",
        }
    }
}

impl fmt::Display for TcbField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component of one TCB below the floor: which, its value and the floor's, for which product.
/// Only SVNs, never evidence bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BelowFloor {
    pub field: TcbField,
    pub component: TcbComponent,
    pub value: u8,
    pub floor: u8,
    pub product: ProductLine,
}

impl fmt::Display for BelowFloor {
    /// E.g. `launch_tcb.snp 23 below the floor 24 (Milan)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} {} below the floor {} ({})",
            self.field, self.component, self.value, self.floor, self.product
        )
    }
}

/// Checks the VCEK's TCB and, when the report could be read, its four TCBs against the floor for
/// `product`, in the order of [`TcbField`]; the first component below the floor is returned.
pub(crate) fn check<T: AsRef<[u8]>>(
    product: ProductLine,
    vcek_tcb: TcbVersion,
    report: Option<&Report<T>>,
    floor: &TcbFloor,
) -> Result<(), BelowFloor> {
    let minimum = floor.for_product(product);
    let mut tcbs = vec![(TcbField::Vcek, vcek_tcb)];
    if let Some(report) = report {
        tcbs.extend([
            (TcbField::Reported, report.reported_tcb()),
            (TcbField::Committed, report.committed_tcb()),
            (TcbField::Launch, report.launch_tcb()),
            (TcbField::Current, report.current_tcb()),
        ]);
    }
    for (field, tcb) in tcbs {
        if let Err(component) = tcb.meets(&minimum) {
            return Err(BelowFloor {
                field,
                component,
                value: tcb.component(component),
                floor: minimum.component(component),
                product,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_attestation::report::ReportRepr;

    #[test]
    fn names_the_first_low_field_and_component() {
        let floor = TcbFloor::AMD_BULLETINS;
        let good = TcbVersion::new(4, 0, 0x18, 0xDB);
        let mut repr = ReportRepr {
            reported_tcb: good,
            committed_tcb: good,
            launch_tcb: TcbVersion::new(4, 0, 0x17, 0xDB),
            current_tcb: good,
            ..ReportRepr::default()
        };
        let bytes = repr.to_bytes();
        let report = Report::new_checked(&bytes[..]).unwrap();
        let err = check(ProductLine::Milan, good, Some(&report), &floor).unwrap_err();
        assert_eq!(
            err.to_string(),
            "launch_tcb.snp 23 below the floor 24 (Milan)"
        );
        // The same report is above the Genoa floor except for the bootloader (4 < 7).
        let err = check(ProductLine::Genoa, good, Some(&report), &floor).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vcek_tcb.boot_loader 4 below the floor 7 (Genoa)"
        );
        repr.launch_tcb = good;
        let bytes = repr.to_bytes();
        let report = Report::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            check(ProductLine::Milan, good, Some(&report), &floor),
            Ok(())
        );
        // Without a readable report only the VCEK's TCB is checked.
        assert_eq!(
            check::<&[u8]>(ProductLine::Milan, good, None, &floor),
            Ok(())
        );
    }

    #[test]
    fn a_release_can_raise_the_floor_but_not_lower_it() {
        let lower = TcbFloor::from(TcbVersion::new(0, 0, 0, 0));
        assert_eq!(
            TcbFloor::AMD_BULLETINS.raised_to(&lower),
            TcbFloor::AMD_BULLETINS
        );
        let higher = TcbFloor {
            milan: TcbVersion::new(9, 1, 0x20, 0x10),
            genoa: GENOA_MINIMUM_TCB,
        };
        assert_eq!(
            TcbFloor::AMD_BULLETINS.raised_to(&higher).milan,
            TcbVersion::new(9, 1, 0x20, 0xDB)
        );
    }

    #[test]
    fn the_test_tcb_meets_the_milan_floor() {
        // Test reports are checked against the real floor (test VCEKs say `Milan-B0`).
        assert_eq!(
            pp_attestation::test_signer::TEST_TCB.meets(&MILAN_MINIMUM_TCB),
            Ok(())
        );
        assert_eq!(ProductLine::from_name("Milan"), Some(ProductLine::Milan));
        assert_eq!(ProductLine::from_name("milan"), None);
    }
}
