"""Records what the shipped recall pair scores, for the test that reloads it
(crates/eval/tests/pretrained.rs must reproduce every hit count exactly).

    python3 scripts/pairs/record_accuracy.py reports/recall/results.json \
        assets/pretrained/recall-small/accuracy.json --training-length 256

Reads the MQAR accuracy records of `rwkv-bench eval suites/recall.toml` at the lengths
given by --lengths (default: the training length only, to keep the test fast).
Standard library only.
"""

import argparse
import json
import os
import tempfile
import tomllib


def main():
    p = argparse.ArgumentParser()
    p.add_argument("results")
    p.add_argument("out")
    p.add_argument("--training-length", type=int, required=True)
    p.add_argument("--lengths", type=int, nargs="*")
    a = p.parse_args()
    lengths = set(a.lengths or [a.training_length])
    r = json.load(open(a.results))
    suite = tomllib.loads(r["suite"]["source"])  # the suite as run, flags applied
    params = suite["accuracy"]["params"]
    cells = []
    for rec in r["records"]:
        if rec["metric"] != "accuracy" or rec.get("task") != "mqar" or rec["seq_len"] not in lengths:
            continue
        cells.append({
            "arch": rec["model"].split(":", 1)[0],
            "seq_len": rec["seq_len"],
            "pairs": rec["pairs"],
            "hits": sum(1 for s in rec["samples"] if s > 0.5),
            "probes": len(rec["samples"]),
        })
    if not cells:
        raise SystemExit(f"{a.results}: no MQAR accuracy records at {sorted(lengths)}")
    cells.sort(key=lambda c: (c["arch"], c["seq_len"], c["pairs"]))
    out = {
        "seed": suite["seed"],
        "examples": params["examples"],
        "token_vocab": params["token_vocab"],
        "training_length": a.training_length,
        "cells": cells,
    }
    d = os.path.dirname(os.path.abspath(a.out))
    with tempfile.NamedTemporaryFile("w", dir=d, delete=False) as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(f.name, a.out)
    print(f"wrote {a.out}: {len(cells)} cells")


if __name__ == "__main__":
    main()
