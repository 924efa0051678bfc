//! The operator's publishing step: fetch publication evidence from every enclave instance, write
//! the key CDN's folder (index, evidence, release manifest) and append the index to the
//! transparency log as a `pp-cdn-index/1` entry. The CDN then serves that folder to every device
//! alike, and a device uses an index only if it is the newest one in the log: the operator cannot
//! show one user instances the others do not see.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use pp_protocol::cdn_index::{CdnIndex, CdnInstance, INDEX_FILE, SCHEMA, instance_id};
use pp_protocol::evidence::{Evidence, EvidenceRepr};
use sha2::{Digest, Sha256};

use crate::gateway::InstanceMap;

/// What to do with instance ids in the map that differ from the derived ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// Refuse: the map must already use the ids derived from each instance's key configuration.
    Check,
    /// Replace them with the derived ids (the caller writes the map back).
    Assign,
}

/// Fetches each instance's publication evidence and writes `out` (created if needed):
/// `enclaves.json`, `evidence/<id>.bin`, and `releases/<release_ref>.json` (a copy of
/// `manifest`, the release manifest the instances were built as). Each id is
/// [`instance_id`] of the SHA-256 of the instance's attested key configuration. Returns the index
/// and the instance map with those ids. `gateway_key_config` (hex of the gateway's RFC 9458 key
/// configuration, [`crate::ohttp_key::public_hex`]) goes into the index for the one-shot path.
pub fn publish(
    instances: &InstanceMap,
    manifest: &Path,
    out: &Path,
    ids: Ids,
    gateway_key_config: Option<String>,
) -> Result<(CdnIndex, InstanceMap)> {
    let manifest_bytes =
        std::fs::read(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    std::fs::create_dir_all(out.join("evidence"))?;
    std::fs::create_dir_all(out.join("releases"))?;
    let published = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let mut index = CdnIndex {
        schema: SCHEMA.to_string(),
        published,
        instances: Vec::new(),
        gateway_key_config,
    };
    let mut map = instances.clone();
    for instance in &mut map.instances {
        let bundle = fetch(&instance.address)
            .with_context(|| format!("instance {} at {}", instance.id, instance.address))?;
        let view = Evidence::new_checked(&bundle[..])
            .map_err(|e| anyhow::anyhow!("instance {}: malformed evidence: {e}", instance.id))?;
        let repr = EvidenceRepr::parse(&view)
            .map_err(|e| anyhow::anyhow!("instance {}: malformed evidence: {e}", instance.id))?;
        let key_hash: [u8; 32] = Sha256::digest(repr.key_config).into();
        let id = instance_id(&key_hash);
        match ids {
            Ids::Check => anyhow::ensure!(
                instance.id == id,
                "instance {} at {}: its id must be {id}, derived from its key configuration",
                instance.id,
                instance.address
            ),
            Ids::Assign => instance.id = id.clone(),
        }
        let entry = CdnInstance {
            id,
            key_config_sha256: hex::encode(key_hash),
            evidence_sha256: hex::encode(Sha256::digest(&bundle)),
            release_ref: hex::encode(repr.release_ref),
        };
        std::fs::write(out.join(entry.release_path()), &manifest_bytes)?;
        std::fs::write(out.join(entry.evidence_path()), &bundle)?;
        index.instances.push(entry);
    }
    // The same checks a device makes on the text (ids derived, no duplicates, 1..=64).
    let bytes = index.to_vec();
    CdnIndex::parse(&bytes).map_err(|e| anyhow::anyhow!("the index cannot be published: {e}"))?;
    std::fs::write(out.join(INDEX_FILE), bytes)?;
    Ok((index, map))
}

/// Appends `entry` to the transparency log at `url` with the operator's bearer `credential`
/// (`POST /append`); returns the log's answer.
pub fn append_to_log(url: &str, credential: &str, entry: &[u8]) -> Result<String> {
    let mut response = ureq::post(format!("{url}/append"))
        .header("authorization", format!("Bearer {}", credential.trim()))
        .config()
        .http_status_as_error(false)
        .build()
        .send(entry)
        .with_context(|| format!("cannot reach the log at {url}"))?;
    let text = response.body_mut().read_to_string().unwrap_or_default();
    anyhow::ensure!(
        response.status() == 200,
        "the log refused the append (HTTP {}): {}",
        response.status().as_u16(),
        text.trim()
    );
    Ok(text.trim().to_string())
}

fn fetch(address: &str) -> Result<Vec<u8>> {
    let stream = TcpStream::connect(address).context("cannot connect")?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    pp_client::fetch_publication(stream).map_err(|e| anyhow::anyhow!("publication evidence: {e}"))
}
