//! The health/version endpoint: a minimal HTTP/1.0 exchange with a bounded request.

use std::io::{Read, Write};

/// Largest request head accepted; anything longer is refused without being stored.
pub const MAX_REQUEST: usize = 1024;

/// Why a request was refused. Carries no request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    TooLong,
    Truncated,
    Malformed,
    NotFound,
}

impl RequestError {
    fn status(self) -> &'static str {
        match self {
            Self::TooLong => "431 Request Header Fields Too Large",
            Self::Truncated | Self::Malformed => "400 Bad Request",
            Self::NotFound => "404 Not Found",
        }
    }
}

/// The routes this endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Version,
}

/// Parse a request head (everything up to the blank line).
pub fn parse(head: &[u8]) -> Result<Route, RequestError> {
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(RequestError::Malformed)?;
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed);
    };
    if method != b"GET" || !(version == b"HTTP/1.0" || version == b"HTTP/1.1") {
        return Err(RequestError::Malformed);
    }
    match path {
        b"/health" => Ok(Route::Health),
        b"/version" => Ok(Route::Version),
        _ => Err(RequestError::NotFound),
    }
}

/// Read a request head of at most [`MAX_REQUEST`] bytes.
pub fn read_head(stream: &mut impl Read) -> Result<Vec<u8>, RequestError> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return Err(RequestError::Truncated),
            Ok(_) => head.push(byte[0]),
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            return Ok(head);
        }
        if head.len() >= MAX_REQUEST {
            return Err(RequestError::TooLong);
        }
    }
}

/// The JSON body for a route; `transport` says how the client reached us ("tcp" or "tls1.3").
pub fn body(route: Route, transport: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match route {
        Route::Health => format!("{{\"status\":\"ok\",\"transport\":\"{transport}\"}}\n"),
        Route::Version => format!("{{\"service\":\"pp-workload\",\"version\":\"{version}\"}}\n"),
    }
}

/// Serve one request on `stream`: read, answer, done.
pub fn serve(stream: &mut (impl Read + Write), transport: &str) -> Result<Route, RequestError> {
    let outcome = read_head(stream).and_then(|head| parse(&head));
    let (status, body) = match outcome {
        Ok(route) => ("200 OK", body(route, transport)),
        Err(e) => (e.status(), String::new()),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream
        .write_all(response.as_bytes())
        .and_then(|_| stream.flush());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn routes() {
        assert_eq!(parse(b"GET /health HTTP/1.0\r\n\r\n"), Ok(Route::Health));
        assert_eq!(
            parse(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Route::Version)
        );
        assert_eq!(
            parse(b"GET /other HTTP/1.0\r\n\r\n"),
            Err(RequestError::NotFound)
        );
        assert_eq!(
            parse(b"POST /health HTTP/1.0\r\n\r\n"),
            Err(RequestError::Malformed)
        );
        assert_eq!(parse(b"GET /health\r\n\r\n"), Err(RequestError::Malformed));
        assert_eq!(
            parse(b"GET /health HTTP/1.0 extra\r\n\r\n"),
            Err(RequestError::Malformed)
        );
        assert_eq!(parse(b"no newline"), Err(RequestError::Malformed));
    }

    #[test]
    fn bounded_read() {
        let long = vec![b'a'; MAX_REQUEST * 4];
        assert_eq!(
            read_head(&mut Cursor::new(long)),
            Err(RequestError::TooLong)
        );
        assert_eq!(
            read_head(&mut Cursor::new(b"GET /health".to_vec())),
            Err(RequestError::Truncated)
        );
    }

    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }
    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn serves_health_and_refuses_garbage() {
        let mut ok = Duplex {
            input: Cursor::new(b"GET /health HTTP/1.0\r\n\r\n".to_vec()),
            output: vec![],
        };
        assert_eq!(serve(&mut ok, "tcp"), Ok(Route::Health));
        let text = String::from_utf8(ok.output).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.ends_with("{\"status\":\"ok\",\"transport\":\"tcp\"}\n"));

        let mut bad = Duplex {
            input: Cursor::new(b"secret-canary garbage\r\n\r\n".to_vec()),
            output: vec![],
        };
        assert_eq!(serve(&mut bad, "tcp"), Err(RequestError::Malformed));
        let text = String::from_utf8(bad.output).unwrap();
        assert!(text.starts_with("HTTP/1.0 400"));
        assert!(!text.contains("secret-canary"));
    }
}
