#!/usr/bin/env python3
"""Golden fixtures for RWKV-7 ("Goose", x070) from the official `rwkv` PyPI package.

Builds small RANDOM checkpoints in the official RWKV-7 `.pth` layout (the raw
state dict that `rwkv.model.RWKV_x070` loads, same key names and raw shapes as
BlinkDL/RWKV-LM `RWKV-v7/train_temp` writes), runs the official package on CPU
in fp32 and records logits and final recurrent state.

Outputs (under tests/fixtures/golden/rwkv7/ unless --out is given), per model:
  <name>.pth                 the checkpoint (fp32 or bf16 tensors)
  <name>.golden.safetensors  tokens + logits + final states (see README.md)
  <name>.json                the config, for humans

Deterministic: re-running with the pinned versions produces byte-identical
files (sha256 of each file is printed at the end).

Usage:
  /work/venv-golden/bin/python scripts/golden/rwkv7_golden.py
"""

import argparse
import json
import os
import sys

# Must be set before `import rwkv.model`: the x070 class is only defined when
# RWKV_V7_ON=1. RWKV_CUDA_ON=0 selects the pure PyTorch WKV loop (the CUDA
# kernel is never built). The V7 code path always uses TorchScript
# (torch.jit.ScriptModule) regardless of RWKV_JIT_ON; we set it to "1" to be
# explicit.
os.environ["RWKV_V7_ON"] = "1"
os.environ["RWKV_JIT_ON"] = "1"
os.environ["RWKV_CUDA_ON"] = "0"
os.environ.pop("RWKV_DE_VERSION", None)  # DeepEmbed variant: not ours

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import print_digest, save_safetensors_deterministic  # noqa: E402

import importlib.metadata as md  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "golden", "rwkv7")

STRATEGY = "cpu fp32"
SEQ_LEN = 16
CHUNK_SPLIT = 5  # logits_chunked: tokens[:5] then tokens[5:]

# Two fixture models. Shapes are deliberately odd so that a loader must infer
# everything from tensor shapes: FFN width != 4*C, four different LoRA widths,
# head_size != 64 in `tiny` (the package's CPU path takes H, N from r_k's shape;
# HEAD_SIZE=64 is only baked into the optional CUDA kernel).
MODELS = {
    "tiny": dict(
        seed=7001,
        vocab=131,
        n_embd=64,
        head_size=32,  # -> 2 heads
        n_layer=2,
        ffn=224,  # 3.5 * C
        lora=dict(w=8, a=12, v=6, g=16),
        dtype="float32",
    ),
    "tiny_bf16": dict(
        seed=7002,
        vocab=113,
        n_embd=128,
        head_size=64,  # -> 2 heads, the head size of every released RWKV-7
        n_layer=2,
        ffn=320,  # 2.5 * C
        lora=dict(w=16, a=24, v=8, g=32),
        dtype="bfloat16",
    ),
}


def build_state_dict(cfg):
    """Random weights in the official raw layout (key order as in RWKV-LM)."""
    g = torch.Generator().manual_seed(cfg["seed"])
    V, C, N, L, F = cfg["vocab"], cfg["n_embd"], cfg["head_size"], cfg["n_layer"], cfg["ffn"]
    H = C // N
    D = cfg["lora"]

    def normal(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean

    def uniform(*shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=g, dtype=torch.float32) * (hi - lo) + lo

    def ln(prefix, sd):
        sd[prefix + ".weight"] = normal(C, std=0.1, mean=1.0)
        sd[prefix + ".bias"] = normal(C, std=0.1)

    sd = {}
    sd["emb.weight"] = normal(V, C, std=1.0)
    for i in range(L):
        p = f"blocks.{i}."
        if i == 0:
            ln(p + "ln0", sd)
        ln(p + "ln1", sd)
        ln(p + "ln2", sd)
        a = p + "att."
        # token-shift mix coefficients, raw shape [1,1,C]
        for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
            sd[a + name] = uniform(1, 1, C)
        # decay: w = exp(-0.606531 * sigmoid(w0 + tanh(xw@w1)@w2)) in [0.545, 1)
        sd[a + "w0"] = uniform(1, 1, C, lo=-4.0, hi=2.0)
        sd[a + "w1"] = normal(C, D["w"], std=0.15)
        sd[a + "w2"] = normal(D["w"], C, std=0.3)
        # in-context learning rate a = sigmoid(a0 + (xa@a1)@a2)
        sd[a + "a0"] = normal(1, 1, C, std=0.5)
        sd[a + "a1"] = normal(C, D["a"], std=0.15)
        sd[a + "a2"] = normal(D["a"], C, std=0.3)
        # value residual gate (present in layer 0 of official files, unused there)
        sd[a + "v0"] = normal(1, 1, C, std=0.5, mean=0.3)
        sd[a + "v1"] = normal(C, D["v"], std=0.15)
        sd[a + "v2"] = normal(D["v"], C, std=0.3)
        # output gate g = sigmoid(xg@g1)@g2
        sd[a + "g1"] = normal(C, D["g"], std=0.2)
        sd[a + "g2"] = normal(D["g"], C, std=0.4)
        sd[a + "k_k"] = normal(1, 1, C, std=0.1, mean=0.8)
        sd[a + "k_a"] = normal(1, 1, C, std=0.2, mean=1.0)
        sd[a + "r_k"] = normal(H, N, std=0.3)
        # nn.Linear weights, raw [out, in]
        sd[a + "receptance.weight"] = normal(C, C, std=C ** -0.5)
        sd[a + "key.weight"] = normal(C, C, std=C ** -0.5)
        sd[a + "value.weight"] = normal(C, C, std=C ** -0.5)
        sd[a + "output.weight"] = normal(C, C, std=0.7 * C ** -0.5)
        # GroupNorm(H, C, eps=64e-5)
        sd[a + "ln_x.weight"] = normal(C, std=0.1, mean=1.0)
        sd[a + "ln_x.bias"] = normal(C, std=0.1)
        f = p + "ffn."
        sd[f + "x_k"] = uniform(1, 1, C)
        sd[f + "key.weight"] = normal(F, C, std=C ** -0.5)
        sd[f + "value.weight"] = normal(C, F, std=0.5 * F ** -0.5)
    ln("ln_out", sd)
    sd["head.weight"] = normal(V, C, std=0.25)

    dt = getattr(torch, cfg["dtype"])
    # .clone(): every tensor owns a storage of exactly its size at offset 0, as
    # in released checkpoints (no shared storages / views for a loader to handle)
    out = {k: v.to(dt).contiguous().clone() for k, v in sd.items()}
    for k, v in out.items():
        assert v.storage_offset() == 0 and v.untyped_storage().nbytes() == v.numel() * v.element_size(), k
    return out


def clone_state(state):
    return [s.detach().clone().float().contiguous() for s in state]


def run_official(path_no_ext, tokens):
    from rwkv.model import RWKV  # RWKV is RWKV_x070 when RWKV_V7_ON=1

    model = RWKV(model=path_no_ext, strategy=STRATEGY)
    T = len(tokens)

    # 1) whole sequence, one call, all positions (full_output=True)
    logits_seq, state = model.forward(list(tokens), None, full_output=True)
    logits_seq = logits_seq.float().clone()
    state_seq = clone_state(state)

    # 2) token by token, carrying the RETURNED state
    state = None
    rows = []
    for t in tokens:
        out, state = model.forward(int(t), state)
        rows.append(out.float().clone())
        state = clone_state(state)  # defensive: never alias the package's tensors
    logits_step = torch.stack(rows)
    state_step = clone_state(state)

    # 3) two chunks: tokens[:CHUNK_SPLIT] then tokens[CHUNK_SPLIT:], all positions
    assert CHUNK_SPLIT > 1 and T - CHUNK_SPLIT > 1  # a 1-token list would take forward_one
    out1, state = model.forward(list(tokens[:CHUNK_SPLIT]), None, full_output=True)
    out1 = out1.float().clone()
    state = clone_state(state)
    out2, state = model.forward(list(tokens[CHUNK_SPLIT:]), state, full_output=True)
    logits_chunked = torch.cat([out1, out2.float().clone()])
    state_chunked = clone_state(state)

    # sanity: last-position-only forward equals the last row of full_output
    last, _ = model.forward(list(tokens), None, full_output=False)

    assert logits_seq.shape == (T, model.args.vocab_size), logits_seq.shape
    checks = {
        "max_abs_seq_vs_step": (logits_seq - logits_step).abs().max().item(),
        "max_abs_seq_vs_chunked": (logits_seq - logits_chunked).abs().max().item(),
        "max_abs_seq_last_vs_full_output_false": (logits_seq[-1] - last.float()).abs().max().item(),
        "max_abs_state_seq_vs_step": max((a - b).abs().max().item() for a, b in zip(state_seq, state_step)),
        "max_abs_state_seq_vs_chunked": max((a - b).abs().max().item() for a, b in zip(state_seq, state_chunked)),
    }
    return dict(
        model=model,
        logits_seq=logits_seq,
        logits_step=logits_step,
        logits_chunked=logits_chunked,
        state_seq=state_seq,
        state_step=state_step,
        checks=checks,
    )


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "rwkv": md.version("rwkv"),
        "safetensors": md.version("safetensors"),
        "numpy": md.version("numpy"),
    }


def make_fixture(name, cfg, out_dir):
    torch.manual_seed(cfg["seed"])
    sd = build_state_dict(cfg)
    pth = os.path.join(out_dir, name + ".pth")
    torch.save(sd, pth)

    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    tokens = torch.randint(0, cfg["vocab"], (SEQ_LEN,), generator=g, dtype=torch.int64)

    res = run_official(os.path.join(out_dir, name), tokens.tolist())
    for k, v in res["checks"].items():
        print(f"  {name}: {k} = {v:.3e}")
        assert v <= 1e-5, f"{name}: official package disagrees with itself: {k} = {v}"

    ls = res["logits_seq"]
    std = ls.std().item()
    print(f"  {name}: logits std {std:.3f}, max |logit| {ls.abs().max().item():.3f}")
    assert 0.3 < std < 20.0, "logits badly conditioned"

    tensors = {
        "tokens": tokens.contiguous(),
        "logits_seq": res["logits_seq"].contiguous(),
        "logits_step": res["logits_step"].contiguous(),
        "logits_chunked": res["logits_chunked"].contiguous(),
    }
    for i, s in enumerate(res["state_seq"]):
        tensors[f"state.{i}"] = s.contiguous()
    for i, s in enumerate(res["state_step"]):
        tensors[f"state_step.{i}"] = s.contiguous()

    meta = {
        "generator": "scripts/golden/rwkv7_golden.py",
        "reference": "rwkv.model.RWKV_x070 (PyPI rwkv), RWKV_V7_ON=1 RWKV_JIT_ON=1 RWKV_CUDA_ON=0",
        "strategy": STRATEGY,
        "seed": str(cfg["seed"]),
        "checkpoint": name + ".pth",
        "checkpoint_dtype": cfg["dtype"],
        "seq_len": str(SEQ_LEN),
        "chunk_split": json.dumps([CHUNK_SPLIT, SEQ_LEN - CHUNK_SPLIT]),
        "state_layout": "state.{3*i+0}=att token-shift x_prev [C] (ln1 output of last token); "
        "state.{3*i+1}=WKV state [H,N,N] indexed [head, value(i), key(j)]; "
        "state.{3*i+2}=ffn token-shift x_prev [C] (ln2 output of last token)",
        "self_consistency": json.dumps({k: float(f"{v:.3e}") for k, v in res["checks"].items()}),
        "versions": json.dumps(versions(), sort_keys=True),
    }
    save_safetensors_deterministic(tensors, os.path.join(out_dir, name + ".golden.safetensors"), meta)

    C, N = cfg["n_embd"], cfg["head_size"]
    human = {
        "n_layer": cfg["n_layer"],
        "n_embd": C,
        "head_size": N,
        "n_head": C // N,
        "vocab": cfg["vocab"],
        "ffn": cfg["ffn"],
        "lora": {"decay_w": cfg["lora"]["w"], "iclr_a": cfg["lora"]["a"],
                 "value_residual_v": cfg["lora"]["v"], "gate_g": cfg["lora"]["g"]},
        "checkpoint_dtype": cfg["dtype"],
        "seed": cfg["seed"],
        "seq_len": SEQ_LEN,
        "chunk_split": [CHUNK_SPLIT, SEQ_LEN - CHUNK_SPLIT],
        "strategy": STRATEGY,
        "tokens": tokens.tolist(),
        "raw_shapes": {k: list(v.shape) for k, v in sd.items()},
        "versions": versions(),
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as fh:
        json.dump(human, fh, indent=1)
        fh.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", choices=sorted(MODELS), action="append")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)  # reproducible reductions
    for name in args.only or MODELS:
        print(f"[rwkv7] {name}")
        make_fixture(name, MODELS[name], args.out)
    print_digest(args.out)


if __name__ == "__main__":
    main()
