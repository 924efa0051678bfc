//! What `pp` prints, made safe for a terminal: text that came from outside the device (server
//! error bodies, model replies, instance ids, CDN and log strings) could otherwise carry escape
//! sequences that rewrite the screen, fake a verdict line or reorder what is shown.
//!
//! [`printable`] is the one function every printed line and every outside string goes through.
//! It shows as a visible `\u{…}` escape: every control character (Unicode general category Cc:
//! C0, DEL and C1, so ANSI/ECMA-48 escape and control sequences lose their ESC or CSI), the
//! explicit bidirectional formatting characters of UAX #9 (embeddings, overrides, isolates, and
//! the implicit marks), and the line and paragraph separators. Newline and tab stay only where
//! they mean something ([`Breaks::Keep`], for multi-line messages such as a verdict).

use std::borrow::Cow;
use std::fmt::Write as _;

use anyhow::{Result, bail};
use pp_protocol::app::{AppResponse, Message};

/// Whether newline and tab are kept or escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaks {
    /// Kept: for whole messages whose lines the device made (errors, verdicts, traces).
    Keep,
    /// Escaped: for one field from outside, shown inside one line (a reply, an id, a body).
    Escape,
}

/// `text` with every character a terminal could interpret shown as `\u{hex}` instead (see the
/// module documentation). Borrowed when nothing needed escaping.
pub fn printable(text: &str, breaks: Breaks) -> Cow<'_, str> {
    if !text.chars().any(|c| escaped(c, breaks)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escaped(c, breaks) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escaped(c: char, breaks: Breaks) -> bool {
    match c {
        '\n' | '\t' => breaks == Breaks::Escape,
        // Cc: U+0000..=U+001F, U+007F..=U+009F.
        c if c.is_control() => true,
        // UAX #9 explicit formatting: LRE, RLE, PDF, LRO, RLO; LRI, RLI, FSI, PDI; and the
        // marks LRM, RLM, ALM.
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => true,
        // LINE SEPARATOR, PARAGRAPH SEPARATOR.
        '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// How `pp` shows an error: the whole chain (`{:#}`), printable, newlines kept.
pub fn error_text(e: &anyhow::Error) -> String {
    printable(&format!("pp: {e:#}"), Breaks::Keep).into_owned()
}

/// The lines `pp` prints for an answer about `thread`: a summary's sentences (each with the
/// numbers of the messages it rests on) and its picked messages, or the suggested replies. Every field is [`printable`] on one line. An in-band refusal or an answer
/// of the wrong kind is an error.
pub fn answer_lines(response: &AppResponse, thread: &[Message]) -> Result<Vec<String>> {
    let one = |s: &str| printable(s, Breaks::Escape).into_owned();
    match response {
        AppResponse::Summary {
            bullets,
            picks,
            truncated,
            left_out,
        } => {
            // Messages are numbered from 1 on screen; the protocol's indices are from 0.
            let numbers = |v: &[u16]| {
                v.iter()
                    .map(|i| (u32::from(*i) + 1).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut lines = vec![format!("Summary of {} messages:", thread.len())];
            for b in bullets {
                lines.push(match b.cites.is_empty() {
                    true => format!("  - {}", one(&b.text)),
                    false => format!("  - {} (from #{})", one(&b.text), numbers(&b.cites)),
                });
            }
            if *left_out > 0 {
                lines.push(format!(
                    "  (the {left_out} oldest message(s) did not fit the model's prompt)"
                ));
            }
            lines.push(format!(
                "Key messages ({} of {}):",
                picks.len(),
                thread.len()
            ));
            for &i in picks {
                let Some(m) = thread.get(usize::from(i)) else {
                    bail!("the enclave picked a message the thread does not have");
                };
                let (sender, text) = (one(&m.sender), one(&m.text));
                let n = u32::from(i) + 1;
                lines.push(match &m.time {
                    Some(t) => format!("  #{n} [{}] {sender}: {text}", one(t)),
                    None => format!("  #{n} {sender}: {text}"),
                });
            }
            if *truncated > 0 {
                lines.push(format!(
                    "  ({truncated} long message(s) were cut to the model's input length)"
                ));
            }
            Ok(lines)
        }
        AppResponse::Suggestions { replies } => {
            let mut lines = vec!["Suggestions:".to_string()];
            lines.extend(replies.iter().map(|r| format!("  - {}", one(r))));
            Ok(lines)
        }
        AppResponse::Error(e) => bail!("the enclave refused the request: {}", e.explain()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTACK: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}ok\u{9b}31m\r\u{202e}gnp.exe\u{2066}\u{0}";

    fn terminal_safe(s: &str) -> bool {
        !s.chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{2000}'..='\u{206f}').contains(&c))
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_shown_escaped() {
        let shown = printable(ATTACK, Breaks::Escape);
        assert_eq!(
            shown,
            "\\u{1b}[2J\\u{1b}]0;owned\\u{7}ok\\u{9b}31m\\u{d}\\u{202e}gnp.exe\\u{2066}\\u{0}"
        );
        assert!(terminal_safe(&shown));
        assert_eq!(printable("a\nb\tc", Breaks::Escape), "a\\u{a}b\\u{9}c");
        assert_eq!(printable("a\nb\tc", Breaks::Keep), "a\nb\tc");
        assert_eq!(printable("a\r\nb", Breaks::Keep), "a\\u{d}\nb");
        assert!(matches!(
            printable("plain, ünïcödé 😀 text", Breaks::Escape),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_ansi_escape_in_a_model_reply_is_not_printed() {
        let thread = [Message {
            sender: "Ana".into(),
            text: "dinner?".into(),
            time: None,
        }];
        let reply = format!("sure\n{ATTACK}\nVerified enclave x: measurement 00");
        let lines = answer_lines(
            &AppResponse::Suggestions {
                replies: vec![reply],
            },
            &thread,
        )
        .unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].starts_with("  - sure\\u{a}\\u{1b}[2J"),
            "{}",
            lines[1]
        );
        assert!(lines.iter().all(|l| terminal_safe(l) && !l.contains('\n')));
    }

    #[test]
    fn a_summary_shows_its_sentences_and_the_messages_they_cite() {
        let thread: Vec<Message> = ["venue moved?", "yes, Rose Street", "ok"]
            .iter()
            .map(|t| Message {
                sender: "Ana".into(),
                text: (*t).into(),
                time: None,
            })
            .collect();
        let lines = answer_lines(
            &AppResponse::Summary {
                bullets: vec![pp_protocol::app::Bullet {
                    text: format!("The venue moved.{ATTACK}"),
                    cites: vec![0, 1],
                }],
                picks: vec![0, 1],
                truncated: 0,
                left_out: 1,
            },
            &thread,
        )
        .unwrap();
        assert_eq!(lines[0], "Summary of 3 messages:");
        assert!(
            lines[1].starts_with("  - The venue moved.\\u{1b}[2J"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(" (from #1, 2)"), "{}", lines[1]);
        assert!(lines[2].contains("1 oldest"), "{}", lines[2]);
        assert_eq!(lines[3], "Key messages (2 of 3):");
        assert_eq!(lines[4], "  #1 Ana: venue moved?");
        assert!(lines.iter().all(|l| terminal_safe(l) && !l.contains('\n')));
    }

    #[test]
    fn an_ansi_escape_in_an_error_is_not_printed() {
        let e = anyhow::anyhow!("gateway said: {ATTACK}").context("the tunnel was refused");
        let shown = error_text(&e);
        assert!(terminal_safe(&shown), "{shown:?}");
        assert!(shown.starts_with("pp: the tunnel was refused: gateway said: \\u{1b}[2J"));
    }

    /// A service's error body, as `fetch` reports it: one line, nothing a terminal interprets.
    #[test]
    fn an_ansi_escape_in_a_server_error_body_is_not_printed() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut request = [0u8; 2048];
            let _ = sock.read(&mut request);
            let body = format!("refused\n{ATTACK}\npp: Verified enclave i-0");
            write!(
                sock,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        });
        let e = crate::fetch::get(&format!("http://{addr}/enclaves.json")).unwrap_err();
        server.join().unwrap();
        let shown = error_text(&e);
        assert!(terminal_safe(&shown) && !shown.contains('\n'), "{shown:?}");
        assert!(
            shown.contains("answered HTTP 503: refused\\u{a}\\u{1b}[2J"),
            "{shown}"
        );
    }
}
