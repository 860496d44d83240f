#!/usr/bin/env python3
"""Golden fixtures for the Llama family from Hugging Face `transformers`.

Builds small RANDOM models, saves them as Hugging Face directories
(config.json + safetensors, exactly what `save_pretrained` writes, except the
config layout note below) and records reference logits computed by
transformers itself with eager attention on CPU in float32.

Fixtures (under tests/fixtures/golden/<name>/ unless --out is given):
  llama_gqa      LlamaForCausalLM, GQA (4 q heads / 2 kv heads), untied, fp32
  qwen2_tied     Qwen2ForCausalLM, q/k/v bias, MQA (1 kv head), tied embeddings, fp32
  llama_sharded  LlamaForCausalLM saved in bfloat16 as 3 safetensors shards + index

Config layout: transformers 5.x writes `"rope_parameters": {"rope_theta": ..}`
and `"dtype"`; most published checkpoints (written by 4.x) have a top-level
`"rope_theta"` and `"torch_dtype"`. To exercise both, `llama_gqa` and
`qwen2_tied` get their config.json rewritten to the 4.x layout (the script
reloads them with transformers and checks the logits are unchanged);
`llama_sharded` keeps the 5.x layout as written.

Every fixture dir also gets golden.safetensors:
  tokens              int64 [T]
  logits_seq          f32 [T, V]  one forward over all T tokens
  logits_incremental  f32 [T, V]  prefill tokens[:5] (use_cache=True), then one
                                  token at a time with past_key_values

Usage:
  /work/venv-golden/bin/python scripts/golden/llama_golden.py
"""

import argparse
import importlib.metadata as md
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import print_digest, save_safetensors_deterministic  # noqa: E402

import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "golden")

SEQ_LEN = 16
PREFILL = 5
ATTN = "eager"
SHARD_SIZE = "64KB"

COMMON = dict(
    hidden_size=64,
    num_attention_heads=4,
    num_hidden_layers=2,
    max_position_embeddings=256,
    hidden_act="silu",
    # initializer_range 0.02 (the default) gives logits ~1e-3: useless for a
    # parity test. 0.2 gives logits with std ~1-3.
    initializer_range=0.2,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=None,
)

FIXTURES = {
    "llama_gqa": dict(
        cls=LlamaForCausalLM,
        config=LlamaConfig,
        seed=1001,
        kwargs=dict(
            COMMON,
            vocab_size=128,
            num_key_value_heads=2,
            intermediate_size=96,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        ),
        save_dtype=torch.float32,
        legacy_config=True,
        shard=None,
    ),
    "qwen2_tied": dict(
        cls=Qwen2ForCausalLM,
        config=Qwen2Config,
        seed=1002,
        kwargs=dict(
            COMMON,
            vocab_size=151,
            num_key_value_heads=1,
            intermediate_size=112,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            use_sliding_window=False,
        ),
        save_dtype=torch.float32,
        legacy_config=True,
        shard=None,
    ),
    "llama_sharded": dict(
        cls=LlamaForCausalLM,
        config=LlamaConfig,
        seed=1003,
        kwargs=dict(
            COMMON,
            vocab_size=128,
            num_key_value_heads=2,
            intermediate_size=96,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        ),
        save_dtype=torch.bfloat16,
        legacy_config=False,
        shard=SHARD_SIZE,
    ),
}


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": md.version("safetensors"),
        "numpy": md.version("numpy"),
    }


@torch.no_grad()
def perturb(model, seed):
    """The model's own init leaves every norm weight at 1 and every bias at 0,
    which a loader could ignore and still pass. Make them random too."""
    g = torch.Generator().manual_seed(seed + 500)
    for name, p in sorted(model.named_parameters()):
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
        elif name.endswith(".bias"):
            p.copy_(0.5 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def reference_logits(model, tokens):
    ids = tokens.view(1, -1)
    seq = model(input_ids=ids, use_cache=False).logits[0].float().clone()

    out = model(input_ids=ids[:, :PREFILL], use_cache=True)
    rows = [out.logits[0].float().clone()]
    pkv = out.past_key_values
    for t in range(PREFILL, ids.shape[1]):
        out = model(input_ids=ids[:, t : t + 1], past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        rows.append(out.logits[0].float().clone())
    inc = torch.cat(rows)
    return seq, inc


def to_legacy_config(path):
    """Rewrite a transformers-5 config.json in the layout transformers 4.x (and
    so most published checkpoints) use: top-level rope_theta, torch_dtype."""
    with open(path) as fh:
        cfg = json.load(fh)
    rp = cfg.pop("rope_parameters")
    assert rp.get("rope_type", "default") == "default" and set(rp) <= {"rope_theta", "rope_type"}, rp
    cfg["rope_theta"] = rp["rope_theta"]
    cfg["rope_scaling"] = None
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg.pop("layer_types", None)  # 5.x-only; derived from use_sliding_window in 4.x
    cfg = dict(sorted(cfg.items()))
    with open(path, "w") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=True)
        fh.write("\n")


def make_fixture(name, spec, out_root):
    out_dir = os.path.join(out_root, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)

    torch.manual_seed(spec["seed"])
    config = spec["config"](**spec["kwargs"])
    config._attn_implementation = ATTN
    model = spec["cls"](config).eval()  # the model's own (seeded) init
    perturb(model, spec["seed"])
    model = model.to(spec["save_dtype"])

    save_kwargs = {}
    if spec["shard"]:
        save_kwargs["max_shard_size"] = spec["shard"]
    model.save_pretrained(out_dir, **save_kwargs)
    gen_cfg = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen_cfg):
        os.remove(gen_cfg)  # not needed by anyone; fewer files to keep

    g = torch.Generator().manual_seed(spec["seed"] + 1)
    tokens = torch.randint(0, config.vocab_size, (SEQ_LEN,), generator=g, dtype=torch.int64)

    # Reference = what transformers computes from the saved directory, in f32
    # (bf16 weights upcast exactly to f32).
    ref = spec["cls"].from_pretrained(out_dir, dtype=torch.float32, attn_implementation=ATTN).eval()
    seq, inc = reference_logits(ref, tokens)

    # The in-memory model (bf16 weights upcast) must agree with the reloaded one.
    mem = model.to(torch.float32)
    for (k1, v1), (k2, v2) in zip(sorted(mem.state_dict().items()), sorted(ref.state_dict().items())):
        assert k1 == k2 and torch.equal(v1, v2), (k1, k2)

    if spec["legacy_config"]:
        to_legacy_config(os.path.join(out_dir, "config.json"))
        ref2 = spec["cls"].from_pretrained(out_dir, dtype=torch.float32, attn_implementation=ATTN).eval()
        assert ref2.config.rope_parameters["rope_theta"] == spec["kwargs"]["rope_theta"]
        seq2, inc2 = reference_logits(ref2, tokens)
        assert torch.equal(seq, seq2) and torch.equal(inc, inc2), "legacy config.json changed the model"

    # Structural checks on what was written
    files = sorted(os.listdir(out_dir))
    if spec["shard"]:
        assert "model.safetensors.index.json" in files and sum(f.endswith(".safetensors") for f in files) >= 2, files
    else:
        assert "model.safetensors" in files, files
    from safetensors import safe_open

    names = set()
    for f in files:
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(out_dir, f), "pt") as st:
                for k in st.keys():
                    names.add(k)
                    want = {torch.float32: torch.float32, torch.bfloat16: torch.bfloat16}[spec["save_dtype"]]
                    assert st.get_slice(k).get_dtype() == {torch.float32: "F32", torch.bfloat16: "BF16"}[want]
    if config.tie_word_embeddings:
        assert "lm_head.weight" not in names, "tied model must not store lm_head.weight"
    else:
        assert "lm_head.weight" in names

    diff = (seq - inc).abs().max().item()
    scale = seq.abs().max().item()
    print(f"  {name}: logits std {seq.std().item():.3f}, max |logit| {scale:.3f}, max |seq - incremental| {diff:.3e}")
    assert diff <= 1e-5 * max(1.0, scale), f"{name}: transformers disagrees with itself: {diff}"
    assert 0.3 < seq.std().item() < 20.0, "logits badly conditioned"

    meta = {
        "generator": "scripts/golden/llama_golden.py",
        "reference": f"transformers {spec['cls'].__name__}, attn_implementation={ATTN}, cpu, float32",
        "seed": str(spec["seed"]),
        "checkpoint_dtype": str(spec["save_dtype"]).replace("torch.", ""),
        "seq_len": str(SEQ_LEN),
        "prefill": str(PREFILL),
        "config_layout": "transformers-4 (rope_theta, torch_dtype)" if spec["legacy_config"]
        else "transformers-5 (rope_parameters, dtype)",
        "self_consistency": json.dumps({"max_abs_seq_vs_incremental": float(f"{diff:.3e}")}),
        "versions": json.dumps(versions(), sort_keys=True),
    }
    save_safetensors_deterministic(
        {"tokens": tokens, "logits_seq": seq, "logits_incremental": inc},
        os.path.join(out_dir, "golden.safetensors"),
        meta,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", choices=sorted(FIXTURES), action="append")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    for name in args.only or FIXTURES:
        print(f"[llama] {name}")
        make_fixture(name, FIXTURES[name], args.out)
    for name in args.only or FIXTURES:
        print_digest(os.path.join(args.out, name))


if __name__ == "__main__":
    main()
