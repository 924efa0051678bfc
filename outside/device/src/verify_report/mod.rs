//! `pp verify-report`: an auditor's offline check of a captured SEV-SNP attestation report, with
//! the device's own verifier ([`pp_verifier::verify`]) and AMD's built-in roots.
//!
//! The verifier always makes every check. `measurement` and `report-data` can only be checked
//! against values the auditor gives (`--measurement`, `--report-data`), and `not-revoked` only
//! against a CRL (`--crl`); when one is not given, that check is printed as "not checked" and
//! left out of this command's acceptance — the verifier itself is unchanged and still refuses
//! such a verdict (the device never skips a check). Every other check must pass.
//!
//! The TCB floor is the device's ([`TcbFloor::AMD_BULLETINS`]) unless `--min-tcb` is given: the
//! verifier picks the product's floor from the VCEK, as on the device. A `--min-tcb` below the
//! device's floor for a product is printed as a warning.

mod input;

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use pp_attestation::report::Report;
use pp_attestation::tcb::TcbVersion;
use pp_verifier::verify::{GuestPolicyRule, ProductLine, RELEASE_GUEST_POLICY, TcbFloor};
use pp_verifier::{CheckName, EvidenceRef, Outcome, Policy, Verdict};

pub use input::{
    CertFormError, InputError, ReportFormError, parse_certificate, parse_hex, parse_policy,
    parse_report, parse_tcb, parse_time, show_tcb,
};

/// The command line of `pp verify-report`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = after_help())]
pub struct Args {
    /// The attestation report: exactly 1184 raw bytes, or its hex text (2368 hex digits;
    /// whitespace and line breaks allowed, nothing else). A file of only hex digits and
    /// whitespace is read as hex.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// The VCEK certificate of the chip that signed the report, DER or PEM (one certificate).
    #[arg(long, value_name = "FILE")]
    pub vcek: PathBuf,
    /// The ASK certificate, DER or PEM. Default: AMD's built-in ASK for the VCEK's product
    /// (Milan or Genoa). A given ASK must be signed by the ARK.
    #[arg(long, value_name = "FILE")]
    pub ask: Option<PathBuf>,
    /// The ARK certificate, DER or PEM. Default: AMD's built-in ARK for the VCEK's product.
    /// A given ARK is trusted only if its key is AMD's built-in Milan or Genoa root: there is no
    /// option to trust another root.
    #[arg(long, value_name = "FILE")]
    pub ark: Option<PathBuf>,
    /// An allowed launch measurement, 96 hex digits; repeat for several. Without it the
    /// `measurement` check is not made: it is printed as "not checked (no --measurement given)"
    /// and left out of the verdict.
    #[arg(long = "measurement", value_name = "HEX", value_parser = parse_hex::<48>)]
    pub measurements: Vec<[u8; 48]>,
    /// The expected REPORT_DATA, 128 hex digits. Without it the `report-data` check is not made:
    /// it is printed as "not checked (no --report-data given)" and left out of the verdict.
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<64>)]
    pub report_data: Option<[u8; 64]>,
    /// The lowest TCB accepted, compared per component with the VCEK's TCB and the report's
    /// reported, committed, launch and current TCBs, for every product: `bl=3,tee=0,snp=24,ucode=219`
    /// (decimal; components left out are 0; this is the device's Milan floor), or the TCB_VERSION
    /// as a 16-hex-digit number (`0xdb18000000000003`: ucode, snp, four zero bytes, tee, bl).
    /// Default: the device's floor per product (from AMD's security bulletins; the VCEK's product
    /// picks one); the floor used is printed, with a warning if it is below the device's.
    #[arg(long, value_name = "TCB", value_parser = parse_tcb)]
    pub min_tcb: Option<TcbVersion>,
    /// The guest policy the report must carry exactly, hex. Default: the policy every release
    /// launches with and the device requires (0x30000: SMT allowed, no debug, no migration agent).
    #[arg(long, value_name = "HEX", value_parser = parse_policy)]
    pub guest_policy: Option<u64>,
    /// The time the certificates must be valid at: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    /// Default: this machine's clock.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<SystemTime>,
    /// AMD's CRL for the product (the KDS `crl` file, DER), signed by AMD's ARK; an ASK it lists
    /// is refused (`not-revoked`). Repeat for several. Without it the `not-revoked` check is not
    /// made: it is printed as "not checked (no --crl given)" and left out of the verdict. A CRL
    /// past its nextUpdate (at --at) is used, with a warning.
    #[arg(long = "crl", value_name = "FILE")]
    pub crls: Vec<PathBuf>,
}

/// The long help's tail: the checks (from the verifier's own list), what "accepted" means,
/// what is not checked, the exit status.
fn after_help() -> String {
    let checks: Vec<_> = CheckName::ALL.iter().map(|c| c.as_str()).collect();
    format!(
        "\
Checks, in order (the device's verifier: the same code and policy; `pp-verifier`'s README says
what each one requires): {}.

Accepted means: every check passed, except `measurement`, `report-data` and `not-revoked` when
their option (--measurement, --report-data, --crl) was not given; those are printed as \"not
checked\". Without --measurement an accepted report shows only that a genuine AMD chip at that TCB
signed it, not which image it ran; without --report-data, not that it is fresh or bound to
anything; without --crl, not that AMD has not revoked the ASK.

Certificates must be valid at --at (default: this machine's clock). Revocation is checked only
against the CRLs given with --crl (nothing is downloaded). VLEK-signed reports and Turin are
refused.

Example: pp verify-report --report report.hex --vcek vcek.der --measurement <96 hex>
  --report-data <128 hex> --crl milan.crl --at 2026-06-01
(the device's floor and guest policy by default; for a Milan VCEK, --min-tcb
bl=3,tee=0,snp=24,ucode=219 --guest-policy 0x30000 say the same explicitly)

Exit status: 0 accepted, 1 refused (the verdict is printed), 2 usage or input error (nothing
verified).",
        checks.join(", ")
    )
}

/// The verdict on one report, with what the auditor pinned.
#[derive(Debug)]
pub struct Audit {
    verdict: Verdict,
    /// The checks not made, with the option that would have pinned them.
    unpinned: Vec<(CheckName, &'static str)>,
    /// What the report claims, when it could be read.
    claims: Option<Claims>,
    /// One line each: where the VCEK, ASK and ARK came from.
    chain: [String; 3],
    /// The floor's lines: one per product, or the one `--min-tcb`.
    tcb_floor: Vec<String>,
    /// Warning lines (a floor below the device's, a CRL past its nextUpdate).
    warnings: Vec<String>,
    guest_policy: String,
    clock: String,
    crls: usize,
}

/// Report fields printed for the auditor (claims until the verdict accepts them).
#[derive(Debug)]
struct Claims {
    version: u32,
    vmpl: u32,
    policy: u64,
    measurement: [u8; 48],
    report_data: [u8; 64],
    reported_tcb: TcbVersion,
    chip_id: [u8; 64],
}

/// The floor for `--min-tcb` (or the device's without it), the lines describing it, and a
/// warning for each product whose device floor it is below.
fn tcb_floor(min_tcb: Option<TcbVersion>) -> (TcbFloor, Vec<String>, Vec<String>) {
    let device = TcbFloor::AMD_BULLETINS;
    let Some(tcb) = min_tcb else {
        let lines = ProductLine::ALL
            .iter()
            .map(|&p| format!("  {p}: {}", show_tcb(&device.for_product(p))))
            .collect();
        return (device, lines, Vec::new());
    };
    let warnings = ProductLine::ALL
        .iter()
        .filter(|&&p| tcb.meets(&device.for_product(p)).is_err())
        .map(|&p| {
            format!(
                "Warning: --min-tcb is below the device's {p} floor {}: a {p} report the device \
                 refuses can be accepted here",
                show_tcb(&device.for_product(p))
            )
        })
        .collect();
    (TcbFloor::from(tcb), Vec::new(), warnings)
}

/// Reads the files named in `args` and verifies them. `Err` only for input that is not a
/// report or certificate (exit 2); a report that fails any check is an `Ok` refused audit.
pub fn audit(args: &Args) -> Result<Audit, InputError> {
    let shown = |path: &PathBuf| path.display().to_string();
    let report_bytes = input::read_file("--report", &args.report)?;
    let report = parse_report(&report_bytes).map_err(|reason| InputError::Report {
        path: shown(&args.report),
        reason,
    })?;
    let certificate = |option: &'static str, path: &PathBuf| {
        let bytes = input::read_file(option, path)?;
        parse_certificate(&bytes).map_err(|reason| InputError::Certificate {
            option,
            path: shown(path),
            reason,
        })
    };
    let vcek = certificate("--vcek", &args.vcek)?;
    let product = input::product_name(&vcek);
    let line = product
        .as_deref()
        .map(|p| p.split('-').next().unwrap_or_default());

    // AMD's built-in ASK/ARK (PEM, from the `sev` crate) for the VCEK's product line.
    let builtin = |role: &str| -> Result<(Vec<u8>, String), InputError> {
        use sev::certs::snp::builtin::{genoa, milan};
        let (ask, ark) = match line {
            Some("Milan") => (milan::ASK, milan::ARK),
            Some("Genoa") => (genoa::ASK, genoa::ARK),
            _ => {
                let reason = match &product {
                    Some(p) => format!("its product is `{p}`"),
                    None => "it has no readable productName extension".to_owned(),
                };
                return Err(InputError::NoBuiltinChain {
                    path: shown(&args.vcek),
                    reason,
                });
            }
        };
        let pem = if role == "ASK" { ask } else { ark };
        let from = format!("AMD's built-in {} {role}", line.unwrap_or_default());
        let der = parse_certificate(pem).map_err(|_| InputError::BuiltIn(from.clone()))?;
        Ok((der, from))
    };
    let given = |role: &str, option: &'static str, path: &Option<PathBuf>| match path {
        Some(path) => certificate(option, path).map(|der| (der, shown(path))),
        None => builtin(role),
    };
    let (ask, ask_from) = given("ASK", "--ask", &args.ask)?;
    let (ark, ark_from) = given("ARK", "--ark", &args.ark)?;

    let (min_tcb, mut floor_lines, mut warnings) = tcb_floor(args.min_tcb);
    floor_lines.insert(
        0,
        match args.min_tcb {
            Some(tcb) => format!("{}, from --min-tcb (every product)", show_tcb(&tcb)),
            None => "the device's, from AMD's bulletins (the VCEK's product picks one):".to_owned(),
        },
    );
    let (guest_policy, policy_from) = match args.guest_policy {
        Some(policy) => (policy, "from --guest-policy"),
        None => (
            RELEASE_GUEST_POLICY,
            "the release policy the device requires",
        ),
    };
    let rule = GuestPolicyRule::exact(guest_policy).map_err(|reason| InputError::GuestPolicy {
        policy: guest_policy,
        reason,
    })?;
    let (now, clock) = match args.at {
        Some(at) => (at, "from --at"),
        None => (SystemTime::now(), "this machine's clock"),
    };

    let mut unpinned = Vec::new();
    if args.measurements.is_empty() {
        unpinned.push((CheckName::Measurement, "--measurement"));
    }
    if args.report_data.is_none() {
        unpinned.push((CheckName::ReportData, "--report-data"));
    }
    if args.crls.is_empty() {
        unpinned.push((CheckName::NotRevoked, "--crl"));
    }
    // AMD's roots only: `Policy::new` has no way to add another.
    let mut policy = Policy::new(args.measurements.clone(), min_tcb)
        .map_err(|_| InputError::BuiltIn("AMD's Milan and Genoa roots".to_owned()))?
        .with_guest_policy(rule);
    for path in &args.crls {
        let der = input::read_file("--crl", path)?;
        policy = policy
            .with_amd_crl(&der)
            .map_err(|reason| InputError::Crl {
                path: shown(path),
                reason,
            })?;
    }
    for (i, next_update) in policy.amd_crls_past_next_update(now) {
        warnings.push(format!(
            "Warning: the CRL {} is past its nextUpdate {next_update} (at {}): AMD may have \
             revoked more since; it is used as it is",
            shown(&args.crls[i]),
            show_time(now)
        ));
    }
    let evidence = EvidenceRef {
        report: &report,
        vcek_der: &vcek,
        ask_der: &ask,
        ark_der: &ark,
    };
    let expected = args.report_data.unwrap_or([0; 64]);
    let verdict = pp_verifier::verify(evidence, &policy, &expected, now);

    let vcek_from = match &product {
        Some(p) => format!("{} (product {p})", shown(&args.vcek)),
        None => format!("{} (no product name)", shown(&args.vcek)),
    };
    Ok(Audit {
        verdict,
        unpinned,
        claims: Report::new_checked(report.as_slice())
            .ok()
            .map(|r| Claims::of(&r)),
        chain: [vcek_from, ask_from, ark_from],
        tcb_floor: floor_lines,
        warnings,
        guest_policy: format!("{guest_policy:#x}, {policy_from}"),
        clock: format!("{}, {clock}", show_time(now)),
        crls: args.crls.len(),
    })
}

impl Claims {
    fn of(r: &Report<&[u8]>) -> Self {
        Self {
            version: r.version(),
            vmpl: r.vmpl(),
            policy: r.policy(),
            measurement: r.measurement(),
            report_data: r.report_data(),
            reported_tcb: r.reported_tcb(),
            chip_id: r.chip_id(),
        }
    }
}

impl Audit {
    /// Accepted: every check the verifier lists passed, except the ones not pinned (no
    /// `--measurement` / `--report-data`), and all of [`CheckName::ALL`] were made.
    pub fn accepted(&self) -> bool {
        CheckName::ALL
            .iter()
            .all(|name| self.verdict.outcome(*name).is_some())
            && self
                .verdict
                .checks()
                .iter()
                .all(|c| c.outcome == Outcome::Pass || self.unpinned_by(c.name).is_some())
    }

    /// The full verdict of the device's verifier (pinned or not).
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn unpinned_by(&self, name: CheckName) -> Option<&'static str> {
        self.unpinned
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, option)| *option)
    }
}

impl fmt::Display for Audit {
    /// The report's claims, the chain's sources, the TCB floor, one line per check, the result.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.claims {
            writeln!(
                f,
                "Report (its claims; they hold only if the verdict below is accepted):"
            )?;
            writeln!(
                f,
                "  version {}, VMPL {}, guest policy {:#x}",
                c.version, c.vmpl, c.policy
            )?;
            writeln!(f, "  measurement   {}", hex::encode(c.measurement))?;
            writeln!(f, "  report data   {}", hex::encode(c.report_data))?;
            writeln!(f, "  reported TCB  {}", show_tcb(&c.reported_tcb))?;
            writeln!(f, "  chip id       {}", hex::encode(c.chip_id))?;
        }
        let [vcek, ask, ark] = &self.chain;
        writeln!(f, "VCEK: {vcek}")?;
        writeln!(f, "ASK:  {ask}")?;
        writeln!(f, "ARK:  {ark}")?;
        writeln!(
            f,
            "Trusted roots: AMD's Milan and Genoa ARKs, built in (no option adds another)"
        )?;
        for (i, line) in self.tcb_floor.iter().enumerate() {
            match i {
                0 => writeln!(f, "TCB floor: {line}")?,
                _ => writeln!(f, "{line}")?,
            }
        }
        writeln!(f, "Guest policy required: {}", self.guest_policy)?;
        writeln!(f, "Certificates valid at: {}", self.clock)?;
        match self.crls {
            0 => writeln!(f, "Revocation: not checked (no --crl given)")?,
            n => writeln!(f, "Revocation: {n} AMD CRL(s) from --crl")?,
        }
        for warning in &self.warnings {
            writeln!(f, "{warning}")?;
        }
        writeln!(f, "Checks:")?;
        for check in self.verdict.checks() {
            match self.unpinned_by(check.name) {
                Some(option) => {
                    writeln!(f, "----  {}: not checked (no {option} given)", check.name)?
                }
                None => writeln!(f, "{check}")?,
            }
        }
        let names = |names: Vec<CheckName>| {
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if self.accepted() {
            if self.unpinned.is_empty() {
                writeln!(f, "Verdict: accepted (every check passed)")
            } else {
                let not = names(self.unpinned.iter().map(|(n, _)| *n).collect());
                writeln!(
                    f,
                    "Verdict: accepted (every check made passed; not checked: {not})"
                )
            }
        } else {
            let pinned = || {
                self.verdict
                    .checks()
                    .iter()
                    .filter(|c| self.unpinned_by(c.name).is_none())
            };
            let failed = pinned()
                .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
                .map(|c| c.name);
            write!(f, "Verdict: REFUSED (failed: {}", names(failed.collect()))?;
            let skipped: Vec<_> = pinned()
                .filter(|c| c.outcome == Outcome::Skipped)
                .map(|c| c.name)
                .collect();
            if !skipped.is_empty() {
                write!(f, "; skipped: {}", names(skipped))?;
            }
            writeln!(f, ")")
        }
    }
}

/// `2026-12-06T18:00:00Z`, for the clock line.
fn show_time(t: SystemTime) -> String {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| x509_cert::der::DateTime::from_unix_duration(d).ok())
        .map_or_else(
            || "(before 1970 or after 9999)".to_owned(),
            |t| t.to_string(),
        )
}
