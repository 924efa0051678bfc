"""Shared helpers for the numpy references: JSON in on stdin, JSON out on stdout."""
import json
import sys

import numpy as np


def read_request():
    return json.load(sys.stdin)


def write_response(obj):
    import resource

    obj["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(obj, sys.stdout)


def gguf_tensors(path):
    """name -> float32 array (dequantized by the `gguf` package, shape = reversed ggml dims)."""
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        out[t.name] = a.reshape([int(d) for d in reversed(t.shape)])
    return r, out


def gguf_field(reader, key):
    return reader.fields[key].contents()
