"""SmolLM2 (Llama) and Qwen2 in numpy from the dequantized GGUF, with HF semantics.

Request: {"gguf": path, "ids": [int], "generate": int (optional, greedy tokens to time)}
Response: {"logits": [float] (after the last prompt id), "generated": [int],
           "prefill_seconds": float, "decode_seconds": float}

The Q/K weights are un-permuted from llama.cpp's layout back to the HF checkpoint layout and
RoPE is HF's rotate-half form, so agreement with the Rust model (which uses the GGUF layout with
Burn's interleaved-pair RoPE) verifies that those two are equivalent. Dequantization is done by
the `gguf` package, independently of the Rust reader.

`general.architecture = qwen2` (HF `Qwen2ForCausalLM`): llama.cpp's converter does not permute
Qwen2's Q/K rows, so they are used as stored, with the same rotate-half RoPE, and the
`attn_{q,k,v}.bias` vectors are added to the projections (HF: `bias=True` on q/k/v_proj).
`output.weight`, when present, is the untied output.
"""
import time

import numpy as np

from common import gguf_field, gguf_tensors, read_request, write_response


def unpermute(w, n_head):
    # Inverse of convert_hf_to_gguf.py's permute(): rows (n_head, hd/2, 2) -> (n_head, 2, hd/2).
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


class Model:
    def __init__(self, path):
        r, t = gguf_tensors(path)
        arch = gguf_field(r, "general.architecture")
        assert arch in ("llama", "qwen2"), arch
        f = lambda k: gguf_field(r, f"{arch}.{k}")
        self.h = int(f("embedding_length"))
        self.nl = int(f("block_count"))
        self.nh = int(f("attention.head_count"))
        self.nkv = int(f("attention.head_count_kv"))
        self.eps = float(f("attention.layer_norm_rms_epsilon"))
        theta = float(f("rope.freq_base"))
        # llama: Q/K rows permuted by the converter; qwen2: HF's own order.
        perm = unpermute if arch == "llama" else (lambda w, n: w)
        self.hd = self.h // self.nh
        self.inv_freq = 1.0 / (theta ** (np.arange(0, self.hd, 2, dtype=np.float64) / self.hd))
        self.embd = t["token_embd.weight"]
        self.out = t.get("output.weight", self.embd)
        self.norm = t["output_norm.weight"]
        self.blocks = []
        for n in range(self.nl):
            g = lambda k: t[f"blk.{n}.{k}.weight"]
            zero = lambda m: np.zeros(m.shape[0], np.float32)
            bias = lambda k, w: t[f"blk.{n}.{k}.bias"] if arch == "qwen2" else zero(w)
            self.blocks.append(
                dict(
                    an=g("attn_norm"), fn=g("ffn_norm"),
                    q=perm(g("attn_q"), self.nh), k=perm(g("attn_k"), self.nkv),
                    bq=bias("attn_q", g("attn_q")), bk=bias("attn_k", g("attn_k")),
                    bv=bias("attn_v", g("attn_v")),
                    v=g("attn_v"), o=g("attn_output"),
                    gate=g("ffn_gate"), up=g("ffn_up"), down=g("ffn_down"),
                )
            )

    def rms(self, x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):
        # x: (heads, L, hd); HF rotate_half with cos/sin over concatenated half frequencies.
        ang = np.outer(pos, self.inv_freq)
        cos = np.cos(np.concatenate([ang, ang], -1)).astype(np.float32)
        sin = np.sin(np.concatenate([ang, ang], -1)).astype(np.float32)
        half = self.hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def forward(self, ids, cache):
        """ids: new tokens; cache: list of (k, v) per block, extended in place. Returns last logits."""
        start = cache[0][0].shape[1] if cache[0] is not None else 0
        n = len(ids)
        pos = np.arange(start, start + n)
        x = self.embd[ids]
        g = self.nh // self.nkv
        for i, b in enumerate(self.blocks):
            y = self.rms(x, b["an"])
            q = (y @ b["q"].T + b["bq"]).reshape(n, self.nh, self.hd).transpose(1, 0, 2)
            k = (y @ b["k"].T + b["bk"]).reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            v = (y @ b["v"].T + b["bv"]).reshape(n, self.nkv, self.hd).transpose(1, 0, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache[i] is not None:
                k = np.concatenate([cache[i][0], k], 1)
                v = np.concatenate([cache[i][1], v], 1)
            cache[i] = (k, v)
            kk, vv = np.repeat(k, g, 0), np.repeat(v, g, 0)
            s = q @ kk.transpose(0, 2, 1) / np.sqrt(self.hd)
            total = kk.shape[1]
            mask = np.arange(total)[None, :] > (pos[:, None])
            s = np.where(mask[None], -np.inf, s)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ vv).transpose(1, 0, 2).reshape(n, self.h)
            x = x + a @ b["o"].T
            y = self.rms(x, b["fn"])
            gate = y @ b["gate"].T
            x = x + ((gate / (1 + np.exp(-gate))) * (y @ b["up"].T)) @ b["down"].T
        last = self.rms(x[-1:], self.norm)
        return (last @ self.out.T)[0]


def main():
    req = read_request()
    m = Model(req["gguf"])
    cache = [None] * m.nl
    t0 = time.perf_counter()
    logits = m.forward(np.array(req["ids"]), cache)
    t1 = time.perf_counter()
    generated = []
    nxt = int(np.argmax(logits))
    for _ in range(req.get("generate", 0)):
        generated.append(nxt)
        nxt = int(np.argmax(m.forward(np.array([nxt]), cache)))
    t2 = time.perf_counter()
    write_response(
        {
            "logits": logits.astype(float).tolist(),
            "generated": generated,
            "prefill_seconds": t1 - t0,
            "decode_seconds": t2 - t1,
        }
    )


if __name__ == "__main__":
    main()
