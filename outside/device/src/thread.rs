//! Reading a chat thread from a file: JSON (an array of `{sender, text, time?}`) or text, one
//! message per line as `sender: text` or `[time] sender: text`.

use anyhow::{Context, Result, bail};
use pp_protocol::app::Message;

/// Parses a thread file's contents.
pub fn parse(contents: &str) -> Result<Vec<Message>> {
    let trimmed = contents.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .context("the thread is JSON but not an array of {sender, text, time}");
    }
    let mut thread = Vec::new();
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (time, rest) = match line.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((time, rest)) => (Some(time.trim().to_string()), rest.trim_start()),
            None => (None, line),
        };
        let Some((sender, text)) = rest.split_once(':') else {
            bail!(
                "line {} of the thread is not `sender: text` or `[time] sender: text`",
                n + 1
            );
        };
        thread.push(Message {
            sender: sender.trim().to_string(),
            text: text.trim().to_string(),
            time,
        });
    }
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json() {
        let t = parse("# a comment\n[09:14] Ana: see you at 6\nBo: ok: great\n\n").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].time.as_deref(), Some("09:14"));
        assert_eq!(t[1].sender, "Bo");
        assert_eq!(t[1].text, "ok: great");
        let j = parse(r#"[{"sender":"Ana","text":"hi"}]"#).unwrap();
        assert_eq!(j[0].text, "hi");
        assert!(parse("no colon here").is_err());
        assert!(parse(r#"[{"sender":1}]"#).is_err());
    }
}
