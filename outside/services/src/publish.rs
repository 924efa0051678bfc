//! The operator's publishing step: fetch publication evidence from every enclave instance and
//! write the key CDN's folder (index, evidence, release manifest). The CDN then serves that folder
//! to every device alike. The operator gains nothing by lying here: devices verify the evidence
//! and look the release up in the transparency log.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use pp_protocol::cdn_index::{CdnIndex, CdnInstance, INDEX_FILE, SCHEMA};
use pp_protocol::evidence::{Evidence, EvidenceRepr};

use crate::gateway::InstanceMap;

/// Fetches each instance's publication evidence and writes `out` (created if needed):
/// `enclaves.json`, `evidence/<id>.bin`, and `releases/<release_ref>.json` (a copy of
/// `manifest`, the release manifest the instances were built as).
pub fn publish(instances: &InstanceMap, manifest: &Path, out: &Path) -> Result<CdnIndex> {
    let manifest_bytes =
        std::fs::read(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    std::fs::create_dir_all(out.join("evidence"))?;
    std::fs::create_dir_all(out.join("releases"))?;
    let mut index = CdnIndex {
        schema: SCHEMA.to_string(),
        instances: Vec::new(),
    };
    for instance in &instances.instances {
        let bundle = fetch(&instance.address)
            .with_context(|| format!("instance {} at {}", instance.id, instance.address))?;
        let view = Evidence::new_checked(&bundle[..])
            .map_err(|e| anyhow::anyhow!("instance {}: malformed evidence: {e}", instance.id))?;
        let repr = EvidenceRepr::parse(&view)
            .map_err(|e| anyhow::anyhow!("instance {}: malformed evidence: {e}", instance.id))?;
        let release = format!("releases/{}.json", hex::encode(repr.release_ref));
        std::fs::write(out.join(&release), &manifest_bytes)?;
        let evidence = format!("evidence/{}.bin", instance.id);
        std::fs::write(out.join(&evidence), &bundle)?;
        index.instances.push(CdnInstance {
            id: instance.id.clone(),
            evidence,
            release,
        });
    }
    std::fs::write(out.join(INDEX_FILE), index.to_vec())?;
    Ok(index)
}

fn fetch(address: &str) -> Result<Vec<u8>> {
    let stream = TcpStream::connect(address).context("cannot connect")?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    pp_client::fetch_publication(stream).map_err(|e| anyhow::anyhow!("publication evidence: {e}"))
}
