"""Reference token ids for hard strings, for both tokenizers.

Request: {"tokenizer_json": path, "gguf": path, "texts": [str]}
Response: {"minilm": [[id]], "smol_hf": [[id]], "smol_bpe": [[id]]}

* minilm: the `tokenizers` library on the model's own tokenizer.json, padding/truncation off.
* smol_hf: the `tokenizers` library with the BPE built from the GGUF vocab/merges, Digits +
  ByteLevel pre-tokenizers (what the Rust side builds).
* smol_bpe: an independent pure-Python byte-level BPE (GPT-2 algorithm) with llama.cpp's
  "smollm" pre-tokenizer regexes, from the same GGUF vocab/merges.
* qwen2_bpe: the same pure-Python BPE and vocab/merges with the `qwen2` pre-tokenizer (the
  regex of Qwen2's tokenizer.json, run by the `regex` module), to check the Rust `qwen2`
  pre-tokenizer's split points.
"""
import regex
from tokenizers import Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

from common import gguf_field, read_request, write_response


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


DIGIT = regex.compile(r"\p{N}")
QWEN2 = regex.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT2 = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")


def split_keep(pattern, text):
    """Split into matches and the gaps between them (llama.cpp's regex pre-tokenizer)."""
    out, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        out.append(m.group())
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


class PyBpe:
    def __init__(self, tokens, merges):
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ", 1)): i for i, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            pair = next((parts[i], parts[i + 1]) for r, i in pairs if r == rank)
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def words(self, word):
        mapped = "".join(self.b2u[b] for b in word.encode("utf-8"))
        return [self.vocab[t] for t in self.bpe(mapped)]

    def encode(self, text):
        ids = []
        for piece in split_keep(DIGIT, text):
            for word in GPT2.findall(piece):
                ids.extend(self.words(word))
        return ids

    def encode_qwen2(self, text):
        return [i for word in split_keep(QWEN2, text) for i in self.words(word)]


def main():
    req = read_request()
    texts = req["texts"]
    mini = Tokenizer.from_file(req["tokenizer_json"])
    mini.no_padding()
    mini.no_truncation()
    import gguf

    reader = gguf.GGUFReader(req["gguf"])
    tokens = gguf_field(reader, "tokenizer.ggml.tokens")
    merges = gguf_field(reader, "tokenizer.ggml.merges")
    hf = Tokenizer(BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ", 1)) for m in merges]))
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    hf.decoder = decoders.ByteLevel()
    py = PyBpe(tokens, merges)
    write_response(
        {
            "minilm": [mini.encode(t).ids for t in texts],
            "smol_hf": [hf.encode(t, add_special_tokens=False).ids for t in texts],
            "smol_bpe": [py.encode(t) for t in texts],
            "qwen2_bpe": [py.encode_qwen2(t) for t in texts],
        }
    )


if __name__ == "__main__":
    main()
