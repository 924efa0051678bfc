//! Reading a chat thread from a file. Two forms:
//!
//! - JSON: an array of `{sender, text, time?}`, or an object
//!   `{"advanced_chat_privacy": bool, "messages": [ … ]}` (the chat's setting travels with it);
//! - text: one message per line as `sender: text` or `[time] sender: text`; lines starting with
//!   `#` are comments, and the header line [`PRIVATE_HEADER`] (anywhere, alone on its line) marks
//!   the chat as private. Any `#!` line naming `advanced-chat-privacy` marks it private unless its
//!   value is exactly `off` (a misspelt setting fails closed), and other `#!` lines are refused.
//!
//! A leading byte-order mark is ignored in both forms.
//!
//! A chat marked private ("Advanced Chat Privacy", which any member of a group can turn on) is
//! never sent: [`Thread::require_shareable`] refuses it before anything leaves the device.

use anyhow::{Context, Result, bail};
use pp_protocol::app::Message;

/// The text form's header line that marks a chat as private.
pub const PRIVATE_HEADER: &str = "#! advanced-chat-privacy: on";

/// A parsed thread and the chat's privacy setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    /// Reachable only through [`Thread::require_shareable`], so no caller sends a private chat.
    messages: Vec<Message>,
    /// The chat has "Advanced Chat Privacy" on: its messages must not be used by AI features.
    pub private: bool,
}

impl Thread {
    /// The messages, unless the chat is private: then a refusal that says why and who can change it.
    pub fn require_shareable(self) -> Result<Vec<Message>> {
        if self.private {
            bail!(
                "this chat has Advanced Chat Privacy turned on: its messages are never sent to AI \
                 features, from any member's device (any member of the chat can turn the setting \
                 on, and it then covers the whole chat); nothing was sent"
            );
        }
        Ok(self.messages)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonThread {
    #[serde(default)]
    advanced_chat_privacy: bool,
    messages: Vec<Message>,
}

/// Parses a thread file's contents.
pub fn parse(contents: &str) -> Result<Thread> {
    let contents = contents.strip_prefix('\u{feff}').unwrap_or(contents);
    let trimmed = contents.trim_start();
    if trimmed.starts_with('[') {
        let messages = serde_json::from_str(trimmed)
            .context("the thread is JSON but not an array of {sender, text, time}")?;
        return Ok(Thread {
            messages,
            private: false,
        });
    }
    if trimmed.starts_with('{') {
        let t: JsonThread = serde_json::from_str(trimmed).context(
            "the thread is a JSON object but not {\"advanced_chat_privacy\": bool, \"messages\": \
             [{sender, text, time}]}",
        )?;
        return Ok(Thread {
            messages: t.messages,
            private: t.advanced_chat_privacy,
        });
    }
    let mut thread = Thread {
        messages: Vec::new(),
        private: false,
    };
    for (n, line) in contents.lines().enumerate() {
        // Invisible characters (a byte-order mark of a pasted export, zero-width spaces) would
        // hide a marker from the checks below.
        let line = line.trim().trim_matches(|c| INVISIBLE.contains(&c)).trim();
        if line.starts_with('#') && line.to_ascii_lowercase().contains(PRIVACY_SETTING) {
            // Any comment naming the setting, however spelt: private unless exactly `off`.
            let directive = line.trim_start_matches(['#', '!', ' ', '\t']);
            thread.private |= privacy_directive(directive, n + 1)?;
            continue;
        }
        if let Some(directive) = line.strip_prefix("#!") {
            thread.private |= privacy_directive(directive, n + 1)?;
            continue;
        }
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
        thread.messages.push(Message {
            sender: sender.trim().to_string(),
            text: text.trim().to_string(),
            time,
        });
    }
    Ok(thread)
}

/// The setting's name as it appears in a marker line.
const PRIVACY_SETTING: &str = "advanced-chat-privacy";

/// Characters a line is trimmed of at both ends before it is read: the byte-order mark and the
/// zero-width space, non-joiner, joiner and word joiner.
const INVISIBLE: [char; 5] = ['\u{feff}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}'];

/// A `#!` line: whether it marks the chat private. Only the privacy setting is known; its value
/// must be exactly `off` for the chat to be shared.
fn privacy_directive(directive: &str, line: usize) -> Result<bool> {
    let directive = directive.trim().to_ascii_lowercase();
    if !directive.contains(PRIVACY_SETTING) {
        bail!(
            "line {line} of the thread is a `#!` line other than `{PRIVATE_HEADER}`: refusing a \
             setting this device does not know"
        );
    }
    let value = directive.split_once(':').map(|(_, v)| v.trim());
    Ok(value != Some("off"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json() {
        let t = parse("# a comment\n[09:14] Ana: see you at 6\nBo: ok: great\n\n").unwrap();
        assert!(!t.private);
        let t = t.require_shareable().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].time.as_deref(), Some("09:14"));
        assert_eq!(t[1].sender, "Bo");
        assert_eq!(t[1].text, "ok: great");
        let j = parse(r#"[{"sender":"Ana","text":"hi"}]"#).unwrap();
        assert_eq!(j.messages[0].text, "hi");
        assert!(parse("no colon here").is_err());
        assert!(parse(r#"[{"sender":1}]"#).is_err());
        let o = parse(r#"{"messages":[{"sender":"Ana","text":"hi"}]}"#).unwrap();
        assert!(!o.private && o.messages.len() == 1);
        assert!(parse(r#"{"messages":[], "privat": true}"#).is_err());
    }

    #[test]
    fn a_chat_marked_private_is_refused_in_both_forms() {
        for text in [
            "#! advanced-chat-privacy: on\nAna: the surprise party is on friday\n",
            "Ana: the surprise party is on friday\n#! Advanced-Chat-Privacy: ON\n",
            r#"{"advanced_chat_privacy": true, "messages": [{"sender":"Ana","text":"the surprise party is on friday"}]}"#,
            // A byte-order mark before either form, and misspelt settings: still private.
            "\u{feff}#! advanced-chat-privacy: on\nAna: the surprise party is on friday\n",
            "\u{feff}{\"advanced_chat_privacy\":true,\"messages\":[{\"sender\":\"Ana\",\"text\":\"the surprise party is on friday\"}]}",
            "#!advanced-chat-privacy: on\nAna: the surprise party is on friday\n",
            "#!  Advanced-Chat-Privacy : yes\nAna: the surprise party is on friday\n",
            "#! advanced-chat-privacy\nAna: the surprise party is on friday\n",
            // Plain comments naming it, and a marker behind invisible characters mid-file.
            "# advanced-chat-privacy: on\nAna: the surprise party is on friday\n",
            "## Advanced-Chat-Privacy: on\nAna: the surprise party is on friday\n",
            "Ana: the surprise party is on friday\n\u{feff}#! advanced-chat-privacy: on\n",
            "\u{200b}#! advanced-chat-privacy: on\nAna: the surprise party is on friday\n",
        ] {
            let t = parse(text).unwrap();
            assert!(t.private, "{text}");
            let e = t.require_shareable().unwrap_err().to_string();
            assert!(
                e.contains("Advanced Chat Privacy") && !e.contains("surprise"),
                "{e}"
            );
        }
        let off = parse("#! advanced-chat-privacy: off\nAna: hi\n").unwrap();
        assert!(!off.private && off.messages.len() == 1);
        assert!(parse("#! something-else: on\nAna: hi\n").is_err());
    }
}
