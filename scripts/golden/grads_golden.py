#!/usr/bin/env python3
"""Golden gradients: the next-token loss and the gradient of every parameter, in float64.

For every committed fixture checkpoint, records with PyTorch autograd in float64:
  tokens        int64 [T]  (T = 40: crosses the 32-token chunk of our WKV-7 backward)
  loss          f64 [1]    mean cross-entropy of positions 0..T-2 predicting tokens 1..T-1
                           (Hugging Face's `labels=input_ids` convention)
  grad.<key>    f16 (to keep the fixture small), the checkpoint's shape, one per checkpoint key; keys the loss
                does not depend on (RWKV layer 0's v0/v1/v2) get zeros

References:
  RWKV-7     the float64 x070 forward of check_fixtures.py (written from the official
             formulas), first checked here against the official `rwkv` package's
             logits on the same tokens (<= 1e-4), then differentiated.
  Llama/Qwen2  Hugging Face transformers itself, `.double()`, eager attention,
             `labels=input_ids`; cross-checked against check_fixtures.py's independent
             float64 forward (loss and every gradient <= 1e-5: transformers' RoPE tables
             are float32 even in a float64 model).
Both are also checked by central finite differences on two entries of every tensor.

Outputs:
  tests/fixtures/golden/rwkv7/<name>.grads.safetensors
  tests/fixtures/golden/<hf fixture>/grads.safetensors

Usage:
  /work/venv-golden/bin/python scripts/golden/grads_golden.py
"""

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_fixtures as cf  # noqa: E402  (sets the RWKV_* environment first)
from golden_common import save_safetensors_deterministic  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SEQ_LEN = 40
# llama_golden.py's fixture seeds: the tokens come from seed + 2
SEEDS = {"llama_gqa": 1001, "qwen2_tied": 1002, "llama_sharded": 1003}
FD_EPS = 1e-6


def next_token_loss(logits, tokens):
    return F.cross_entropy(logits[:-1], tokens[1:])


def tokens_for(seed, vocab):
    g = torch.Generator().manual_seed(seed + 2)
    return torch.randint(0, vocab, (SEQ_LEN,), generator=g, dtype=torch.int64)


def finite_difference(loss_fn, params, grads, seed):
    """Central differences on the largest-|grad| entry and one random entry of each tensor."""
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    with torch.no_grad():
        for key, p in params.items():
            flat, gflat = p.view(-1), grads[key].view(-1)
            idx = {int(gflat.abs().argmax()), int(torch.randint(0, flat.numel(), (1,), generator=g))}
            for i in idx:
                old = flat[i].item()
                flat[i] = old + FD_EPS
                up = loss_fn().item()
                flat[i] = old - FD_EPS
                down = loss_fn().item()
                flat[i] = old
                fd = (up - down) / (2 * FD_EPS)
                err = abs(fd - gflat[i].item()) / max(1.0, abs(fd))
                worst = max(worst, err)
                assert err < 1e-6, f"{key}[{i}]: autograd {gflat[i].item():.9g} vs finite difference {fd:.9g}"
    return worst


def save(path, tokens, loss, grads, meta):
    tensors = {"tokens": tokens, "loss": loss.detach().reshape(1).double()}
    for key, grad in grads.items():
        # f16 keeps the fixtures small; its rounding (<= 2^-11 relative, 4.9e-4) is
        # under half of the tests' 1e-3 tolerance.
        tensors["grad." + key] = grad.half().contiguous()
    save_safetensors_deterministic(tensors, path, meta)


def rwkv_grads(name):
    from rwkv.model import RWKV

    base = os.path.join(cf.RWKV_DIR, name)
    cfg = json.load(open(base + ".json"))
    sd = torch.load(base + ".pth", map_location="cpu", weights_only=True)
    params = {k: v.double().requires_grad_(True) for k, v in sd.items()}
    tokens = tokens_for(cfg["seed"], cfg["vocab"])

    logits, _ = cf.rwkv7_reference(params, tokens.tolist())
    official, _ = RWKV(model=base, strategy="cpu fp32").forward(tokens.tolist(), None, full_output=True)
    d = (logits.detach() - official.double()).abs().max().item()
    print(f"  {name}: differentiable f64 x070 vs official rwkv package logits max|d| {d:.2e}")
    assert d <= 1e-4, "the differentiable forward is not the official model"

    loss = next_token_loss(logits, tokens)
    loss.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for k, p in params.items()}
    unused = sorted(k for k, p in params.items() if p.grad is None)
    assert unused == ["blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"], unused
    worst = finite_difference(
        lambda: next_token_loss(cf.rwkv7_reference(params, tokens.tolist())[0], tokens), params, grads, cfg["seed"]
    )
    report(name, loss, grads, worst)
    meta = {
        "generator": "scripts/golden/grads_golden.py",
        "reference": "float64 x070 forward (check_fixtures.rwkv7_reference), torch autograd; "
        f"logits vs official rwkv package max|d| {d:.2e}",
        "finite_difference_max_rel_err": f"{worst:.2e}",
        "unused_parameters": json.dumps(unused),
        "versions": json.dumps(cf_versions(), sort_keys=True),
    }
    save(base + ".grads.safetensors", tokens, loss, grads, meta)


def hf_grads(name):
    import transformers

    transformers.logging.set_verbosity_error()
    d = os.path.join(cf.GOLDEN, name)
    cfg, raw = cf.load_hf_dir(d)
    cls = getattr(transformers, cfg["architectures"][0])
    model = cls.from_pretrained(d, dtype=torch.float64, attn_implementation="eager").eval()
    tokens = tokens_for(SEEDS[name], cfg["vocab_size"])
    out = model(input_ids=tokens.view(1, -1), labels=tokens.view(1, -1), use_cache=False)
    out.loss.backward()
    named = dict(model.named_parameters())
    grads = {}
    for key in sorted(raw):
        p = named[key]
        grads[key] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)

    # The independent float64 forward, differentiated, must agree.
    params = {k: v.double().requires_grad_(True) for k, v in raw.items()}
    ref_loss = next_token_loss(cf.llama_reference(cfg, params, tokens), tokens)
    ref_loss.backward()
    dl = abs(ref_loss.item() - out.loss.item())
    dg = max((params[k].grad - grads[k]).abs().max().item() for k in raw)
    print(f"  {name}: transformers vs independent f64 forward: |d loss| {dl:.2e}, max|d grad| {dg:.2e}")
    # transformers computes its RoPE tables in float32 even for a float64 model, so the
    # two agree to ~1e-6, not to float64 precision.
    assert dl <= 1e-5 and dg <= 1e-5, "transformers and the independent forward disagree"
    with torch.no_grad():
        ref_grads = {k: p.grad.clone() for k, p in params.items()}
    worst = finite_difference(
        lambda: next_token_loss(cf.llama_reference(cfg, params, tokens), tokens), params, ref_grads, SEEDS[name]
    )
    report(name, out.loss, grads, worst)
    meta = {
        "generator": "scripts/golden/grads_golden.py",
        "reference": f"transformers {cls.__name__}, float64, attn_implementation=eager, labels=input_ids",
        "finite_difference_max_rel_err": f"{worst:.2e}",
        "versions": json.dumps(cf_versions(), sort_keys=True),
    }
    save(os.path.join(d, "grads.safetensors"), tokens, out.loss, grads, meta)


def report(name, loss, grads, worst):
    big = max(g.abs().max().item() for g in grads.values())
    print(f"  {name}: loss {loss.item():.6f}, max|grad| {big:.3e}, finite differences max rel err {worst:.1e}")


def cf_versions():
    import importlib.metadata as md

    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "rwkv": md.version("rwkv"),
        "transformers": transformers.__version__,
        "safetensors": md.version("safetensors"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    torch.set_num_threads(1)
    for name in cf.RWKV_MODELS:
        print(f"[rwkv7] {name}")
        rwkv_grads(name)
    for name in cf.LLAMA_MODELS:
        print(f"[llama] {name}")
        hf_grads(name)
    paths = [os.path.join(cf.RWKV_DIR, n + ".grads.safetensors") for n in cf.RWKV_MODELS]
    paths += [os.path.join(cf.GOLDEN, n, "grads.safetensors") for n in cf.LLAMA_MODELS]
    for p in paths:
        with open(p, "rb") as fh:
            print(f"  sha256 {hashlib.sha256(fh.read()).hexdigest()[:16]}  {os.path.getsize(p):>8}  {p}")


if __name__ == "__main__":
    main()
