#!/usr/bin/env python3
"""The peer of our Llama training cell: Hugging Face transformers + PyTorch on the CPU
taking the same optimizer step (forward, backward, clipping at 1.0, AdamW) on the same
shapes, so that its tokens/s can sit beside `rwkv-bench run suites/train.toml`.

The model is `llama:preset=0.1b`'s shape (L12, D768, 12 heads, FFN 2304, vocab 65536,
untied, f32), random init; the batch is `tokens_per_step / seq_len` sequences of
uniform random tokens; loss is `labels=input_ids`. Attention is PyTorch's SDPA
(transformers' default), which is memory-efficient on CPU too.

Prints one JSON line per length: step seconds (each timed step), tokens/s of the median,
peak RSS of the process so far.

Usage (the golden-fixture venv has the pinned torch and transformers):
  /work/venv-golden/bin/python scripts/peers/hf_train_step.py --threads 2 \
      --lengths 512,1024,2048 --tokens-per-step 2048 --steps 2
"""

import argparse
import json
import resource
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lengths", default="512,1024,2048")
    ap.add_argument("--tokens-per-step", type=int, default=2048)
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    cfg = LlamaConfig(
        vocab_size=65536,
        hidden_size=768,
        intermediate_size=2304,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    cfg._attn_implementation = args.attn
    model = LlamaForCausalLM(cfg).float().train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    for seq_len in [int(x) for x in args.lengths.split(",")]:
        batch = max(1, args.tokens_per_step // seq_len)
        ids = torch.randint(0, cfg.vocab_size, (batch, seq_len))

        def step():
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return time.perf_counter() - t

        for _ in range(args.warmup_steps):
            step()
        times = [step() for _ in range(args.steps)]
        med = statistics.median(times)
        print(json.dumps({
            "implementation": f"transformers {transformers.__version__} LlamaForCausalLM ({args.attn}), "
                              f"torch {torch.__version__}",
            "params": params,
            "threads": args.threads,
            "seq_len": seq_len,
            "tokens_per_step": batch * seq_len,
            "step_s": times,
            "tokens_per_s": batch * seq_len / med,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
