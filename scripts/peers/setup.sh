#!/usr/bin/env bash
# Creates the Python environment of the external peers (scripts/peers/cell.py): a venv
# with the pinned torch, rwkv and transformers of scripts/peers/requirements.txt.
#
#   scripts/peers/setup.sh [VENV_DIR]      (default: .venv-peers at the repository root)
#
# Prints the interpreter to pass as `--python` (or `python = "..."` in a suite).
# Needs python3 (3.10 or newer) with the venv module, and about 6 GB of disk: PyPI's
# torch wheel brings the CUDA runtime libraries even for CPU use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venv-peers}"
requirements="$here/requirements.txt"

fail() {
    echo "setup.sh: $*" >&2
    exit 1
}

command -v python3 >/dev/null || fail "python3 is not on PATH: install Python 3.10 or newer"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); the pinned torch and transformers need 3.10 or newer"

if [[ -x "$venv/bin/python" ]]; then
    echo "setup.sh: reusing the venv at $venv" >&2
else
    echo "setup.sh: creating a venv at $venv" >&2
    python3 -m venv "$venv" \
        || fail "python3 -m venv $venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi
python="$venv/bin/python"

echo "setup.sh: installing $requirements (about 6 GB, several minutes)" >&2
# pip's report goes to stderr: stdout carries only the interpreter's path.
"$python" -m pip install --disable-pip-version-check -r "$requirements" >&2 \
    || fail "pip install -r $requirements failed (see above); rerun this script to resume"

echo "setup.sh: checking the imports" >&2
RWKV_V7_ON=1 RWKV_JIT_ON=1 RWKV_CUDA_ON=0 PYTHONWARNINGS=ignore::FutureWarning "$python" -c '
import importlib.metadata as md
import torch, transformers, rwkv.model
from transformers import LlamaForCausalLM, DynamicCache
print(", ".join(f"{p} {md.version(p)}" for p in ("torch", "rwkv", "transformers")))
' >&2 || fail "the pinned packages do not import in $venv (see above)"

echo "setup.sh: done; pass this interpreter as --python (or python = \"...\" in a suite):" >&2
echo "$python"
