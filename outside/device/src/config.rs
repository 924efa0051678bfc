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
    /// Which path requests take by default.
    #[serde(default)]
    pub request: Request,
}

/// `[request]`: the default path of `pp summarize` and `pp suggest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `"oneshot"` (the default) or `"session"`; `--session` asks for the session path.
    #[serde(default)]
    pub path: RequestPath,
}

/// How a request reaches the enclave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestPath {
    /// Oblivious HTTP through the relay (`relay.ohttp_url`): the request sealed to the instance's
    /// logged key configuration (its publication evidence), no handshake with the enclave.
    #[default]
    Oneshot,
    /// CONNECT through the relay and the gateway, then an attested TLS session with fresh
    /// evidence for this session.
    Session,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// `host:port` of the relay's TLS endpoint.
    pub address: String,
    /// The name on the relay's certificate.
    pub server_name: String,
    /// The relay's Oblivious HTTP resource (`https://host:port/`), for one-shot requests; its
    /// certificate is checked against `trust.tls_ca` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ohttp_url: Option<String>,
    /// `host:port` to dial for `ohttp_url` when its host is a name this device cannot resolve
    /// (the URL's host is still the name checked on the certificate and sent as `Host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ohttp_address: Option<String>,
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
    /// After a request (answered or failed), a batch is fetched if fewer tokens than this are
    /// left of keys valid a day ahead, so token fetches do not come right before a spend (0:
    /// fetch only when the wallet is empty).
    #[serde(default = "default_low_water")]
    pub low_water: u8,
}

fn default_batch() -> u8 {
    4
}

fn default_low_water() -> u8 {
    2
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cdn {
    /// Base URL of the key CDN. Read through the relay and the gateway, which must front this URL
    /// (`pp-gateway serve --read-upstream`): never from the device's own address.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// Base URL of the transparency log. Read through the relay and the gateway, which must front
    /// this URL (`pp-gateway serve --read-upstream`): never from the device's own address.
    pub url: String,
    /// The log's Ed25519 public key, hex.
    pub public_key: String,
    /// The log's origin line (the name in its C2SP checkpoints).
    #[serde(default = "default_origin")]
    pub origin: String,
    /// The witnesses' verifier keys (`name+keyid+base64`, C2SP `cosignature/v1`, type 0x04).
    /// Required: a tree head no witness vouched for is never accepted.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// How many of `witnesses` must have cosigned a tree head (k of n).
    #[serde(default = "default_threshold")]
    pub witness_threshold: usize,
    /// Largest age of a tree head, by its witnesses' cosignature times, in seconds.
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
}

fn default_origin() -> String {
    pp_translog::checkpoint::DEFAULT_ORIGIN.to_string()
}

fn default_threshold() -> usize {
    1
}

fn default_max_age() -> u64 {
    24 * 3600
}

impl Log {
    /// The device's policy for this log's checkpoints; refuses a configuration without
    /// witnesses, a threshold outside 1..=n, or a malformed key.
    pub fn trust_policy(&self) -> Result<pp_translog::TrustPolicy> {
        use pp_translog::checkpoint::{ALG_COSIGNATURE_V1, ALG_ED25519, NoteKey};
        let key: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .context("log.public_key in the configuration is not 64 hex digits")?;
        anyhow::ensure!(
            !self.witnesses.is_empty(),
            "log.witnesses is empty: add the verifier key of at least one witness of this log \
             (`witness vkey` printed by pp-witness); tree heads no witness cosigned are refused"
        );
        anyhow::ensure!(
            (1..=self.witnesses.len()).contains(&self.witness_threshold),
            "log.witness_threshold must be 1..={} (the number of log.witnesses)",
            self.witnesses.len()
        );
        let witnesses = self
            .witnesses
            .iter()
            .map(|w| NoteKey::parse_vkey(w, ALG_COSIGNATURE_V1))
            .collect::<Result<Vec<_>, _>>()
            .context("log.witnesses")?;
        // k of n means k distinct witnesses: one key listed under two names would count twice.
        for (i, w) in witnesses.iter().enumerate() {
            anyhow::ensure!(
                !witnesses[..i]
                    .iter()
                    .any(|o| o.name == w.name || o.public_key == w.public_key),
                "log.witnesses lists witness {} twice (same name or same key): each must be a \
                 distinct witness",
                w.name
            );
        }
        Ok(pp_translog::TrustPolicy {
            log: NoteKey::new(&self.origin, ALG_ED25519, key).context("log.origin")?,
            witnesses,
            threshold: self.witness_threshold,
            max_age_secs: self.max_age_secs,
        })
    }
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
        anyhow::ensure!(
            config.issuer.low_water <= 32,
            "issuer.low_water must be 0..=32"
        );
        config
            .log
            .trust_policy()
            .with_context(|| format!("{}: the [log] section", path.display()))?;
        Ok(config)
    }

    /// Writes the configuration as TOML.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_log_section_parses_and_fails_with_a_clear_message() {
        let old: Log = toml::from_str(&format!(
            "url = \"http://log\"\npublic_key = \"{}\"\n",
            "11".repeat(32)
        ))
        .unwrap();
        assert_eq!(old.origin, pp_translog::checkpoint::DEFAULT_ORIGIN);
        assert_eq!((old.witness_threshold, old.max_age_secs), (1, 86_400));
        let err = old.trust_policy().unwrap_err().to_string();
        assert!(err.starts_with("log.witnesses is empty"), "{err}");
        let two = Log {
            witnesses: vec!["w+00000000+AA==".into()],
            witness_threshold: 2,
            ..old
        };
        assert!(
            two.trust_policy()
                .unwrap_err()
                .to_string()
                .contains("1..=1")
        );
    }
}
