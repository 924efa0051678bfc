//! Compare a built release folder with a manifest: recompute every hash and launch digest from
//! the folder's files and print them side by side with what the manifest states.
//!
//! Producing the folder — a rebuild from source at another path — is the task runner's part
//! (`cargo xtask verify`); this module needs only the files.

use std::path::Path;

use anyhow::{Context, Result};

use crate::manifest::{Artifact, MEASUREMENT_LEN, Manifest, Measurement};
use crate::measure::{MeasureInputs, VcpuModel};
use crate::release::{AMDSEV_FIRMWARE_FILE, IMAGE_FILE};

/// One compared value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub input: String,
    pub expected: String,
    pub got: String,
}

impl Row {
    /// Whether the recomputed value is the stated one.
    pub fn matches(&self) -> bool {
        self.expected == self.got
    }
}

impl Measurement {
    /// The launch digests these parameters give for the release folder `dir` (holding `pp.efi`
    /// and the AmdSev firmware), one per entry of `vcpu_counts`, in order.
    pub fn launch_digests(
        &self,
        dir: &Path,
        vcpu_counts: &[u32],
    ) -> Result<Vec<[u8; MEASUREMENT_LEN]>> {
        let guest_features = u64::from_str_radix(self.guest_features.trim_start_matches("0x"), 16)
            .context("guest_features is not hex")?;
        let inputs = MeasureInputs {
            ovmf: dir.join(AMDSEV_FIRMWARE_FILE),
            kernel: Some(dir.join(IMAGE_FILE)),
            initrd: None,
            append: Some(self.append.clone()),
            vcpus: 1,
            vcpu: VcpuModel::Named(self.vcpu_type.clone()),
            guest_features,
            vmm_type: self.vmm_type.clone(),
        };
        Ok(crate::measure::launch_digests(&inputs, vcpu_counts)?)
    }

    /// The vCPU counts this measurement gives digests for, in the digests' (string) order.
    fn vcpu_counts(&self) -> Result<Vec<u32>> {
        self.digests
            .keys()
            .map(|n| {
                n.parse()
                    .with_context(|| format!("the manifest's vCPU count {n:?} is not a number"))
            })
            .collect()
    }
}

/// Recompute from the files in `dir` every value `expected` states, as rows. `rebuilt` is the
/// manifest written with the folder: intermediate components and input hashes are taken from
/// it (they are not in the folder), everything in the folder is recomputed.
pub fn compare_dir(expected: &Manifest, dir: &Path, rebuilt: &Manifest) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let hash = |name: &str| -> Result<String> { Ok(Artifact::of(&dir.join(name), name)?.sha256) };
    rows.push(Row {
        input: "pp.efi sha256".into(),
        expected: expected.image.sha256.clone(),
        got: hash(IMAGE_FILE)?,
    });
    for (role, art) in &expected.components {
        let got = rebuilt
            .components
            .get(role)
            .map(|a| a.sha256.clone())
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("{role} sha256"),
            expected: art.sha256.clone(),
            got,
        });
    }
    for (file, sha) in &expected.inputs {
        let got = rebuilt
            .inputs
            .get(file)
            .cloned()
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("{file} sha256"),
            expected: sha.clone(),
            got,
        });
    }
    for (role, art) in &expected.firmware {
        let got = rebuilt
            .firmware
            .get(role)
            .map(|a| a.sha256.clone())
            .unwrap_or_else(|| "missing".into());
        rows.push(Row {
            input: format!("firmware {role} sha256"),
            expected: art.sha256.clone(),
            got,
        });
    }
    let m = &expected.measurement;
    rows.push(Row {
        input: "AmdSev firmware sha256".into(),
        expected: m.firmware.sha256.clone(),
        got: hash(AMDSEV_FIRMWARE_FILE)?,
    });
    rows.push(Row {
        input: "QEMU SNP command".into(),
        expected: m.qemu_snp_command.clone(),
        got: rebuilt.measurement.qemu_snp_command.clone(),
    });
    let launch_policy = |m: &Manifest| -> Result<String> {
        Ok(match &m.launch_policy {
            Some(policy) => serde_json::to_string(policy)?,
            None => "missing".into(),
        })
    };
    rows.push(Row {
        input: "launch policy (guest policy, TCB floor)".into(),
        expected: launch_policy(expected)?,
        got: launch_policy(rebuilt)?,
    });
    let counts = m.vcpu_counts()?;
    let got: Vec<String> = match m.launch_digests(dir, &counts) {
        Ok(digests) => digests.iter().map(hex::encode).collect(),
        Err(e) => vec![format!("error: {e:#}"); counts.len()],
    };
    for ((vcpus, digest), got) in m.digests.iter().zip(got) {
        rows.push(Row {
            input: format!("launch digest, {vcpus} vCPU"),
            expected: digest.clone(),
            got,
        });
    }
    Ok(rows)
}

/// Print rows as a table; returns whether all matched.
pub fn print_table(rows: &[Row]) -> bool {
    let width = rows.iter().map(|r| r.input.len()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:<8}  expected / got", "input", "match");
    for row in rows {
        let mark = if row.matches() { "yes" } else { "NO" };
        println!("{:<width$}  {mark:<8}  {}", row.input, row.expected);
        println!("{:<width$}  {:<8}  {}", "", "", row.got);
    }
    rows.iter().all(Row::matches)
}
