"""all-MiniLM-L6-v2 sentence embeddings in numpy, from the same safetensors and tokenizer.json.

Request: {"model": path, "tokenizer_json": path, "texts": [str], "max_len": int, "heads": int (default 12)}
Response: {"embeddings": [[float]], "seconds": float}   (seconds: forward passes only)
Each text runs alone (no padding): BERT post-LN encoder, exact GELU, masked mean pooling, L2 norm.
"""
import time

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from common import read_request, write_response

HEADS = 12  # default; a request may say "heads"
EPS = 1e-12


def erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf.
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return s * y


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def layer_norm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + EPS) * g + b


def embed(w, ids, heads=HEADS):
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    h = x.shape[1]
    hd = h // heads
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}."
        lin = lambda name, v: v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
        q = lin("attention.self.query", x).reshape(n, heads, hd).transpose(1, 0, 2)
        k = lin("attention.self.key", x).reshape(n, heads, hd).transpose(1, 0, 2)
        v = lin("attention.self.value", x).reshape(n, heads, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(n, h)
        x = layer_norm(lin("attention.output.dense", a) + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        f = lin("output.dense", gelu(lin("intermediate.dense", x)))
        x = layer_norm(f + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        layer += 1
    e = x.mean(0)
    return e / max(np.linalg.norm(e), 1e-12)


def main():
    req = read_request()
    w = {k: v.astype(np.float32) for k, v in load_file(req["model"]).items() if v.dtype != np.int64}
    tok = Tokenizer.from_file(req["tokenizer_json"])
    tok.no_padding()
    tok.no_truncation()
    max_len = req.get("max_len", 512)
    ids = []
    for t in req["texts"]:
        i = tok.encode(t).ids
        if len(i) > max_len:
            i = i[: max_len - 1] + [i[-1]]
        ids.append(i)
    t0 = time.perf_counter()
    heads = req.get("heads", HEADS)
    out = [embed(w, i, heads).tolist() for i in ids]
    write_response({"embeddings": out, "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
