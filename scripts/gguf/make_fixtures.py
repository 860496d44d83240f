#!/usr/bin/env python3
"""Writes the GGUF fixtures of tests/fixtures/gguf/ from the golden checkpoints.

Each checkpoint becomes a llama.cpp-style GGUF twice, f32 and q8_0, converted the way
llama.cpp's converter does it (convert_hf_to_gguf.py / conversion/llama.py and
conversion/rwkv.py, with gguf-py's tensor names), using gguf-py's own writer and its
numpy Q8_0 quantiser:

  tests/fixtures/golden/llama_gqa/      -> llama_gqa.f32.gguf, llama_gqa.q8_0.gguf
  tests/fixtures/golden/rwkv7/tiny.pth  -> rwkv7_tiny.f32.gguf, rwkv7_tiny.q8_0.gguf

No torch: the safetensors file is parsed directly (an 8-byte header length, a JSON
header, raw little-endian data) and the .pth (a zip of a pickle plus raw storages) by
the small unpickler below, which rebuilds each tensor from its storage, offset, shape
and strides with numpy.

Usage (from the repository root):  python3 scripts/gguf/make_fixtures.py
"""

from __future__ import annotations

import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

import gguf

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/fixtures/golden"
OUT = ROOT / "tests/fixtures/gguf"


# --- reading the inputs ------------------------------------------------------------


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        data = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[info["dtype"]])
        out[name] = data.reshape(info["shape"]).astype(np.float32)
    return out


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


def _rebuild_tensor_v2(storage, offset, shape, stride, *_):
    return ("tensor", storage, offset, tuple(shape), tuple(stride))


class _PthUnpickler(pickle.Unpickler):
    """Just enough of torch's unpickling for a state dict of dense tensors."""

    DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "BFloat16Storage": "bf16"}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in self.DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        return _Storage(self.DTYPES[pid[1]], pid[2])


def read_pth(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next(n for n in names if n.endswith("data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        state = _PthUnpickler(z.open(pkl)).load()
        out = {}
        for name, (_, storage, offset, shape, stride) in state.items():
            raw = z.read(f"{prefix}data/{storage.key}")
            if storage.dtype == "bf16":
                flat = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                flat = np.frombuffer(raw, dtype=storage.dtype).astype(np.float32)
            item = flat.itemsize
            t = np.lib.stride_tricks.as_strided(
                flat[offset:], shape=shape, strides=[s * item for s in stride]
            )
            out[name] = np.ascontiguousarray(t)
        return out


# --- what llama.cpp's converter does -----------------------------------------------


def tensor_qtype(name: str, data: np.ndarray, ftype: gguf.LlamaFileType, f32_keys) -> gguf.GGMLQuantizationType:
    """ModelBase.prepare_tensors' choice of storage type for one tensor."""
    if ftype == gguf.LlamaFileType.ALL_F32:
        return gguf.GGMLQuantizationType.F32
    # 1-D tensors, norms and a few small tensors the converter always keeps in f32.
    # TIME_MIX_W1/W2 are RWKV-6 names, but RWKV-7's decay LoRA is written under the
    # same names, so it stays f32 too.
    if data.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return gguf.GGMLQuantizationType.F32
    if any(k in name for k in f32_keys):
        return gguf.GGMLQuantizationType.F32
    assert ftype == gguf.LlamaFileType.MOSTLY_Q8_0
    return gguf.GGMLQuantizationType.Q8_0


RWKV_F32_KEYS = ("time_mix_w1.", "time_mix_w2.", "time_mix_lerp_fused.")


def add_tensor(w: gguf.GGUFWriter, name: str, data: np.ndarray, ftype, f32_keys=()) -> None:
    qtype = tensor_qtype(name, data, ftype, f32_keys)
    data = data.astype(np.float32)
    if qtype != gguf.GGMLQuantizationType.F32:
        try:
            data = gguf.quants.quantize(data, qtype)
        except gguf.QuantError:
            # A row that does not split into blocks of 32: the converter falls back to f16.
            qtype = gguf.GGMLQuantizationType.F16
            data = gguf.quants.quantize(data, qtype)
    w.add_tensor(name, data, raw_dtype=qtype)


def placeholder_vocab(w: gguf.GGUFWriter, model: str, n: int) -> None:
    """The fixtures come without a tokenizer; llama.cpp wants one, so each token i is
    spelled `<i>` (the models never see text)."""
    w.add_tokenizer_model(model)
    w.add_token_list([f"<{i}>" for i in range(n)])
    w.add_token_types([int(gguf.TokenType.NORMAL)] * n)


def llama_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """LlamaModel.permute: HF's rotate-half rope layout -> ggml's interleaved pairs. Per
    head, row `half * hd/2 + i` moves to `2 * i + half`."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


LLAMA_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def write_llama(src: Path, out: Path, ftype) -> None:
    cfg = json.loads((src / "config.json").read_text())
    tensors = read_safetensors(src / "model.safetensors")
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(src.name)
    # TextModel.set_gguf_parameters, then LlamaModel's additions.
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_file_type(ftype)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    placeholder_vocab(w, "llama", cfg["vocab_size"])

    add_tensor(w, "token_embd.weight", tensors["model.embed_tokens.weight"], ftype)
    add_tensor(w, "output_norm.weight", tensors["model.norm.weight"], ftype)
    if not cfg.get("tie_word_embeddings", False):
        add_tensor(w, "output.weight", tensors["lm_head.weight"], ftype)
    for i in range(cfg["num_hidden_layers"]):
        for hf, ggml in LLAMA_NAMES.items():
            t = tensors[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                t = llama_permute(t, n_head, n_head)
            elif hf == "self_attn.k_proj":
                t = llama_permute(t, n_head, n_kv)
            add_tensor(w, f"blk.{i}.{ggml}.weight", t, ftype)
    finish(w)


# Official BlinkDL names -> the Hugging Face RWKV7 names Rwkv7Model.modify_tensors
# unifies to (model.layers.N.attention.*, .feed_forward.*), then gguf-py's mapping.
LERP_ORDER = ["r", "w", "k", "v", "a", "g"]


def official_to_hf(name: str) -> str:
    if name.startswith("emb."):
        return "model.embeddings." + name[len("emb.") :]
    if name.startswith("head."):
        return name
    if name.startswith("ln_out."):
        return "model." + name
    if name.startswith("blocks.0.ln0."):
        return "model.layers.0.pre_norm." + name.rsplit(".", 1)[1]
    name = "model.layers." + name[len("blocks.") :]
    return name.replace(".att.", ".attention.").replace(".ffn.", ".feed_forward.")


def write_rwkv(pth: Path, meta: Path, out: Path, ftype) -> None:
    cfg = json.loads(meta.read_text())
    tensors = read_pth(pth)
    n_layer, c, vocab = cfg["n_layer"], cfg["n_embd"], cfg["vocab"]
    lora = cfg["lora"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.RWKV7, n_layer)
    w = gguf.GGUFWriter(out, "rwkv7")
    w.add_name(pth.stem)
    # Rwkv7Model.set_gguf_parameters.
    w.add_context_length(1048576)  # "RWKV isn't context limited"
    w.add_embedding_length(c)
    w.add_block_count(n_layer)
    w.add_layer_norm_eps(1e-5)
    w.add_wkv_head_size(cfg["head_size"])
    w.add_decay_lora_rank(lora["decay_w"])
    w.add_iclr_lora_rank(lora["iclr_a"])
    w.add_value_residual_mix_lora_rank(lora["value_residual_v"])
    w.add_gate_lora_rank(lora["gate_g"])
    w.add_feed_forward_length(cfg["ffn"])
    w.add_file_type(ftype)
    w.add_head_count(0)  # "required by llama.cpp, unused"
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    placeholder_vocab(w, "rwkv", vocab)

    lerps: dict[int, dict[str, np.ndarray]] = {}
    for name, data in tensors.items():
        hf = official_to_hf(name)
        bid = int(name.split(".")[1]) if name.startswith("blocks.") else None
        # Layer 0's v0/v1/v2 are dummies the converter drops ...
        if bid == 0 and ".attention.v" in hf and "value" not in hf:
            continue
        if bid is not None and ".attention.x_" in hf:
            lerps.setdefault(bid, {})[hf.rsplit(".", 1)[1][2:]] = data
            if len(lerps[bid]) == len(LERP_ORDER):
                # torch.stack of six [1, 1, C] -> [6, 1, 1, C] (ggml ne {C, 1, 1, 6}), in
                # r, w, k, v, a, g order.
                fused = np.stack([lerps[bid][k] for k in LERP_ORDER], axis=0)
                add_tensor(w, f"blk.{bid}.time_mix_lerp_fused.weight", fused, ftype, RWKV_F32_KEYS)
            continue
        data = np.squeeze(data)  # [1, 1, C] -> [C]
        base, suffix = (hf[:-7], ".weight") if hf.endswith(".weight") else (hf[:-5], ".bias") if hf.endswith(".bias") else (hf, "")
        new = tmap.get_name(base)
        if new is None:
            sys.exit(f"{pth}: no gguf name for {name} ({hf})")
        new += suffix or ".weight"
        # The official LoRA factors are used as x @ w1 ([C, D]); llama.cpp wants the
        # nn.Linear layout, so all eight are transposed.
        if any(new.endswith(f"time_mix_{k}{j}.weight") for k in "wavg" for j in "12"):
            data = data.T.copy()
        if "r_k" in new:
            data = data.flatten()  # [H, N] -> [H*N]
        # ... and, "to make llama happy", writes copies of a0/a1/a2 in their place.
        if bid == 0 and "time_mix_a" in new:
            add_tensor(w, new.replace("time_mix_a", "time_mix_v"), data, ftype, RWKV_F32_KEYS)
        add_tensor(w, new, data, ftype, RWKV_F32_KEYS)
    finish(w)


def finish(w: gguf.GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {w.path if hasattr(w, 'path') else ''}")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for label, ftype in [("f32", gguf.LlamaFileType.ALL_F32), ("q8_0", gguf.LlamaFileType.MOSTLY_Q8_0)]:
        write_llama(GOLDEN / "llama_gqa", OUT / f"llama_gqa.{label}.gguf", ftype)
        write_rwkv(GOLDEN / "rwkv7/tiny.pth", GOLDEN / "rwkv7/tiny.json", OUT / f"rwkv7_tiny.{label}.gguf", ftype)


if __name__ == "__main__":
    main()
