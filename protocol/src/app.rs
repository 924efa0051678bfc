//! The application messages sealed inside a session: what the device asks the enclave to do
//! with a chat thread, and the answer. JSON (UTF-8) inside the HPKE-sealed request and response.
//!
//! ```json
//! {"feature":"summarize","thread":[{"sender":"Ana","text":"…","time":"09:14"}],"k":3}
//! {"feature":"suggest","thread":[…],"seed":42,"n":3}
//! → {"summary":{"bullets":[{"text":"…","cites":[0,4]},{"text":"…","cites":[7]}],
//!               "picks":[0,4,7],"truncated":0,"left_out":0}}
//! → {"suggestions":{"replies":["…","…"]}}
//! → {"error":"too-many-messages"}
//! ```
//!
//! [`AppRequest::parse`] checks every bound before anything is computed; errors are codes and
//! never quote the request.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Most messages in a thread. The one definition: the enclave checks it when it parses a request
/// ([`AppRequest::parse`]), the device before it sends one; the models rely on it.
pub const MAX_MESSAGES: usize = 200;
/// Longest message text, in characters (Unicode scalar values, not bytes), so that a limit means
/// the same in every script.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Longest sender name or time, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Most messages a summary may pick.
pub const MAX_PICKS: u8 = 10;
/// Most bullet sentences in a summary.
pub const MAX_BULLETS: usize = 4;
/// Most reply suggestions.
pub const MAX_SUGGESTIONS: u8 = 3;
/// Largest encoded request accepted (bytes).
pub const MAX_REQUEST_BYTES: usize = 512 * 1024;

/// One chat message: the one type a thread travels in, from the device's thread file through the
/// sealed request to the models (`pp-inference` takes `&[Message]`). A message's position in the
/// thread is its slice index; nothing else numbers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who wrote it, as the device shows it. Opaque to the enclave; the reply prompt quotes it.
    pub sender: String,
    /// The message text: what the models read.
    pub text: String,
    /// When it was sent, as the device shows it (e.g. `09:14`). Opaque and optional; the models
    /// do not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// What the device asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "feature", rename_all = "lowercase", deny_unknown_fields)]
pub enum AppRequest {
    /// A summary in 2–4 sentences, each citing some of the `k` most central, non-redundant
    /// messages of the thread (the picks, also returned, in thread order).
    Summarize { thread: Vec<Message>, k: u8 },
    /// Up to `n` short replies to the thread's last message, sampled with `seed`.
    Suggest {
        thread: Vec<Message>,
        seed: u64,
        n: u8,
    },
}

/// One sentence of a summary and the messages it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bullet {
    /// The sentence, as the model wrote it (about the thread: wiped once encoded).
    pub text: String,
    /// Indices into the thread of the messages it rests on, ascending, all among the picks.
    pub cites: Vec<u16>,
}

/// Why a request was refused. Stable codes, no request content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppError {
    NotJson,
    TooLarge,
    EmptyThread,
    TooManyMessages,
    MessageTooLong,
    LabelTooLong,
    BadCount,
    /// The enclave's model could not serve it (input beyond the model's bounds after checks).
    ModelRefused,
}

impl AppError {
    /// What the user should be told.
    pub fn explain(self) -> &'static str {
        match self {
            Self::NotJson => "the request is not a valid feature request",
            Self::TooLarge => "the request is larger than 512 KiB",
            Self::EmptyThread => "the thread has no messages",
            Self::TooManyMessages => "the thread has more than 200 messages",
            Self::MessageTooLong => "a message is longer than 2000 characters",
            Self::LabelTooLong => "a sender or time is longer than 64 characters",
            Self::BadCount => "k must be 1..=10 and n 1..=3",
            Self::ModelRefused => "the model refused the input",
        }
    }
}

/// The enclave's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AppResponse {
    Summary {
        /// 1..=[`MAX_BULLETS`] sentences written by the model, each citing the picks it rests on.
        bullets: Vec<Bullet>,
        /// The extractive picks: indices into the thread, ascending.
        picks: Vec<u16>,
        /// Messages whose text was cut to the embedder's input length.
        truncated: u16,
        /// How many of the oldest messages did not fit the model's prompt (the bullets do not
        /// cover them; the picks do).
        left_out: u16,
    },
    Suggestions {
        replies: Vec<String>,
    },
    Error(AppError),
}

impl AppRequest {
    /// Parses and bounds-checks an encoded request.
    pub fn parse(bytes: &[u8]) -> Result<Self, AppError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(AppError::TooLarge);
        }
        let mut request: Self = serde_json::from_slice(bytes).map_err(|_| AppError::NotJson)?;
        if let Err(refused) = request.check() {
            request.wipe();
            return Err(refused);
        }
        Ok(request)
    }

    /// Overwrites the thread's strings (sender, text, time): the parsed request is a copy of the
    /// plaintext in allocations of its own, wiped once answered or refused.
    pub fn wipe(&mut self) {
        use zeroize::Zeroize;
        let (Self::Summarize { thread, .. } | Self::Suggest { thread, .. }) = self;
        for m in thread.iter_mut() {
            m.sender.zeroize();
            m.text.zeroize();
            m.time.zeroize();
        }
    }

    /// The thread the request is about.
    pub fn thread(&self) -> &[Message] {
        match self {
            Self::Summarize { thread, .. } | Self::Suggest { thread, .. } => thread,
        }
    }

    /// Checks every bound (also before sending, on the device).
    pub fn check(&self) -> Result<(), AppError> {
        check_thread(self.thread())?;
        let count_ok = match self {
            Self::Summarize { k, .. } => (1..=MAX_PICKS).contains(k),
            Self::Suggest { n, .. } => (1..=MAX_SUGGESTIONS).contains(n),
        };
        if !count_ok {
            return Err(AppError::BadCount);
        }
        Ok(())
    }

    /// Encodes the request.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising these plain types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Checks a thread against the bounds every feature shares: 1..=[`MAX_MESSAGES`] messages, texts
/// of at most [`MAX_MESSAGE_CHARS`] characters, senders and times of at most [`MAX_LABEL_CHARS`].
/// The first bound broken, in that order, is the error; it never quotes the thread.
pub fn check_thread(thread: &[Message]) -> Result<(), AppError> {
    if thread.is_empty() {
        return Err(AppError::EmptyThread);
    }
    if thread.len() > MAX_MESSAGES {
        return Err(AppError::TooManyMessages);
    }
    for m in thread {
        if m.text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(AppError::MessageTooLong);
        }
        let label_long = |s: &str| s.chars().count() > MAX_LABEL_CHARS;
        if label_long(&m.sender) || m.time.as_deref().is_some_and(label_long) {
            return Err(AppError::LabelTooLong);
        }
    }
    Ok(())
}

impl AppResponse {
    /// Encodes the response. With `std` (the enclave), into one buffer sized for it up front: a
    /// buffer that grew would leave copies of the replies (text about the thread) in the blocks
    /// it left.
    pub fn to_vec(&self) -> Vec<u8> {
        #[cfg(feature = "std")]
        {
            let mut out = Vec::with_capacity(self.encoded_bound());
            // Serialising these plain types into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, self);
            out
        }
        #[cfg(not(feature = "std"))]
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An upper bound of the encoded length: JSON escapes a byte into at most 6 (`\u00XX`).
    #[cfg(feature = "std")]
    fn encoded_bound(&self) -> usize {
        const FRAME: usize = 64;
        match self {
            Self::Summary { bullets, picks, .. } => {
                FRAME
                    + 6 * picks.len()
                    + bullets
                        .iter()
                        .map(|b| 24 + 6 * b.text.len() + 6 * b.cites.len())
                        .sum::<usize>()
            }
            Self::Suggestions { replies } => {
                FRAME + replies.iter().map(|r| 6 * r.len() + 3).sum::<usize>()
            }
            Self::Error(_) => FRAME,
        }
    }

    /// Parses a response, checking it against the request it answers: picks in range, ascending
    /// and at most `k`; at most [`MAX_BULLETS`] bullets, citing only picks, ascending; at most `n`
    /// replies.
    pub fn parse_for(bytes: &[u8], request: &AppRequest) -> Result<Self, AppError> {
        let response: Self = serde_json::from_slice(bytes).map_err(|_| AppError::NotJson)?;
        let ok = match (&response, request) {
            (Self::Summary { bullets, picks, .. }, AppRequest::Summarize { thread, k }) => {
                picks.len() <= usize::from(*k)
                    && picks.windows(2).all(|w| w[0] < w[1])
                    && picks.iter().all(|&i| usize::from(i) < thread.len())
                    && bullets.len() <= MAX_BULLETS
                    && bullets.iter().all(|b| {
                        b.cites.windows(2).all(|w| w[0] < w[1])
                            && b.cites.iter().all(|c| picks.contains(c))
                    })
            }
            (Self::Suggestions { replies }, AppRequest::Suggest { n, .. }) => {
                replies.len() <= usize::from(*n)
            }
            (Self::Error(_), _) => true,
            _ => false,
        };
        if ok {
            Ok(response)
        } else {
            Err(AppError::NotJson)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn msg(text: &str) -> Message {
        Message {
            sender: "Ana".into(),
            text: text.into(),
            time: Some("09:14".into()),
        }
    }

    #[test]
    fn round_trips_and_has_the_documented_shape() {
        let r = AppRequest::Summarize {
            thread: vec![msg("hi")],
            k: 1,
        };
        let bytes = r.to_vec();
        assert_eq!(
            core::str::from_utf8(&bytes).unwrap(),
            r#"{"feature":"summarize","thread":[{"sender":"Ana","text":"hi","time":"09:14"}],"k":1}"#
        );
        assert_eq!(AppRequest::parse(&bytes).unwrap(), r);
        let s = AppResponse::Summary {
            bullets: vec![Bullet {
                text: "Ana says hi.".into(),
                cites: vec![0],
            }],
            picks: vec![0],
            truncated: 0,
            left_out: 0,
        };
        assert_eq!(
            core::str::from_utf8(&s.to_vec()).unwrap(),
            r#"{"summary":{"bullets":[{"text":"Ana says hi.","cites":[0]}],"picks":[0],"truncated":0,"left_out":0}}"#
        );
        assert_eq!(AppResponse::parse_for(&s.to_vec(), &r).unwrap(), s);
        let e = AppResponse::Error(AppError::TooManyMessages);
        assert_eq!(
            core::str::from_utf8(&e.to_vec()).unwrap(),
            r#"{"error":"too-many-messages"}"#
        );
    }

    #[test]
    fn bounds_are_checked() {
        let many = AppRequest::Suggest {
            thread: vec![msg("x"); MAX_MESSAGES + 1],
            seed: 1,
            n: 1,
        };
        assert_eq!(
            AppRequest::parse(&many.to_vec()),
            Err(AppError::TooManyMessages)
        );
        let long = AppRequest::Summarize {
            thread: vec![msg(&"é".repeat(MAX_MESSAGE_CHARS + 1))],
            k: 1,
        };
        assert_eq!(
            AppRequest::parse(&long.to_vec()),
            Err(AppError::MessageTooLong)
        );
        let k0 = AppRequest::Summarize {
            thread: vec![msg("x")],
            k: 0,
        };
        assert_eq!(AppRequest::parse(&k0.to_vec()), Err(AppError::BadCount));
        let empty = AppRequest::Suggest {
            thread: vec![],
            seed: 0,
            n: 3,
        };
        assert_eq!(
            AppRequest::parse(&empty.to_vec()),
            Err(AppError::EmptyThread)
        );
        assert_eq!(
            AppRequest::parse(b"{\"feature\":\"x\"}"),
            Err(AppError::NotJson)
        );
        assert_eq!(
            AppRequest::parse(br#"{"feature":"suggest","thread":[],"seed":1,"n":1,"extra":1}"#),
            Err(AppError::NotJson)
        );
        assert_eq!(
            AppRequest::parse(&vec![b' '; MAX_REQUEST_BYTES + 1]),
            Err(AppError::TooLarge)
        );
    }

    /// The thread bounds, at and one past each limit (moved here from `pp-inference`, which now
    /// relies on them instead of checking its own copy).
    #[test]
    fn thread_bounds_at_the_limit() {
        let at = vec![msg("x"); MAX_MESSAGES];
        assert_eq!(check_thread(&at), Ok(()));
        assert_eq!(
            check_thread(&vec![msg("x"); MAX_MESSAGES + 1]),
            Err(AppError::TooManyMessages)
        );
        assert_eq!(check_thread(&[]), Err(AppError::EmptyThread));
        // Characters, not bytes: 2000 two-byte characters pass, 2001 do not.
        let longest = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(check_thread(&[msg("hi"), msg(&longest)]), Ok(()));
        assert_eq!(
            check_thread(&[msg("hi"), msg(&(longest + "é"))]),
            Err(AppError::MessageTooLong)
        );
        let mut label = msg("hi");
        label.time = Some("9".repeat(MAX_LABEL_CHARS + 1));
        assert_eq!(check_thread(&[label]), Err(AppError::LabelTooLong));
    }

    #[test]
    fn refusals_never_quote_the_thread() {
        let secret = "SECRET-PAYLOAD ";
        let too_long = secret.repeat(MAX_MESSAGE_CHARS / secret.len() + 1);
        let request = AppRequest::Summarize {
            thread: vec![msg("hi"), msg(&too_long)],
            k: 1,
        };
        let err = AppRequest::parse(&request.to_vec()).unwrap_err();
        assert_eq!(err, AppError::MessageTooLong);
        let shown = alloc::format!(
            "{err:?} {} {}",
            err.explain(),
            core::str::from_utf8(&AppResponse::Error(err).to_vec()).unwrap()
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    /// The response is encoded into a buffer sized up front (no growth, no copies left behind),
    /// even when every byte of every reply needs the longest escape.
    #[cfg(feature = "std")]
    #[test]
    fn a_response_fits_its_bound() {
        use alloc::string::ToString;
        let worst = AppResponse::Suggestions {
            replies: vec!["\u{1}".repeat(300), "\"".repeat(7), "é".to_string()],
        };
        let bytes = worst.to_vec();
        assert!(bytes.len() <= worst.encoded_bound(), "{}", bytes.len());
        assert_eq!(bytes.capacity(), worst.encoded_bound());
        assert_eq!(serde_json::to_vec(&worst).unwrap(), bytes);
        let summary = AppResponse::Summary {
            bullets: vec![
                Bullet {
                    text: "\u{1}\"é".repeat(100),
                    cites: vec![199; 2],
                };
                MAX_BULLETS
            ],
            picks: vec![199; 10],
            truncated: 200,
            left_out: 200,
        };
        assert!(summary.to_vec().len() <= summary.encoded_bound());
        assert!(summary.to_vec().capacity() == summary.encoded_bound());
    }

    #[test]
    fn explanations_name_the_bounds() {
        use alloc::string::ToString;
        let says = |e: AppError, n: usize| e.explain().contains(&n.to_string());
        assert!(says(AppError::TooManyMessages, MAX_MESSAGES));
        assert!(says(AppError::MessageTooLong, MAX_MESSAGE_CHARS));
        assert!(says(AppError::LabelTooLong, MAX_LABEL_CHARS));
        assert!(says(AppError::TooLarge, MAX_REQUEST_BYTES / 1024));
    }

    #[test]
    fn responses_are_checked_against_the_request() {
        let r = AppRequest::Summarize {
            thread: vec![msg("a"), msg("b")],
            k: 1,
        };
        let ok = r#"{"summary":{"bullets":[{"text":"x","cites":[1]}],"picks":[1],"truncated":0,"left_out":0}}"#;
        assert!(AppResponse::parse_for(ok.as_bytes(), &r).is_ok());
        for bad in [
            r#"{"summary":{"bullets":[],"picks":[2],"truncated":0,"left_out":0}}"#,
            r#"{"summary":{"bullets":[],"picks":[0,1],"truncated":0,"left_out":0}}"#,
            // A bullet citing a message that is not a pick, or citations out of order.
            r#"{"summary":{"bullets":[{"text":"x","cites":[0]}],"picks":[1],"truncated":0,"left_out":0}}"#,
            r#"{"summary":{"bullets":[{"text":"x","cites":[1,1]}],"picks":[1],"truncated":0,"left_out":0}}"#,
            // More than MAX_BULLETS bullets.
            r#"{"summary":{"bullets":[{"text":"a","cites":[]},{"text":"b","cites":[]},{"text":"c","cites":[]},{"text":"d","cites":[]},{"text":"e","cites":[]}],"picks":[1],"truncated":0,"left_out":0}}"#,
            // The old shape, without bullets.
            r#"{"summary":{"picks":[1],"truncated":0}}"#,
            r#"{"suggestions":{"replies":["x"]}}"#,
        ] {
            assert!(AppResponse::parse_for(bad.as_bytes(), &r).is_err(), "{bad}");
        }
    }
}
