//! The verdict: every check and its outcome.

use super::{CheckName, FailReason};
use core::fmt;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(FailReason),
    /// Not evaluated: an input it needs could not be read (another check says why).
    Skipped,
}

impl From<Result<(), FailReason>> for Outcome {
    fn from(result: Result<(), FailReason>) -> Self {
        match result {
            Ok(()) => Self::Pass,
            Err(reason) => Self::Fail(reason),
        }
    }
}

/// One line of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: CheckName,
    pub outcome: Outcome,
}

/// Every check and its outcome, in [`CheckName::ALL`] order (then any checks the caller added).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    checks: Vec<Check>,
    /// The report's measurement, when the report could be read.
    pub(super) measurement: Option<[u8; 48]>,
}

impl Verdict {
    /// True only if every report check ([`CheckName::ALL`]) is listed and every listed check
    /// passed: a verdict built by hand, without [`verify`](super::verify()), is never accepted.
    pub fn accepted(&self) -> bool {
        CheckName::ALL
            .iter()
            .all(|name| self.checks.iter().any(|c| c.name == *name))
            && self.checks.iter().all(|c| c.outcome == Outcome::Pass)
    }

    /// Every check, in order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The outcome of one check.
    pub fn outcome(&self, name: CheckName) -> Option<Outcome> {
        self.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.outcome)
    }

    /// The launch measurement the verdict vouches for: `Some` only when every check passed, so a
    /// caller never needs to read the report again.
    pub fn measurement(&self) -> Option<[u8; 48]> {
        self.measurement.filter(|_| self.accepted())
    }

    /// Adds a check the caller made of the same evidence or session (e.g. [`CheckName::SESSION`]):
    /// it passes when `ok`, fails with `reason` otherwise, and counts toward [`Self::accepted`].
    pub fn require(&mut self, name: CheckName, ok: bool, reason: FailReason) {
        self.push(name, require(ok, reason));
    }

    /// Adds [`CheckName::MeasurementPublished`]: the report's measurement equals `expected` (the
    /// one the instance published). Fails when the report could not be read.
    pub fn require_measurement(&mut self, expected: &[u8; 48]) {
        let ok = self.measurement.as_ref() == Some(expected);
        self.require(
            CheckName::MeasurementPublished,
            ok,
            FailReason::MeasurementNotPublished,
        );
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = (CheckName, FailReason)> + '_ {
        self.checks.iter().filter_map(|c| match c.outcome {
            Outcome::Fail(reason) => Some((c.name, reason)),
            _ => None,
        })
    }

    pub(super) fn push(&mut self, name: CheckName, outcome: impl Into<Outcome>) {
        self.checks.push(Check {
            name,
            outcome: outcome.into(),
        });
    }
}

impl fmt::Display for Check {
    /// One verdict line: `pass  name`, `FAIL  name: reason` or `skip  name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            Outcome::Pass => write!(f, "pass  {}", self.name),
            Outcome::Fail(reason) => write!(f, "FAIL  {}: {reason}", self.name),
            Outcome::Skipped => write!(f, "skip  {}", self.name),
        }
    }
}

impl fmt::Display for Verdict {
    /// One line per check (see [`Check`]'s `Display`), then the overall result.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        let overall = if self.accepted() {
            "accepted"
        } else {
            "rejected"
        };
        write!(f, "{overall}")
    }
}

pub(super) fn require(ok: bool, reason: FailReason) -> Outcome {
    if ok {
        Outcome::Pass
    } else {
        Outcome::Fail(reason)
    }
}
