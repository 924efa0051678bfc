//! What the enclave does with an opened request. Inference plugs in behind [`Handler`]; until then
//! a deterministic text handler serves.

/// Why a handler refused a request. No request text in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerError {
    NotText,
    TooLarge,
}

/// Turns a request into a response. Implementations keep nothing between calls.
pub trait Handler: Send + Sync {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError>;
}

/// Largest request text a handler accepts.
pub const MAX_REQUEST_TEXT: usize = 256 * 1024;

/// Counts lines, words and characters of UTF-8 text and answers with them and the text's first
/// line, as JSON. Deterministic; a stand-in until the models arrive.
pub struct TextStats;

impl Handler for TextStats {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        if request.len() > MAX_REQUEST_TEXT {
            return Err(HandlerError::TooLarge);
        }
        let text = std::str::from_utf8(request).map_err(|_| HandlerError::NotText)?;
        let first = text.lines().next().unwrap_or("");
        let mut escaped = String::with_capacity(first.len());
        for c in first.chars() {
            match c {
                '"' => escaped.push_str("\\\""),
                '\\' => escaped.push_str("\\\\"),
                c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
                c => escaped.push(c),
            }
        }
        Ok(format!(
            "{{\"lines\":{},\"words\":{},\"chars\":{},\"first_line\":\"{escaped}\"}}",
            text.lines().count(),
            text.split_whitespace().count(),
            text.chars().count()
        )
        .into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_escapes() {
        let out = TextStats
            .handle("Hi \"you\"\nsecond line here".as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"lines":2,"words":5,"chars":25,"first_line":"Hi \"you\""}"#
        );
        assert_eq!(TextStats.handle(&[0xff, 0xfe]), Err(HandlerError::NotText));
        assert_eq!(
            TextStats.handle(&vec![b'a'; MAX_REQUEST_TEXT + 1]),
            Err(HandlerError::TooLarge)
        );
    }
}
