//! Bounded HTTP GET and POST straight from the device: the issuer (which must see the account),
//! and the log and CDN only where no relay exists ([`crate::reads::Reader::direct`]).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Largest body read from the issuer.
pub const MAX_BODY: u64 = 1 << 20;

/// Largest body read from the log or the CDN: a full tile of log entries.
pub const MAX_READ_BODY: u64 = pp_translog::tiles::MAX_BUNDLE_LEN as u64;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GETs `url` of the log or the CDN (up to [`MAX_READ_BODY`]); any status but 200 is an error
/// naming the URL and status.
pub fn get(url: &str) -> Result<Vec<u8>> {
    let response = agent()
        .get(url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    body(url, response, MAX_READ_BODY)
}

/// POSTs `body` with a content type and an optional bearer credential.
pub fn post(url: &str, content_type: &str, bearer: Option<&str>, data: &[u8]) -> Result<Vec<u8>> {
    let mut request = agent().post(url).header("content-type", content_type);
    if let Some(secret) = bearer {
        request = request.header("authorization", format!("Bearer {secret}"));
    }
    let response = request
        .send(data)
        .with_context(|| format!("cannot reach {url}"))?;
    body(url, response, MAX_BODY)
}

fn body(url: &str, response: ureq::http::Response<ureq::Body>, max: u64) -> Result<Vec<u8>> {
    let status = response.status();
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(max + 1)
        .reader()
        .take(max + 1);
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading the answer of {url}"))?;
    if bytes.len() as u64 > max {
        bail!("{url} answered with more than {max} bytes");
    }
    if status != 200 {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.trim().chars().take(200).collect();
        let text = crate::show::printable(&text, crate::show::Breaks::Escape);
        bail!("{url} answered HTTP {}: {text}", status.as_u16());
    }
    Ok(bytes)
}
