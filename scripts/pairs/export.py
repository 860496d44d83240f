"""Exports a trained recall pair in the official formats and checks each file with the
official code.

    python scripts/pairs/export.py RWKV_CHECKPOINT_DIR LLAMA_CHECKPOINT_DIR OUT_DIR

RWKV_CHECKPOINT_DIR is a `rwkv-bench train` checkpoint of an rwkv7 model
(`.../step-NNNNNN`, holding model.safetensors under the official keys); the Llama one
holds a Hugging Face directory (config.json + model.safetensors). OUT_DIR receives

    rwkv7/model.pth           torch.save of the state dict in bfloat16, as BlinkDL ships theirs
    rwkv7/tokenizer.json      the pair's tokenizer (assets/pretrained/tokenizer.json)
    llama/config.json, llama/model.safetensors (bfloat16), llama/tokenizer.json

bfloat16 halves the files (each pair member stays under 2 MiB in git); every model here
upcasts them to the dtype it runs in, so the f32 logits compared below are those of the
rounded weights, in our code and in the official code alike.

Then it loads each with the official implementation (PyPI `rwkv`'s RWKV_x070,
Hugging Face `transformers`' LlamaForCausalLM), runs a fixed token sequence, and
compares the logits with `rwkv-bench logits` on the exported files (max |diff| must
stay under 1e-5 x (1 + max |logit|), f32). Needs scripts/golden/requirements.txt and a release build.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ["RWKV_V7_ON"] = "1"
os.environ["RWKV_JIT_ON"] = "1"
os.environ["RWKV_CUDA_ON"] = "0"

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "rwkv-bench")
TOKENIZER = os.path.join(ROOT, "assets", "pretrained", "tokenizer.json")
# f32 against f32: sums in another order, scaled by the logits' size.
TOLERANCE = 1e-5
# Keys then values then queries, as an MQAR example over the pair's 256 task ids.
TOKENS = [5, 200, 17, 133, 99, 250, 5, 200, 99, 250, 17, 133, 40, 7, 1, 0, 255, 128]


def ours(spec, out):
    subprocess.run(
        [BIN, "logits", "--model", spec, "--tokens", ",".join(map(str, TOKENS)), "--out", out],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return load_file(out)["logits"]


def export_rwkv(src, dst):
    os.makedirs(dst, exist_ok=True)
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    pth = os.path.join(dst, "model.pth")
    torch.save(sd, pth)
    shutil.copy(TOKENIZER, os.path.join(dst, "tokenizer.json"))
    from rwkv.model import RWKV

    model = RWKV(model=pth[: -len(".pth")], strategy="cpu fp32")
    theirs, _ = model.forward(list(TOKENS), None, full_output=True)
    return pth, theirs.float()


def export_llama(src, dst):
    os.makedirs(dst, exist_ok=True)
    config = json.load(open(os.path.join(src, "config.json")))
    config["torch_dtype"] = "bfloat16"
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    weights = load_file(os.path.join(src, "model.safetensors"))
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()},
        os.path.join(dst, "model.safetensors"),
        metadata={"format": "pt"},
    )
    shutil.copy(TOKENIZER, os.path.join(dst, "tokenizer.json"))
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(dst, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = model(torch.tensor([TOKENS])).logits[0]
    return dst, theirs.float()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rwkv_src, llama_src, out = sys.argv[1:]
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arch, export, src in (
            ("rwkv7", "rwkv7", export_rwkv, rwkv_src),
            ("llama", "llama", export_llama, llama_src),
        ):
            path, theirs = export(src, os.path.join(out, name))
            mine = ours(f"{arch}:{path}", os.path.join(tmp, f"{name}.safetensors"))
            diff = (mine - theirs).abs().max().item()
            bound = TOLERANCE * (1.0 + theirs.abs().max().item())
            report[name] = diff
            print(f"{name}: {path}: max |ours - official| = {diff:.2e} (bound {bound:.2e})")
            if not diff < bound:
                sys.exit(f"{name}: logits differ from the official implementation by {diff}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
