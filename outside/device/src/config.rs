//! The device's configuration file (TOML): where the relay, gateway, issuer, CDN and log are,
//! which certificates and keys to trust, and where the device keeps its state.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where tokens, the last log tree head and receipts are kept.
    pub state_dir: PathBuf,
    pub relay: Relay,
    pub gateway: Gateway,
    pub issuer: Issuer,
    pub cdn: Cdn,
    pub log: Log,
    #[serde(default)]
    pub trust: Trust,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// `host:port` of the relay's TLS endpoint.
    pub address: String,
    /// The name on the relay's certificate.
    pub server_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// What the relay is asked to CONNECT to (`host:port`).
    pub authority: String,
    /// The name on the gateway's certificate, also the Privacy Pass origin name.
    pub server_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Base URL of the token issuer.
    pub url: String,
    /// A file holding this account's credential (a bearer secret).
    pub credential_file: PathBuf,
    /// Tokens asked for at once.
    #[serde(default = "default_batch")]
    pub batch: u8,
}

fn default_batch() -> u8 {
    4
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cdn {
    /// Base URL of the key CDN.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// Base URL of the transparency log.
    pub url: String,
    /// The log's Ed25519 public key, hex.
    pub public_key: String,
}

/// Which roots and CAs to trust.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// PEM CA certificates for the relay's and the gateway's TLS, in addition to none: without
    /// it no relay or gateway certificate is accepted.
    pub tls_ca: Option<PathBuf>,
    /// A **test** ARK (DER) to trust *instead of* AMD's roots — for enclaves running without
    /// SEV-SNP hardware (the QEMU demo). Honoured only by the `pp-test-root` build (feature
    /// `test-root`); the shipped `pp` refuses to run with it. Absent: only AMD's Milan and Genoa
    /// roots are trusted.
    pub test_root_ark: Option<PathBuf>,
    /// AMD's CRLs (DER, the KDS `vcek/v1/{Milan,Genoa}/crl` files, fetched elsewhere: the device
    /// does not download them), one per product. An ASK they list is refused. Each must be
    /// signed by a trusted ARK: a malformed one, or one signed by another key, stops the command
    /// at startup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amd_crls: Vec<PathBuf>,
}

impl Config {
    /// Reads a configuration file; relative paths in it are taken from the file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid pp configuration", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut config.state_dir);
        fix(&mut config.issuer.credential_file);
        if let Some(p) = config.trust.tls_ca.as_mut() {
            fix(p);
        }
        if let Some(p) = config.trust.test_root_ark.as_mut() {
            fix(p);
        }
        config.trust.amd_crls.iter_mut().for_each(fix);
        anyhow::ensure!(
            (1..=32).contains(&config.issuer.batch),
            "issuer.batch must be 1..=32"
        );
        Ok(config)
    }

    /// Writes the configuration as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}
