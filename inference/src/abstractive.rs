//! Abstractive thread summary: 2–4 bullet sentences written by SmolLM2 from a ChatML prompt
//! holding the thread, each with the indices of the messages it rests on.
//!
//! Steps: the extractive picks of [`crate::summarize`] (MiniLM + MMR); a prompt of the newest
//! messages that fit [`SUMMARY_PROMPT_TOKENS`] (the oldest are left out first, and counted),
//! whose answer is started for the model with the first of those messages' sender, so the
//! summary says who did what; greedy decoding with a repetition penalty and no turn labels
//! ([`barred`]), at most [`MAX_SUMMARY_TOKENS`] tokens, stopped at
//! the end of the turn or once more than [`MAX_BULLETS`] lines are complete; then each bullet
//! is embedded and cites the picks most similar to it ([`cite`]).
//!
//! Bounds per request, whatever the thread: prompt ≤ [`SUMMARY_PROMPT_TOKENS`] tokens, output ≤
//! [`MAX_SUMMARY_TOKENS`] tokens, so the KV cache never holds more than
//! [`crate::MAX_PROMPT_TOKENS`] positions (the generator's cache is sized for that plus 64), and
//! MiniLM embeds the thread's messages plus at most [`MAX_BULLETS`] bullets.

use crate::error::FeatureError;
use crate::suggest::{Generator, penalize};
use crate::summarize::{self, Embedder, Summary};
use crate::tokenize::ChatTurn;
use crate::{MAX_PROMPT_TOKENS, tokenize::SmolTokenizer};
use pp_protocol::app::Message;
use zeroize::{Zeroize, Zeroizing};

/// Most bullets in a summary.
pub const MAX_BULLETS: usize = pp_protocol::app::MAX_BULLETS;
/// Most tokens the model may write for a summary.
pub const MAX_SUMMARY_TOKENS: usize = 120;
/// Longest summary prompt in tokens: the prompt and the output together stay within
/// [`MAX_PROMPT_TOKENS`].
pub const SUMMARY_PROMPT_TOKENS: usize = MAX_PROMPT_TOKENS - MAX_SUMMARY_TOKENS;
/// Repetition penalty of the greedy decoding (a small model repeats itself without one).
pub const REPETITION_PENALTY: f32 = 1.15;
/// Most messages one bullet cites.
pub const MAX_CITES: usize = 2;
/// A second pick is cited too if its cosine to the bullet is within this of the best one's.
pub const CITE_MARGIN: f32 = 0.05;

/// The system turn of the summary prompt.
pub const SYSTEM_PROMPT: &str = "You summarize chat conversations. Write 2 to 4 short bullet \
    points, one per line, each starting with \"- \". Each bullet is one complete sentence about a \
    plan, decision, question or fact from the conversation, naming who said it. Write in the \
    language of the conversation. Do not invent anything.";

/// The words around the thread in the summary prompt (the defaults are [`SummaryPrompt::DEFAULT`];
/// other values only for prompt work on the dev data, through [`summarize_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryPrompt<'p> {
    /// The system turn.
    pub system: &'p str,
    /// Before the messages, in the user turn.
    pub head: &'p str,
    /// After the messages, in the user turn.
    pub tail: &'p str,
    /// The start of the assistant turn, written for the model (the first bullet's start).
    pub prefix: &'p str,
    /// Whether the assistant turn goes on, after `prefix`, with the sender of the first message
    /// in the prompt (so the summary starts by saying what that person did).
    pub name_first: bool,
}

impl SummaryPrompt<'static> {
    /// The prompt the enclave uses.
    pub const DEFAULT: Self = Self {
        system: SYSTEM_PROMPT,
        head: "Conversation:\n",
        tail: "\nSummarize the conversation in 2 short sentences. Say who did what, using their \
            names.",
        prefix: "In this conversation, ",
        name_first: true,
    };
}

/// One bullet sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bullet {
    /// The sentence, without its bullet marker.
    pub text: String,
    /// Indices of the thread messages it rests on: a subset of the extractive picks, ascending.
    pub cites: Vec<usize>,
}

impl Bullet {
    /// Overwrites the sentence (text about the thread).
    pub fn wipe(&mut self) {
        self.text.zeroize();
    }
}

/// The result of [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbstractiveSummary<'a> {
    /// 1..=[`MAX_BULLETS`] bullets (2–4 asked for; the model may stop after one).
    pub bullets: Vec<Bullet>,
    /// The extractive picks the bullets cite, kept for comparison and display.
    pub extractive: Summary<'a>,
    /// How many of the oldest messages did not fit the prompt (they still count for the picks).
    pub left_out: usize,
    /// Whether the model wrote nothing usable, so the bullets are the picked messages themselves.
    pub fell_back: bool,
}

/// Summarizes a thread in words. `k` is the number of extractive picks (1 ≤ k ≤ thread length),
/// as for [`summarize::summarize`]; the errors are the same, plus the model's. Deterministic
/// (greedy decoding). The thread must be within the protocol's bounds.
pub fn summarize<'a>(
    embedder: &Embedder,
    generator: &Generator,
    thread: &'a [Message],
    k: usize,
) -> Result<AbstractiveSummary<'a>, FeatureError> {
    summarize_with(embedder, generator, thread, k, &SummaryPrompt::DEFAULT)
}

/// [`summarize`] with other prompt words (for prompt work; the enclave uses the default).
pub fn summarize_with<'a>(
    embedder: &Embedder,
    generator: &Generator,
    thread: &'a [Message],
    k: usize,
    words: &SummaryPrompt<'_>,
) -> Result<AbstractiveSummary<'a>, FeatureError> {
    debug_assert!(
        pp_protocol::app::check_thread(thread).is_ok(),
        "thread outside the protocol's bounds"
    );
    let (extractive, vectors) = summarize::summarize_with_vectors(embedder, thread, k)?;
    let (prompt, left_out) = prompt(generator.tokenizer(), thread, words)?;
    // The lead is the turn's start, written for the model; with a name, the summary shows it
    // from the name on ("In this conversation, Ana …" → "Ana …").
    let name = lead_name(words, &thread[left_out]);
    let mut lead = Zeroizing::new(String::from(words.prefix));
    if let Some(n) = name {
        lead.push_str(n);
    }
    let text = generate(generator, &prompt, &lead, name.is_some())?;
    let shown = name.unwrap_or(words.prefix);
    let mut turn = Zeroizing::new(String::with_capacity(shown.len() + text.0.len()));
    turn.push_str(shown);
    turn.push_str(&text.0);
    let mut bullets: Vec<Bullet> = parse_bullets(&turn, text.1)
        .into_iter()
        .map(|text| Bullet {
            text,
            cites: Vec::new(),
        })
        .collect();
    let picks: Vec<usize> = extractive.key_messages.iter().map(|m| m.index).collect();
    let fell_back = bullets.is_empty();
    if fell_back {
        // Nothing usable (an empty or garbled turn): the picked messages stand in, each citing
        // itself, so the answer still says something true about the thread.
        bullets = picks
            .iter()
            .take(MAX_BULLETS)
            .map(|&i| Bullet {
                text: format!("{}: {}", thread[i].sender, thread[i].text),
                cites: vec![i],
            })
            .collect();
    } else {
        let texts: Vec<&str> = bullets.iter().map(|b| b.text.as_str()).collect();
        let emb = embedder.embed(&texts)?;
        let pick_vectors: Vec<&[f32]> = picks.iter().map(|&i| vectors[i].as_slice()).collect();
        for (b, v) in bullets.iter_mut().zip(&emb.vectors) {
            b.cites = cite(v, &picks, &pick_vectors);
        }
    }
    Ok(AbstractiveSummary {
        bullets,
        extractive,
        left_out,
        fell_back,
    })
}

/// The picks a bullet cites: the pick whose MiniLM embedding is closest to the bullet's, and up
/// to [`MAX_CITES`] − 1 more within [`CITE_MARGIN`] of it, in thread order.
///
/// Why this rule: the bullets are written from the whole (fitting) thread, not from the picks,
/// so the prompt cannot say which picks a bullet used; the embedder that chose the picks as the
/// thread's central, non-redundant messages is also the one that can tell which of them a
/// sentence paraphrases. Citing only picks keeps "from these messages" short (at most `k`
/// messages for the whole summary) and lets the device show them without another request.
pub fn cite(bullet: &[f32], picks: &[usize], pick_vectors: &[&[f32]]) -> Vec<usize> {
    let sims: Vec<f32> = pick_vectors
        .iter()
        .map(|p| p.iter().zip(bullet).map(|(a, b)| a * b).sum())
        .collect();
    let mut order: Vec<usize> = (0..picks.len()).collect();
    order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]).then(a.cmp(&b)));
    let Some(&best) = order.first() else {
        return Vec::new();
    };
    let mut cites: Vec<usize> = order
        .iter()
        .take(MAX_CITES)
        .filter(|&&j| sims[j] >= sims[best] - CITE_MARGIN)
        .map(|&j| picks[j])
        .collect();
    cites.sort_unstable();
    cites
}

/// The summary prompt's token ids for the newest messages that fit [`SUMMARY_PROMPT_TOKENS`],
/// and how many of the oldest were left out. If not even the newest message fits, its text is
/// cut to its first tokens. The conversation text is overwritten once encoded.
fn prompt(
    tok: &SmolTokenizer,
    thread: &[Message],
    words: &SummaryPrompt<'_>,
) -> Result<(Zeroizing<Vec<u32>>, usize), FeatureError> {
    let build =
        |lines: &[Zeroizing<String>], first: usize| -> Result<Zeroizing<Vec<u32>>, FeatureError> {
            let len =
                words.head.len() + words.tail.len() + lines.iter().map(|l| l.len()).sum::<usize>();
            let mut convo = Zeroizing::new(String::with_capacity(len));
            convo.push_str(words.head);
            lines.iter().for_each(|l| convo.push_str(l));
            convo.push_str(words.tail);
            let mut ids = Zeroizing::new(tok.chat_prompt(&[
                ChatTurn {
                    role: "system",
                    content: words.system,
                },
                ChatTurn {
                    role: "user",
                    content: &convo,
                },
            ])?);
            let prefix = tok.encode(words.prefix)?;
            let name = match lead_name(words, &thread[first]) {
                Some(n) => lead_ids(tok, n)?,
                None => Zeroizing::new(Vec::new()),
            };
            // One reallocation for both: it frees the block the prompt's ids were in, which the
            // enclave's allocator wipes (workload/src/wipe.rs); `ids` is wiped when dropped.
            ids.reserve_exact(prefix.len() + name.len());
            ids.extend(prefix);
            ids.extend(name.iter());
            Ok(ids)
        };
    // What the first line's sender costs as the lead.
    let name_cost = |m: &Message| -> Result<usize, FeatureError> {
        Ok(match lead_name(words, m) {
            Some(n) => lead_ids(tok, n)?.len(),
            None => 0,
        })
    };
    let line = |m: &Message, text: &str| {
        let mut l = Zeroizing::new(String::with_capacity(m.sender.len() + 3 + text.len()));
        l.push_str(&m.sender);
        l.push_str(": ");
        l.push_str(text);
        l.push('\n');
        l
    };
    // What the prompt costs without any message or lead name, then each line's own tokens (a
    // line ends in a newline, which the byte-level pre-tokenizer splits off, so lines encode
    // independently), and the lead name of the line that would be the first.
    let fixed = build(&[], thread.len() - 1)?.len() - name_cost(&thread[thread.len() - 1])?;
    let budget = SUMMARY_PROMPT_TOKENS.saturating_sub(fixed);
    let mut used = 0;
    let mut first = thread.len();
    while first > 0 {
        let m = &thread[first - 1];
        let n = Zeroizing::new(tok.encode(&line(m, &m.text))?).len();
        if used + n + name_cost(m)? > budget {
            break;
        }
        used += n;
        first -= 1;
    }
    let mut lines: Vec<Zeroizing<String>> = if first < thread.len() {
        thread[first..].iter().map(|m| line(m, &m.text)).collect()
    } else {
        // Not even the newest message fits whole: its first tokens, as many as fit.
        let last = &thread[thread.len() - 1];
        let ids = Zeroizing::new(tok.encode(&last.text)?);
        let keep = budget
            .saturating_sub(tok.encode(&last.sender)?.len() + 4 + name_cost(last)?)
            .min(ids.len());
        let cut = Zeroizing::new(tok.decode(&ids[..keep])?);
        first = thread.len() - 1;
        vec![line(last, &cut)]
    };
    // By construction the prompt fits; should a merge across lines ever make it longer, the
    // oldest lines go until it does (never the last one).
    loop {
        let ids = build(&lines, first)?;
        if ids.len() <= SUMMARY_PROMPT_TOKENS || lines.len() == 1 {
            if ids.len() > SUMMARY_PROMPT_TOKENS {
                return Err(FeatureError::PromptTooLong {
                    tokens: ids.len(),
                    max: SUMMARY_PROMPT_TOKENS,
                });
            }
            return Ok((ids, first));
        }
        lines.remove(0);
        first += 1;
    }
}

/// Longest sender name that leads the answer, in characters.
pub const LEAD_NAME_CHARS: usize = 24;
/// Most words in a sender name that leads the answer.
pub const LEAD_NAME_WORDS: usize = 3;

/// The sender the answer is started with, if the prompt asks for one and the name is plain and
/// short: at most [`LEAD_NAME_WORDS`] words and [`LEAD_NAME_CHARS`] characters of letters, ASCII
/// digits, spaces and `#'_-&@`, starting with a letter, digit or `#`; no modifier or tone
/// letters (`ꓸ`, `ꓽ`, `ː` look like punctuation). So a name cannot end a sentence, start a line
/// or a list item, label a turn, or be a sentence of its own that the model merely ends.
fn lead_name<'m>(words: &SummaryPrompt<'_>, m: &'m Message) -> Option<&'m str> {
    let s = m.sender.as_str();
    let looks_like_punctuation = |c: char| matches!(c, '\u{02B0}'..='\u{02FF}' | '\u{A4F8}'..='\u{A4FF}' | '\u{A700}'..='\u{A71F}');
    let plain = s.chars().all(|c| {
        (c.is_alphabetic() && !looks_like_punctuation(c))
            || c.is_ascii_digit()
            || matches!(c, ' ' | '#' | '\'' | '_' | '-' | '&' | '@')
    }) && s.chars().any(char::is_alphabetic)
        && s.starts_with(|c: char| c.is_alphanumeric() || c == '#')
        && s.chars().count() <= LEAD_NAME_CHARS
        && s.split_whitespace().count() <= LEAD_NAME_WORDS;
    (words.name_first && plain).then_some(s)
}

/// The lead name's token ids, encoded apart from the prefix (whose last token is then a lone
/// space). Encoding " name" as running text would have it ("ĠAna") scored lower on the dev
/// split (ROUGE-L 22.24 vs 24.86 on its first 10 dialogues), so the name stands alone.
fn lead_ids(tok: &SmolTokenizer, name: &str) -> Result<Zeroizing<Vec<u32>>, FeatureError> {
    Ok(Zeroizing::new(tok.encode(name)?))
}

/// Greedy decoding from the prompt (which ends in `lead`, the turn's first words); returns the
/// text and whether it was cut by the token limit.
///
/// A summary is not a transcript: the tokens [`barred`] refuses are never chosen (the next best
/// one is taken), so the model cannot fall back to copying turns under their sender labels.
fn generate(
    g: &Generator,
    prompt: &[u32],
    lead: &str,
    name_first: bool,
) -> Result<(Zeroizing<String>, bool), FeatureError> {
    let tok = g.tokenizer();
    let model = g.model();
    let mut cache = model.new_cache();
    let mut logits = model.forward(prompt, &mut cache)?;
    let mut out: Zeroizing<Vec<u32>> = Zeroizing::new(Vec::with_capacity(MAX_SUMMARY_TOKENS));
    let mut cut = true;
    // The text of `out`, decoded once per token.
    let mut text = Zeroizing::new(String::new());
    while out.len() < MAX_SUMMARY_TOKENS {
        penalize(&mut logits, &out, REPETITION_PENALTY);
        let before = if text.is_empty() { lead } else { &text };
        let next = loop {
            let i = argmax(&logits);
            if logits[i as usize] == f32::NEG_INFINITY {
                break i;
            }
            let piece = Zeroizing::new(tok.decode(&[i])?);
            if barred(before, &piece, name_first && out.is_empty()) {
                logits[i as usize] = f32::NEG_INFINITY;
                continue;
            }
            break i;
        };
        if next == tok.im_end || next == tok.end_of_text {
            cut = false;
            break;
        }
        out.push(next);
        text = Zeroizing::new(tok.decode(&out)?);
        // Enough complete lines for every bullet, and one to spare for a fragment.
        let complete = text
            .split('\n')
            .rev()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .count();
        if complete > MAX_BULLETS {
            cut = false;
            break;
        }
        logits.zeroize();
        logits = model.forward(&[next], &mut cache)?;
    }
    logits.zeroize();
    Ok((text, cut))
}

/// Whether the token `piece` may not follow `before` in a summary: a `:` right after a word with
/// a letter ("Ana:", "Person1:"), which would start a transcript line, or — as the first token
/// after the sender's name the turn starts with (`after_name`) — a `(`, which starts a gloss of
/// the name ("Person1 (Person2)") instead of a sentence about the person.
fn barred(before: &str, piece: &str, after_name: bool) -> bool {
    let piece = piece.trim_start();
    let word = before.rsplit(char::is_whitespace).next().unwrap_or("");
    let after_word =
        !before.ends_with(char::is_whitespace) && word.chars().any(char::is_alphabetic);
    (after_word && piece.starts_with(':')) || (after_name && piece.starts_with('('))
}

/// The highest logit's token (the first on ties).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The bullets of the model's turn: one per line, or, if the turn is one paragraph, one per
/// sentence; markers (`-`, `*`, `•`, `1.`), blank lines and lines ending in `,` or `:` (lead-ins
/// to the next line) dropped, duplicates dropped, at most
/// [`MAX_BULLETS`]. A last piece cut by the token limit is dropped if another bullet exists.
pub fn parse_bullets(text: &str, cut: bool) -> Vec<String> {
    let mut lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    if lines.len() == 1 {
        lines = sentences(lines[0]);
    }
    let mut out: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let l = l.trim();
        let l = strip_marker(l);
        let l = l.trim();
        // Too short, or a fragment that only leads into the next line ("In this
        // conversation,", "3 people took part:").
        if l.chars().filter(|c| c.is_alphanumeric()).count() < 2 || l.ends_with([',', ':']) {
            continue;
        }
        if cut && i + 1 == lines.len() && !out.is_empty() {
            break;
        }
        if out.iter().any(|o| o.eq_ignore_ascii_case(l)) {
            continue;
        }
        out.push(l.to_owned());
        if out.len() == MAX_BULLETS {
            break;
        }
    }
    out
}

/// A line without its list marker: `-`, `*` or `•`, or a number followed by `.` or `)`.
fn strip_marker(l: &str) -> &str {
    let l = l.trim_start_matches(['-', '*', '•', ' ']);
    let digits = l.len() - l.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match l[digits..].strip_prefix(['.', ')']) {
        Some(rest) if digits > 0 => rest,
        _ => l,
    }
}

/// The sentences of a paragraph: split after `.`, `!` or `?` followed by a space and an
/// uppercase letter or digit (so "7.30" and "e.g. this" stay whole).
fn sentences(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = p.char_indices().collect();
    for w in chars.windows(3) {
        let [(_, end), (_, space), (next_at, next)] = [w[0], w[1], w[2]];
        if matches!(end, '.' | '!' | '?')
            && space == ' '
            && (next.is_uppercase() || next.is_ascii_digit())
        {
            out.push(&p[start..next_at]);
            start = next_at;
        }
    }
    out.push(&p[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bullets_are_parsed_from_the_turn() {
        let t = "Ana says the venue moved.\n- Bo brings drinks.\n* Bo brings drinks.\n\n";
        assert_eq!(
            parse_bullets(t, false),
            ["Ana says the venue moved.", "Bo brings drinks."]
        );
        // A line cut by the token limit goes, unless it is the only one.
        assert_eq!(parse_bullets("One.\n2. Two and thr", true), ["One."]);
        assert_eq!(parse_bullets("Only one and cu", true), ["Only one and cu"]);
        // One paragraph: one bullet per sentence; a cut last sentence goes.
        assert_eq!(
            parse_bullets(
                "Ana moved it to 7.30 pm. Bo agrees! 3 people come. They br",
                true
            ),
            ["Ana moved it to 7.30 pm.", "Bo agrees!", "3 people come."]
        );
        assert!(parse_bullets("-\n- !\n", false).is_empty());
        assert_eq!(
            parse_bullets("In this conversation,\nBo took part:\n1. Bo cooks.", false),
            ["Bo cooks."]
        );
        let many = "a1\nb2\nc3\nd4\ne5\n";
        assert_eq!(parse_bullets(many, false).len(), MAX_BULLETS);
    }

    #[test]
    fn turn_labels_are_barred_and_times_are_not() {
        assert!(barred("Ana", ":", false));
        assert!(barred("#Person1#", " :", false));
        assert!(barred("then Person1", ": \"", false));
        assert!(!barred("at 7", ":30", false));
        assert!(!barred("Ana", " asks", false));
        assert!(!barred("Ana", " (", false));
        assert!(barred("Ana", " (", true));
        assert!(!barred("", ":", false));
    }

    #[test]
    fn a_bullet_cites_the_closest_picks() {
        let picks = [2, 5, 9];
        let (a, b, c) = ([1.0, 0.0], [0.0, 1.0], [0.96, 0.28]);
        let vs: Vec<&[f32]> = vec![&a, &b, &c];
        // Closest is pick 2 (cos 1.0); pick 9 (0.96) is within the margin; 5 is not.
        assert_eq!(cite(&[1.0, 0.0], &picks, &vs), [2, 9]);
        assert_eq!(cite(&[0.0, 1.0], &picks, &vs), [5]);
        assert!(cite(&[1.0, 0.0], &[], &[]).is_empty());
    }
}
