//! The kernel command line: QEMU's `-append` reaches us as the image's UCS-2 load options.

use alloc::string::String;

/// Longest command line passed on to the kernel, in bytes.
pub const MAX_CMDLINE: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum CmdlineError {
    TooLong(usize),
    NotText,
    UnbalancedQuote,
}

impl core::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "command line is {n} bytes, the limit is {MAX_CMDLINE}"),
            Self::NotText => f.write_str("command line is not valid UCS-2 text"),
            Self::UnbalancedQuote => f.write_str("command line has an unbalanced quote"),
        }
    }
}

/// Decode little-endian UCS-2 load options (optionally NUL-terminated) into the kernel command line.
pub fn decode(options: &[u8]) -> Result<String, CmdlineError> {
    if !options.len().is_multiple_of(2) {
        return Err(CmdlineError::NotText);
    }
    let mut out = String::new();
    for unit in options
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
    {
        if unit == 0 {
            break;
        }
        let c = char::from_u32(u32::from(unit)).ok_or(CmdlineError::NotText)?;
        if c.is_control() && c != '\t' {
            return Err(CmdlineError::NotText);
        }
        out.push(c);
        if out.len() > MAX_CMDLINE {
            return Err(CmdlineError::TooLong(options.len() / 2));
        }
    }
    check_quotes(&out)?;
    Ok(String::from(out.trim()))
}

/// The kernel splits bootargs like a shell and panics on an open quote: refuse it here instead.
fn check_quotes(line: &str) -> Result<(), CmdlineError> {
    let mut quote = None;
    let mut escaped = false;
    for c in line.chars() {
        match (quote, c) {
            (_, _) if escaped => escaped = false,
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (None, '"' | '\'') => quote = Some(c),
            (Some('"'), '"') => quote = None,
            _ => {}
        }
    }
    if quote.is_some() || escaped {
        Err(CmdlineError::UnbalancedQuote)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ucs2(s: &str) -> alloc::vec::Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    #[test]
    fn decodes_and_trims() {
        assert_eq!(decode(&ucs2(" env=A=1 -- x ")).unwrap(), "env=A=1 -- x");
        assert_eq!(decode(&[]).unwrap(), "");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(decode(&[0x41]), Err(CmdlineError::NotText));
        assert_eq!(decode(&ucs2("a\u{1}b")), Err(CmdlineError::NotText));
        assert_eq!(decode(&ucs2("env=\"x")), Err(CmdlineError::UnbalancedQuote));
        let long = "a".repeat(MAX_CMDLINE + 1);
        assert!(matches!(
            decode(&ucs2(&long)),
            Err(CmdlineError::TooLong(_))
        ));
        assert!(decode(&ucs2(&"a".repeat(MAX_CMDLINE))).is_ok());
    }
}
