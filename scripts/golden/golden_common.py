"""Helpers shared by the golden-fixture generators."""

import hashlib
import json
import os
import struct

from safetensors.torch import save_file


def save_safetensors_deterministic(tensors, path, metadata):
    """`safetensors.torch.save_file`, then rewrite the JSON header canonically.

    safetensors serialises `__metadata__` from a hash map, so its key order (and
    therefore the file's bytes) changes from run to run. We re-emit the header
    with sorted metadata keys; tensor entries, offsets and the data section are
    left exactly as safetensors wrote them. The header is padded with spaces to
    a multiple of 8 bytes, as the format allows.
    """
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    metadata = {str(k): str(v) for k, v in metadata.items()}
    save_file(tensors, path, metadata=metadata)
    with open(path, "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", None)
    ordered = {}
    if meta is not None:
        ordered["__metadata__"] = dict(sorted(meta.items()))
    # keep tensors in data-offset order (how safetensors laid them out)
    for k in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        ordered[k] = header[k]
    hb = json.dumps(ordered, separators=(",", ":"), ensure_ascii=True).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hb)))
        fh.write(hb)
        fh.write(data)


def digest_dir(root):
    """{relative path: (size, sha256)} for every file under root."""
    out = {}
    for dp, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dp, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = (os.path.getsize(p), hashlib.sha256(fh.read()).hexdigest())
    return dict(sorted(out.items()))


def print_digest(root):
    for rel, (size, h) in digest_dir(root).items():
        print(f"  sha256 {h[:16]}  {size:>8}  {rel}")
