//! The key CDN (a third party): a static file host for the enclaves' key configurations and
//! publication evidence and the release manifests. GET and HEAD only; names are checked before
//! any file is touched; files are bounded in size.

use std::path::PathBuf;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::http::{Reply, error, reply};

/// Largest file served.
pub const MAX_FILE: u64 = 1 << 20;

/// A static host rooted at a folder.
pub struct Cdn {
    pub root: PathBuf,
}

impl Cdn {
    /// Serves one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "the CDN serves GET and HEAD only",
            );
        }
        let Some(rel) = safe_path(req.uri().path()) else {
            return error(StatusCode::NOT_FOUND, "no such file");
        };
        let path = self.root.join(rel);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m,
            _ => return error(StatusCode::NOT_FOUND, "no such file"),
        };
        if meta.len() > MAX_FILE {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "file too large to serve");
        }
        match tokio::fs::read(&path).await {
            Ok(bytes) if req.method() == Method::HEAD => {
                let mut r = reply(StatusCode::OK, content_type(rel), "");
                r.headers_mut()
                    .insert(hyper::header::CONTENT_LENGTH, bytes.len().into());
                r
            }
            Ok(bytes) => reply(StatusCode::OK, content_type(rel), bytes),
            Err(_) => error(StatusCode::NOT_FOUND, "no such file"),
        }
    }
}

/// The request path as a relative file name, if it is one we serve: segments of
/// `[A-Za-z0-9._-]`, none empty or starting with a dot, at most 8 deep and 256 bytes long
/// (`pp_protocol::cdn_index::valid_path`).
pub fn safe_path(path: &str) -> Option<&str> {
    let rel = path.strip_prefix('/')?;
    (pp_protocol::cdn_index::valid_path(rel) && rel.split('/').count() <= 8).then_some(rel)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn only_plain_relative_names() {
        assert_eq!(safe_path("/enclaves.json"), Some("enclaves.json"));
        assert_eq!(safe_path("/evidence/i-0.bin"), Some("evidence/i-0.bin"));
        for bad in [
            "/",
            "",
            "enclaves.json",
            "/../etc/passwd",
            "/a/../b",
            "/.hidden",
            "/a//b",
            "/a/",
            "/a%2e%2e",
            "/a\\b",
            "/a b",
        ] {
            assert_eq!(safe_path(bad), None, "{bad:?}");
        }
        assert_eq!(safe_path(&format!("/{}", "a".repeat(300))), None);
    }
}
