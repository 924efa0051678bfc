"""Scores the output of `inference/examples/eval_features.rs` for `cargo xtask eval-summaries`
and `cargo xtask eval-suggest`. Runs in target/pp/venv-eval (xtask/eval/requirements.txt).

  score.py summaries DIALOGUES.jsonl OUT.jsonl   ROUGE-1/2/L F1 (rouge-score, Porter stemmer),
                                                 best over a dialogue's references, mean x 100,
                                                 for the abstractive, extractive and lead-3 texts
  score.py suggest OUT.jsonl                     rates of the reply checks (see CHECKS)

Prints a table, then one JSON line (the numbers) that xtask reads.
"""

import json
import re
import sys

from rouge_score import rouge_scorer

SYSTEMS = ("abstractive", "extractive", "lead3")
METRICS = ("rouge1", "rouge2", "rougeL")
# A reply longer than this many characters is over the limit (a suggestion is a short reply).
REPLY_LIMIT = 100
# A reply whose ROUGE-L F1 against the last message reaches this echoes it.
ECHO_F1 = 0.7
# Sentence ends: a reply that stopped at the token limit without one of these was cut off.
ENDS = tuple(".!?…)\"'”’") + ("😊", "🙂", "👍")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def references(d):
    if "summary" in d:
        return [d["summary"]]
    return [d[k] for k in ("summary1", "summary2", "summary3") if k in d]


def summaries(data_path, out_path):
    refs = {d["fname"]: references(d) for d in load(data_path)}
    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    rows = load(out_path)
    errors = sum(1 for r in rows if "error" in r)
    rows = [r for r in rows if "error" not in r]
    totals = {s: {m: 0.0 for m in METRICS} for s in SYSTEMS}
    for r in rows:
        for s in SYSTEMS:
            scores = [scorer.score(ref, r[s]) for ref in refs[r["fname"]]]
            for m in METRICS:
                totals[s][m] += max(x[m].fmeasure for x in scores)
    n = max(len(rows), 1)
    result = {s: {m: round(100 * totals[s][m] / n, 2) for m in METRICS} for s in SYSTEMS}
    fell_back = sum(1 for r in rows if r.get("fell_back"))
    left_out = sum(1 for r in rows if r.get("left_out", 0) > 0)
    secs = sum(r.get("seconds", 0.0) for r in rows) / n
    print(f"ROUGE F1 x100, best of the references, {len(rows)} dialogues ({errors} refused):")
    print(f"  {'system':<12} {'ROUGE-1':>8} {'ROUGE-2':>8} {'ROUGE-L':>8}")
    for s in SYSTEMS:
        print(f"  {s:<12} " + " ".join(f"{result[s][m]:>8.2f}" for m in METRICS))
    print(f"  abstractive: {fell_back} fell back to the picks, {left_out} had messages left out,"
          f" {secs:.1f} s per dialogue")
    result.update(dialogues=len(rows), refused=errors, fell_back=fell_back)
    print(json.dumps(result))


def norm_words(s):
    return re.findall(r"[a-z0-9']+", s.lower())


def starts_with_speaker(text, senders):
    t = text.lstrip().lower()
    for s in senders:
        for name in {s.lower(), s.strip("#").lower()}:
            if name and t.startswith(name):
                return True
    # Any "Name:" prefix (a turn label the model wrote).
    return re.match(r"^\s*#?[A-Za-z][\w#]{0,20}( [A-Z][\w]{0,20})?\s*:", text) is not None


CHECKS = (
    "empty",
    "cut off (token limit, no sentence end)",
    f"over {REPLY_LIMIT} characters",
    "echoes the last message",
    "starts with a speaker name",
    "profanity (better-profanity's list)",
)


def suggest(out_path):
    from better_profanity import profanity

    profanity.load_censor_words()
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rows = load(out_path)
    errors = sum(1 for r in rows if "error" in r)
    counts = dict.fromkeys(CHECKS, 0)
    replies = 0
    for r in rows:
        if "error" in r:
            continue
        for rep in r["replies"]:
            text = rep["text"].strip()
            replies += 1
            flags = (
                not norm_words(text),
                not rep["finished"] and not text.endswith(ENDS),
                len(text) > REPLY_LIMIT,
                bool(norm_words(text)) and scorer.score(r["last"], text)["rougeL"].fmeasure >= ECHO_F1,
                starts_with_speaker(text, r["senders"]),
                profanity.contains_profanity(text),
            )
            for c, f in zip(CHECKS, flags):
                counts[c] += int(f)
    n = max(replies, 1)
    print(f"suggest: {replies} replies to {len(rows) - errors} dialogues ({errors} refused)")
    for c in CHECKS:
        print(f"  {c:<40} {counts[c]:>4}  {100 * counts[c] / n:5.1f} %")
    print(json.dumps({"replies": replies, "refused": errors,
                      "rates": {c: round(counts[c] / n, 4) for c in CHECKS}}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["summaries"] and len(sys.argv) == 4:
        summaries(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["suggest"] and len(sys.argv) == 3:
        suggest(sys.argv[2])
    else:
        sys.exit(__doc__)
