#!/usr/bin/env python3
"""One benchmark cell of an external peer, speaking the protocol of `rwkv-bench cell`.

The peers are the reference implementations outside this build, measured the way
crates/speed/src/measure/cell.rs measures ours:

  rwkv7-official  the official `rwkv` PyPI package (RWKV_x070, RWKV_V7_ON=1), strategy
                  `cpu fp32`, TorchScript, pure-PyTorch WKV loop (RWKV_CUDA_ON=0)
  llama-hf        Hugging Face transformers' LlamaForCausalLM, float32, SDPA attention

Protocol: one JSON job on stdin (the Rust `CellPlan` plus `preset`, the preset's shapes
or null for a checkpoint path); JSON-lines events on stdout, flushed one by one:
  {"event":"progress","phase":"load"|"warmup"|"prefill"|"decode","done":i,"total":n}
  {"event":"estimate","seconds":s,"basis":"..."}        (after the warm-up)
and last exactly one of
  {"event":"done","outcome":{...CellOutcome...}}          exit code 0
  {"event":"failed","error":"one line"}                   exit code 1
Nothing else reaches stdout: the packages' own prints and warnings go to stderr.

Threads: RAYON_NUM_THREADS (0 or unset: every CPU this process may run on).

Usage (see scripts/peers/README.md):
  scripts/peers/setup.sh                      # once: .venv-peers with the pinned packages
  echo "$JOB" | .venv-peers/bin/python scripts/peers/cell.py
"""

import gc
import json
import math
import os
import resource
import sys
import tempfile
import time
import warnings

# The channel the parent reads: the real stdout, kept on a private descriptor. fd 1
# itself is pointed at stderr, so that a print from any package (the rwkv package
# prints on import and on load) can never corrupt the event stream.
EVENTS = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

THREADS_ENV = "RAYON_NUM_THREADS"
SETUP_HINT = "run scripts/peers/setup.sh and pass its interpreter with --python"

# The official package's strategy: CPU, fp32 weights and activations.
RWKV_STRATEGY = "cpu fp32"
# Prompt tokens per rwkv `forward()` call. The package's PIPELINE splits prompts into
# chunk_len=256 pieces "to save VRAM (shorter -> slower)". On the CPU its sequence path
# (forward_seq: projections as matmuls over the chunk, the WKV recurrence a TorchScript
# loop over tokens) took, for 2048 tokens of 0.1b on 2 threads, 4.90 s in 256-token
# chunks, 4.46 s in 1024-token chunks and 4.52 s whole (equal on 1 thread); 1024 is
# as fast as whole prompts and bounds the activations of very long ones.
RWKV_PREFILL_CHUNK = 1024

# Mirrors of crates/results/src/roofline.rs, for the estimate event.
RWKV_HEAD_SIZE = 64.0
WKV_FLOPS_PER_STATE_ELEMENT = 9.0
# Mirrors of crates/speed/src/measure/estimate.rs.
REFINE_ABOVE_S = 30.0
REFINE_FACTOR = 8


class PeerError(Exception):
    """A job this peer cannot run, with the message the parent shows."""


def emit(event):
    EVENTS.write(json.dumps(event, separators=(",", ":")) + "\n")
    EVENTS.flush()


def progress(phase, done, total):
    emit({"event": "progress", "phase": phase, "done": done, "total": total})


# ----------------------------------------------------------------------------- spec


def is_option(segment):
    """Whether a `,`-separated segment is `key=value` (crates/results/src/spec.rs)."""
    key, eq, _ = segment.partition("=")
    return bool(eq) and bool(key) and all("a" <= c <= "z" or "0" <= c <= "9" or c == "_" for c in key)


class Spec:
    """`NAME:preset=PRESET` or `NAME:PATH`, then `,key=value` options."""

    def __init__(self, raw):
        self.raw = raw
        name, colon, rest = raw.partition(":")
        if not colon or not name:
            raise PeerError(f"model spec `{raw}`: expected NAME:preset=PRESET or NAME:PATH")
        segments = rest.split(",")
        source = segments[0]
        named = source.startswith("preset=") or source.startswith("pretrained=")
        self.options = []
        for segment in segments[1:]:
            if not self.options and not named and not is_option(segment):
                source += "," + segment  # a path with a comma in it
            elif is_option(segment):
                self.options.append(tuple(segment.split("=", 1)))
            else:
                raise PeerError(f"model spec `{raw}`: `{segment}` is not an option: expected `,key=value`")
        self.implementation = name
        self.preset = source[len("preset="):] if source.startswith("preset=") else None
        self.pretrained = source[len("pretrained="):] if source.startswith("pretrained=") else None
        self.path = None if named else source
        if not (self.preset or self.pretrained or self.path):
            raise PeerError(f"model spec `{raw}`: the preset name or path after ':' is empty")


# ---------------------------------------------------------------- random weights


def init_(t, init, generator):
    """Fills `t` in place with the initialisation of crates/models/src/synthetic.rs
    (`std` is zero-mean uniform with that standard deviation, as there)."""
    kind, *args = init
    if kind == "const":
        return t.fill_(args[0])
    if kind == "uniform":
        return t.uniform_(args[0], args[1], generator=generator)
    a = args[0] * math.sqrt(3.0)
    return t.uniform_(-a, a, generator=generator)


def std(fan_in, scale=1.0):
    return ("std", scale / math.sqrt(fan_in))


def rwkv7_specs(p):
    """(key, raw shape, init) of an official RWKV-7 (x070) checkpoint of a preset, as
    `rwkv7_specs` in crates/models/src/synthetic.rs."""
    c, v, r = p["width"], p["vocab"], p["rwkv"]
    heads = c // r["head_size"]
    vec3 = [1, 1, c]
    one, zero = ("const", 1.0), ("const", 0.0)
    s = [("emb.weight", [v, c], ("std", 0.02))]
    for layer in range(p["layers"]):
        b = f"blocks.{layer}"
        lns = ["ln0", "ln1", "ln2"] if layer == 0 else ["ln1", "ln2"]
        for ln in lns:
            s += [(f"{b}.{ln}.weight", [c], one), (f"{b}.{ln}.bias", [c], zero)]
        a = f"{b}.att"
        s += [(f"{a}.{x}", vec3, ("uniform", 0.0, 1.0)) for x in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")]
        for name, rank, base in (
            ("w", r["lora_w"], ("uniform", -6.0, -1.0)),
            ("a", r["lora_a"], ("uniform", -1.0, 1.0)),
            ("v", r["lora_v"], ("uniform", 0.5, 1.5)),
        ):
            s.append((f"{a}.{name}0", vec3, base))
            s.append((f"{a}.{name}1", [c, rank], std(c, 0.1)))
            s.append((f"{a}.{name}2", [rank, c], std(rank, 0.1)))
        s.append((f"{a}.g1", [c, r["lora_g"]], std(c, 0.1)))
        s.append((f"{a}.g2", [r["lora_g"], c], std(r["lora_g"], 0.1)))
        s.append((f"{a}.k_k", vec3, ("uniform", 0.7, 1.0)))
        s.append((f"{a}.k_a", vec3, ("uniform", 0.8, 1.2)))
        s.append((f"{a}.r_k", [heads, r["head_size"]], ("std", 0.1)))
        s += [(f"{a}.{proj}.weight", [c, c], std(c)) for proj in ("receptance", "key", "value", "output")]
        s += [(f"{a}.ln_x.weight", [c], one), (f"{a}.ln_x.bias", [c], zero)]
        f = f"{b}.ffn"
        s.append((f"{f}.x_k", vec3, ("uniform", 0.0, 1.0)))
        s.append((f"{f}.key.weight", [r["ffn"], c], std(c)))
        s.append((f"{f}.value.weight", [c, r["ffn"]], std(r["ffn"])))
    s += [("ln_out.weight", [c], one), ("ln_out.bias", [c], zero), ("head.weight", [v, c], std(c))]
    return s


def llama_init(name, shape):
    """The initialisation of a Llama parameter, as `llama_specs` in synthetic.rs."""
    if name.endswith("norm.weight"):
        return ("const", 1.0)
    if "embed_tokens" in name:
        return ("std", 0.02)
    return std(shape[1])  # every linear: [out, in]


# ------------------------------------------------------------------------- peers


def count_params(tensors):
    return int(sum(t.numel() for t in tensors))


class RwkvOfficial:
    """The official `rwkv` package's RWKV_x070 on a `.pth` state dict in BlinkDL's
    layout. Random presets are written to a temporary bf16 `.pth` (as BlinkDL ships
    checkpoints) that the package loads and converts to fp32; the file is deleted
    as soon as the model is loaded."""

    arch = "rwkv"
    # TorchScript's profiling executor records the first call of a function and
    # optimises the graph on the second: two untimed warm-ups keep that out of the
    # first timed prompt and decode step.
    warmup_runs = 2
    description = (
        "official rwkv package (PyPI rwkv, RWKV_x070 with RWKV_V7_ON=1, RWKV_JIT_ON=1, "
        "RWKV_CUDA_ON=0), strategy `cpu fp32`, TorchScript: prompt in "
        f"{RWKV_PREFILL_CHUNK}-token chunks through forward(tokens, state) (each chunk's "
        "projections one matmul, the WKV-7 recurrence a TorchScript loop over its tokens), "
        "logits of the last position only; decode one token per forward(token, state)"
    )

    def __init__(self, torch, spec, preset, seed):
        if preset is None and not spec.path.endswith(".pth"):
            raise PeerError(f"{spec.raw}: rwkv7-official loads an official RWKV-7 `.pth` file, named *.pth")
        if preset is None and not os.path.isfile(spec.path):
            raise PeerError(f"{spec.raw}: no file `{spec.path}`")
        os.environ["RWKV_V7_ON"] = "1"  # read when rwkv.model is imported
        os.environ["RWKV_JIT_ON"] = "1"
        os.environ["RWKV_CUDA_ON"] = "0"
        os.environ.pop("RWKV_DE_VERSION", None)  # DeepEmbed variant: other checkpoints
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
        from rwkv.model import RWKV  # RWKV is RWKV_x070 under RWKV_V7_ON=1

        self.torch = torch
        if preset is not None:
            specs = rwkv7_specs(preset)
            params = count_params_of_shapes(s for _, s, _ in specs)
            path = write_random_pth(torch, specs, seed)
        else:
            path = spec.path
        try:
            t = time.perf_counter()
            self.model = RWKV(model=path[: -len(".pth")], strategy=RWKV_STRATEGY)
            self.load_ms = (time.perf_counter() - t) * 1e3
        finally:
            if preset is not None:
                os.unlink(path)
        if preset is None:
            # Count the checkpoint's own tensors: the package drops layer 0's unused
            # value-residual tensors on load, our param counts include them.
            params = count_params(torch.load(path, map_location="cpu", mmap=True, weights_only=True).values())
        args = self.model.args
        self.shape = {"params": params, "layers": args.n_layer, "width": args.n_embd, "vocab": args.vocab_size}
        self.max_seq_len = None
        self.tied_embeddings = False
        self.state = None

    def reset(self):
        self.state = None  # forward() starts from the zero state

    def prefill(self, tokens):
        for i in range(0, len(tokens), RWKV_PREFILL_CHUNK):
            _, self.state = self.model.forward(tokens[i : i + RWKV_PREFILL_CHUNK], self.state)

    def step(self, token):
        _, self.state = self.model.forward(token, self.state)

    def state_bytes(self):
        return sum(t.numel() * t.element_size() for t in self.state or [])


def count_params_of_shapes(shapes):
    return int(sum(math.prod(s) for s in shapes))


def write_random_pth(torch, specs, seed):
    """A random checkpoint in the official layout, bf16, in a temporary file."""
    g = torch.Generator().manual_seed(seed)
    sd = {
        name: init_(torch.empty(shape, dtype=torch.float32), init, g).to(torch.bfloat16)
        for name, shape, init in specs
    }
    fd, path = tempfile.mkstemp(prefix="rwkv-bench-peer-", suffix=".pth")
    os.close(fd)
    try:
        torch.save(sd, path)
    except BaseException:
        os.unlink(path)
        raise
    del sd
    gc.collect()
    return path


class LlamaHf:
    """Hugging Face transformers' LlamaForCausalLM in float32 with SDPA attention."""

    arch = "transformer"
    warmup_runs = 1
    description = (
        "Hugging Face transformers LlamaForCausalLM, float32, SDPA attention "
        "(torch scaled_dot_product_attention, causal): prompt as one forward of (1, T) "
        "into a fresh DynamicCache with logits_to_keep=1 (last position only, as "
        "generate() prefills); decode one token per forward, the DynamicCache growing "
        "by torch.cat every step"
    )

    def __init__(self, torch, spec, preset, seed):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to download
        import transformers
        from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

        transformers.logging.set_verbosity_error()
        self.torch, self.DynamicCache = torch, DynamicCache
        if preset is not None:
            l = preset["llama"]
            cfg = LlamaConfig(
                vocab_size=preset["vocab"],
                hidden_size=preset["width"],
                intermediate_size=l["intermediate"],
                num_hidden_layers=preset["layers"],
                num_attention_heads=l["heads"],
                num_key_value_heads=l["kv_heads"],
                head_dim=preset["width"] // l["heads"],
                max_position_embeddings=l["max_position_embeddings"],
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                tie_word_embeddings=False,
                attention_bias=False,
                mlp_bias=False,
                bos_token_id=None,
                eos_token_id=None,
                pad_token_id=None,
                attn_implementation="sdpa",
            )
            t = time.perf_counter()
            model = LlamaForCausalLM(cfg)
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    init_(p, llama_init(name, p.shape), g)
            self.load_ms = (time.perf_counter() - t) * 1e3
        else:
            config_path = os.path.join(spec.path, "config.json")
            try:
                with open(config_path) as fh:
                    model_type = json.load(fh).get("model_type")
            except OSError as e:
                raise PeerError(f"{spec.raw}: llama-hf loads a Hugging Face directory; cannot read {config_path}: {e.strerror}")
            if model_type != "llama":
                raise PeerError(f"{spec.raw}: llama-hf runs LlamaForCausalLM; {config_path} has model_type `{model_type}`")
            t = time.perf_counter()
            model = LlamaForCausalLM.from_pretrained(spec.path, dtype=torch.float32, attn_implementation="sdpa")
            self.load_ms = (time.perf_counter() - t) * 1e3
        self.model = model.eval()
        c = model.config
        self.shape = {
            "params": count_params(model.parameters()),  # a tied head counted once
            "layers": c.num_hidden_layers,
            "width": c.hidden_size,
            "vocab": c.vocab_size,
        }
        self.max_seq_len = c.max_position_embeddings
        self.tied_embeddings = bool(c.tie_word_embeddings)
        self.cache = None

    def reset(self):
        self.cache = None  # frees the old cache before the new one fills
        self.cache = self.DynamicCache(config=self.model.config)

    def prefill(self, tokens):
        ids = self.torch.tensor([tokens], dtype=self.torch.long)
        self.model(input_ids=ids, cache=self.cache, use_cache=True, logits_to_keep=1)

    def step(self, token):
        ids = self.torch.tensor([[token]], dtype=self.torch.long)
        self.model(input_ids=ids, cache=self.cache, use_cache=True)

    def state_bytes(self):
        total = 0
        for layer in self.cache.layers if self.cache is not None else []:
            for t in (layer.keys, layer.values):
                if t is not None:
                    total += t.numel() * t.element_size()
        return total


PEERS = {"rwkv7-official": RwkvOfficial, "llama-hf": LlamaHf}
PACKAGES = {"rwkv7-official": "rwkv", "llama-hf": "transformers"}


# ------------------------------------------------------------------------ the cell


def available_threads():
    """Every CPU this process may run on (as Rust's available_parallelism)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def requested_threads():
    raw = os.environ.get(THREADS_ENV, "").strip() or "0"
    try:
        n = int(raw)
    except ValueError:
        raise PeerError(f"{THREADS_ENV}=`{raw}` is not a thread count")
    return n or available_threads()


def check_plan(job, spec):
    """Refuses what the peers do not measure, saying what they do."""
    if spec.implementation not in PEERS:
        raise PeerError(f"`{spec.implementation}` is not a peer: cell.py runs {' and '.join(PEERS)}")
    if spec.pretrained is not None:
        raise PeerError(f"{spec.raw}: the peers take `preset=NAME` or a checkpoint path, not `pretrained=`")
    unknown = [f"{k}={v}" for k, v in spec.options if k != "tokenizer"]
    if unknown:
        raise PeerError(
            f"{spec.raw}: {spec.implementation} takes no spec options (got `{','.join(unknown)}`): "
            "the peers run f32 weights on the CPU only"
        )
    if job.get("dtype", "f32") != "f32":
        raise PeerError(
            f"{spec.raw}: dtype `{job['dtype']}` is not supported: the peers run f32 only "
            "(rwkv7-official: strategy `cpu fp32`; llama-hf: float32)"
        )
    if job.get("measure", {}).get("train"):
        raise PeerError(
            f"{spec.raw}: the peers measure inference only (prefill, decode, memory), not training cells"
        )
    if spec.preset is not None:
        check_preset(spec, job.get("preset"))
    if job["seq_len"] < 1:
        raise PeerError("seq_len must be at least 1")


def check_preset(spec, preset):
    """The shapes a random preset needs (crates/models/src/presets.rs), all positive."""
    if not isinstance(preset, dict):
        raise PeerError(f"{spec.raw}: the job carries no shapes for preset `{spec.preset}` (`preset` is null)")
    keys = {
        None: ("layers", "width", "vocab"),
        "rwkv": ("head_size", "ffn", "lora_w", "lora_a", "lora_v", "lora_g"),
        "llama": ("heads", "kv_heads", "intermediate", "max_position_embeddings"),
    }
    for part, names in keys.items():
        shapes = preset.get(part) if part else preset
        for name in names:
            value = shapes.get(name) if isinstance(shapes, dict) else None
            if not isinstance(value, int) or value < 1:
                where = f"{part}.{name}" if part else name
                raise PeerError(f"{spec.raw}: the job's preset has no positive `{where}` (got {value!r})")


def model_info(spec, peer, versions, dtype, seed):
    """Our ModelInfo (crates/results/src/model_info.rs) of a built peer."""
    if spec.preset is not None:
        weights = {"kind": "random", "preset": spec.preset, "seed": seed}
    else:
        weights = {"kind": "checkpoint", "path": spec.path}
    return {
        "spec": spec.raw,
        "arch": peer.arch,
        "implementation": spec.implementation,
        "version": versions,
        "description": peer.description,
        **peer.shape,
        "dtype": dtype,
        "device": "cpu",
        "weights": weights,
        "max_seq_len": peer.max_seq_len,
        "tied_embeddings": peer.tied_embeddings,
        "weight_bytes": peer.shape["params"] * 4,  # f32, as held in memory
    }


def prefill_flops(info, t):
    """crates/results/src/roofline.rs: `prefill_flops`."""
    per_token, head = dense_flops(info)
    if info["arch"] == "transformer":
        mixing = 2.0 * info["layers"] * info["width"] * t * (t + 1.0)
    else:
        mixing = mixing_flops(info, 0.0) * t
    return per_token * t + head + mixing


def step_flops(info, depth):
    per_token, head = dense_flops(info)
    return per_token + head + mixing_flops(info, float(depth))


def dense_flops(info):
    table = float(info["vocab"] * info["width"])
    dense = max(info["params"] - (0.0 if info["tied_embeddings"] else table), 0.0)
    return max(dense - table, 0.0) * 2.0, 2.0 * table


def mixing_flops(info, p):
    if info["arch"] == "transformer":
        return 4.0 * info["layers"] * info["width"] * (p + 1.0)
    return WKV_FLOPS_PER_STATE_ELEMENT * info["layers"] * info["width"] * RWKV_HEAD_SIZE


def predict(info, probe, seq_len, sampling, decode):
    """crates/speed/src/measure/estimate.rs: `predict`."""
    tokens, prefill_s, step_s = probe
    prefill = prefill_s * prefill_flops(info, seq_len) / prefill_flops(info, max(tokens, 1))
    reps = 1
    while reps < sampling["repetitions"] and (reps + 1) * prefill <= sampling["max_seconds_per_cell"]:
        reps += 1
    steps = sampling["decode_warmup"] + sampling["decode_tokens"] if decode else 0
    step = step_s * step_flops(info, seq_len) / step_flops(info, max(tokens, 1))
    rate = tokens / prefill_s if prefill_s > 0 else float("inf")
    basis = (
        f"{reps} prompt run(s) of {seq_len} tokens at ≈ {prefill:.1f} s each, scaled by FLOPs from a "
        f"{tokens}-token probe at {rate:.0f} tokens/s; {steps} decode steps at ≈ {step * 1e3:.1f} ms"
    )
    return reps * prefill + steps * step, basis


def time_probe(peer, prompt, continuation, tokens):
    """Times a prompt of `tokens` and one decode step after it."""
    peer.reset()
    t = time.perf_counter()
    peer.prefill(prompt[:tokens])
    prefill_s = time.perf_counter() - t
    t = time.perf_counter()
    peer.step(continuation[0] if continuation else 0)
    return tokens, prefill_s, time.perf_counter() - t


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_cell(job, spec, torch, versions):
    """crates/speed/src/measure/cell.rs: `run_cell`, for a peer."""
    s = job["sampling"]
    seq_len, seed = job["seq_len"], job.get("seed", 0)
    decode = job["measure"].get("decode", False)
    threads = requested_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    preset = job["preset"] if spec.preset is not None else None
    peer = PEERS[spec.implementation](torch, spec, preset, seed)
    rss_after_load = rss_bytes()
    info = model_info(spec, peer, versions, job.get("dtype", "f32"), seed)
    extra = s["decode_warmup"] + s["decode_tokens"]
    g = torch.Generator().manual_seed(seed ^ 0x70C35EED)
    tokens = torch.randint(0, info["vocab"], (seq_len + extra,), generator=g).tolist()
    prompt, continuation = tokens[:seq_len], tokens[seq_len:]

    progress("warmup", 0, 1)
    warmup = min(max(s["warmup_tokens"], 1), seq_len)
    for _ in range(peer.warmup_runs):
        probe = time_probe(peer, prompt, continuation, warmup)
    seconds, basis = predict(info, probe, seq_len, s, decode)
    longer = warmup * REFINE_FACTOR
    if seconds > REFINE_ABOVE_S and longer < seq_len:
        probe = time_probe(peer, prompt, continuation, longer)
        seconds, basis = predict(info, probe, seq_len, s, decode)
    emit({"event": "estimate", "seconds": seconds, "basis": basis})

    # Prompt runs until `repetitions` or the time budget; the last leaves the state at
    # depth `seq_len` for the decode measurement.
    prefill_ms = []
    budget_ms = s["max_seconds_per_cell"] * 1e3
    for i in range(s["repetitions"]):
        progress("prefill", i, s["repetitions"])
        peer.reset()
        t = time.perf_counter()
        peer.prefill(prompt)
        prefill_ms.append((time.perf_counter() - t) * 1e3)
        if sum(prefill_ms) + max(prefill_ms) > budget_ms:
            break
    state_bytes = peer.state_bytes()

    decode_ms = []
    if decode:
        for i, token in enumerate(continuation):
            progress("decode", i, extra)
            t = time.perf_counter()
            peer.step(token)
            if i >= s["decode_warmup"]:
                decode_ms.append((time.perf_counter() - t) * 1e3)
    return {
        "info": info,
        "threads": threads,
        "load_ms": peer.load_ms,
        "prefill_ms": prefill_ms,
        "decode_ms": decode_ms,
        "state_bytes": int(state_bytes),
        "rss_after_load": int(rss_after_load),
        "peak_rss": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
        "train_step_ms": [],
        "train_tokens": 0,
    }


def import_packages(implementation):
    """torch and the peer's package, imported only now so that a python without them
    still answers with a `failed` event; returns torch and the version string."""
    import importlib.metadata as md

    import torch

    package = PACKAGES[implementation]
    __import__(package)
    return torch, f"{package} {md.version(package)}, torch {md.version('torch')}"


def read_job():
    try:
        job = json.loads(sys.stdin.read())
    except json.JSONDecodeError as e:
        raise PeerError(f"the job on stdin is not JSON: {e}")
    if not isinstance(job, dict):
        raise PeerError("the job on stdin is not a JSON object")
    missing = [k for k in ("model", "seq_len", "measure", "sampling") if k not in job]
    if missing:
        raise PeerError(f"the job on stdin has no {', '.join(missing)}")
    return job


def one_line(e):
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, PeerError) else f"{type(e).__name__}: {text}"


def main():
    try:
        job = read_job()
        spec = Spec(job["model"])
        check_plan(job, spec)
        # Loading starts with the imports (seconds: torch, the rwkv package's
        # TorchScript, transformers), so the parent hears of it before them.
        progress("load", 0, 1)
        torch, versions = import_packages(spec.implementation)
        with torch.inference_mode():
            outcome = run_cell(job, spec, torch, versions)
    except ModuleNotFoundError as e:
        module = (e.name or "a module").split(".")[0]
        emit({"event": "failed", "error": f"{module} is not installed for {sys.executable}: {SETUP_HINT}"})
        return 1
    except MemoryError:
        emit({"event": "failed", "error": "out of memory (MemoryError)"})
        return 1
    except PeerError as e:
        emit({"event": "failed", "error": one_line(e)})
        return 1
    except Exception as e:  # any failure is one `failed` line, never a traceback on stdout
        import traceback

        traceback.print_exc()  # the whole story on stderr
        emit({"event": "failed", "error": one_line(e)})
        return 1
    emit({"event": "done", "outcome": outcome})
    return 0


if __name__ == "__main__":
    code = main()
    EVENTS.flush()
    sys.stderr.flush()
    # The answer is out: skip the interpreter's teardown (about a second spent freeing
    # the weights and unloading torch).
    os._exit(code)
