#!/usr/bin/env python3
"""Random-weight checkpoints of issue #16's model families, built in MLX with
mlx-lm's own model classes and saved the way mlx-lm saves a model.

Why not transformers (make_random_llm.py): a 30B MoE built in PyTorch and
written in bf16 does not fit the GPU machine's 64 GiB disk before it is
quantized, and MLX arrays are lazy, so here nothing is materialized until
`mx.save_safetensors` writes one ≤ 5 GB shard (a 4-bit shard's bf16 source
exists only while that shard is written). The same path runs on the CPU
(`mlx[cpu]`), so it is tested before a device call.

Layout: mlx-lm's `save_model` (sharded `model-0000N-of-0000M.safetensors` +
`model.safetensors.index.json`) and `save_config` (config.json, sorted, with
`quantization` / `quantization_config` for the 4-bit model, written by
`quantize_model` with the model's own `quant_predicate`: Qwen3-MoE's routers
at 8 bits, as `mlx_lm convert -q` does). For these two architectures mlx-lm's
parameter names are Hugging Face's (`model.layers.N.…`, experts stacked as
`mlp.switch_mlp.{gate,up,down}_proj`), so both loaders read the folders
without conversion. Plus make_random_llm.py's word-level tokenizer (vocab =
the model's) and `random_model.json` (what the folder is; gen.mjs prints its
`note`).

    python3 make_random_mlx.py --out /tmp/models gemma3-4b qwen3-30b-a3b-4bit qwen3-30b-a3b-bf16-24l
    python3 make_random_mlx.py --out /tmp/m16-tiny --tiny --dtype float32 gemma3-4b ...   # CPU check

Models (config fields as published: GEMMA3_4B, QWEN3_30B_A3B below):
  gemma3-4b               text part of google/gemma-3-4b-it (gemma3_text), bf16, ~7.8 GB
  qwen3-30b-a3b-4bit      Qwen/Qwen3-30B-A3B, all 48 layers, MLX 4-bit (group 64), ~17.2 GB
  qwen3-30b-a3b-bf16-24l  Qwen/Qwen3-30B-A3B with 24 of its 48 layers, bf16, ~31 GB (the
                          whole bf16 model, ~61 GB, does not fit the 64 GiB disk);
                          any qwen3-30b-a3b-bf16-<N>l names the first N layers' shape

A model is written to NAME.partial and renamed when complete; an existing
NAME (with its config.json) is kept. Before writing, its size (known from the
shapes) is checked against the free disk: a model that does not fit is
skipped (exit status 1), or with --fit a qwen3-30b-a3b-bf16-<N>l one is made
with as many layers as fit (≥ 8), named for them, and the output says so.
--tiny keeps each architecture (sliding/global layer mix, MoE routing, 4-bit
with 8-bit routers) at toy sizes; --layers N overrides the depth (e.g. real
widths at 2 layers). Weights ~ N(0, 0.02) (matrices; Gemma's 1 + w norms 0,
other norms 1), as make_random_llm.py, so activations stay in range.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.utils import _get_classes, quantize_model, save_config, save_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_random_llm import write_tokenizer  # noqa: E402

# google/gemma-3-4b-it's text_config gives hidden/intermediate sizes, depth,
# sliding_window 1024 and rope_scaling (linear, 8); everything else is
# transformers' Gemma3TextConfig default, written out here because mlx-lm's
# gemma3_text defaults differ (4 heads, 1 KV head, vocab 262144, window 512).
GEMMA3_4B = dict(
    architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
    hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
    num_attention_heads=8, num_key_value_heads=4, head_dim=256, vocab_size=262208,
    hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
    rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_local_base_freq=10_000.0,
    rope_scaling={"factor": 8.0, "rope_type": "linear"}, query_pre_attn_scalar=256,
    sliding_window=1024, sliding_window_pattern=6,
    final_logit_softcapping=None, attn_logit_softcapping=None, attention_bias=False,
    tie_word_embeddings=True, bos_token_id=2, eos_token_id=1, pad_token_id=0,
)
# Qwen/Qwen3-30B-A3B's config.json (the fields a loader reads).
QWEN3_30B_A3B = dict(
    architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe",
    hidden_size=2048, intermediate_size=6144, num_hidden_layers=48,
    num_attention_heads=32, num_key_value_heads=4, head_dim=128, vocab_size=151936,
    moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
    norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
    hidden_act="silu", max_position_embeddings=40960, max_window_layers=48,
    rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_scaling=None,
    sliding_window=None, use_sliding_window=False, attention_bias=False,
    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645,
)
# --tiny: same architectures, toy sizes (every quantized input a multiple of
# 64; vocab > 2000 for the benchmark's prompt ids; Gemma: 7 layers = 5 local,
# 1 global, 1 local, window 32 < the 128-token prompt).
TINY = {
    "gemma3_text": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=7,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                        query_pre_attn_scalar=32, vocab_size=4096, sliding_window=32),
    "qwen3_moe": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                      moe_intermediate_size=64, num_experts=8, num_experts_per_tok=2,
                      vocab_size=4096, bos_token_id=4094, eos_token_id=4095),
}
MODELS = {
    "gemma3-4b": dict(config=GEMMA3_4B, shape_of="google/gemma-3-4b-it (text model)"),
    "qwen3-30b-a3b-4bit": dict(config=QWEN3_30B_A3B, shape_of="Qwen/Qwen3-30B-A3B",
                               quantize=dict(bits=4, group_size=64)),
}
# qwen3-30b-a3b-bf16-<N>l: the first N layers' shape (24 by default in gen.sh).
DEPTH_CUT = re.compile(r"^qwen3-30b-a3b-bf16-(\d+)l$")
MIN_FIT_LAYERS = 8


def spec_of(name):
    if name in MODELS:
        return MODELS[name]
    m = DEPTH_CUT.match(name)
    if m and 1 <= int(m.group(1)) <= QWEN3_30B_A3B["num_hidden_layers"]:
        return dict(config=QWEN3_30B_A3B, shape_of="Qwen/Qwen3-30B-A3B", layers=int(m.group(1)))
    raise argparse.ArgumentTypeError(
        f"unknown model {name!r}: {', '.join(MODELS)} or qwen3-30b-a3b-bf16-<N>l")


STD = 0.02
# Toy widths shrink each layer's share of the residual stream (≈ std·√width),
# so that a token's own embedding decides the next one (greedy repeats one
# id): a larger spread keeps --tiny Qwen3-MoE's outputs moving (Gemma scales
# its embeddings by √width and needs none).
TINY_STD = {"gemma3_text": 0.02, "qwen3_moe": 0.08}


def model_config(spec, tiny, layers):
    config = dict(spec["config"])
    published_layers = config["num_hidden_layers"]
    if tiny:
        config.update(TINY[config["model_type"]])
    depth = layers or spec.get("layers") or config["num_hidden_layers"]
    config["num_hidden_layers"] = depth
    if config["model_type"] == "gemma3_text":
        # transformers ≥ 4.53 lists the pattern per layer; mlx-lm reads the
        # pattern, our loader prefers the list: both say every 6th is global.
        p = config["sliding_window_pattern"]
        config["layer_types"] = ["full_attention" if (i + 1) % p == 0 else "sliding_attention"
                                 for i in range(depth)]
    if "max_window_layers" in config:
        config["max_window_layers"] = depth
    return config, published_layers


def randomize(model, dtype, unit_offset_norms, std):
    """Every parameter replaced, lazily: matrices N(0, std), norms neutral."""
    fresh = []
    for path, p in tree_flatten(model.parameters()):
        if p.ndim >= 2:
            fresh.append((path, mx.random.normal(p.shape, dtype=dtype, scale=std)))
        elif unit_offset_norms:
            fresh.append((path, mx.zeros(p.shape, dtype=dtype)))
        else:
            fresh.append((path, mx.ones(p.shape, dtype=dtype)))
    model.update(tree_unflatten(fresh))


def nbytes(model):
    return sum(p.nbytes for _, p in tree_flatten(model.parameters()))


def build(spec, tiny, layers, dtype, seed):
    """The random model (lazy: shapes only, nothing computed) and its config."""
    config, published_layers = model_config(spec, tiny, layers)
    mx.random.seed(seed)
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))
    gemma = config["model_type"].startswith("gemma")
    if gemma and config["tie_word_embeddings"]:
        # mlx-lm's gemma3_text builds an lm_head and drops it at load when the
        # checkpoint has none (sanitize); a tied model saves none.
        model.tie_word_embeddings = True
        model.pop("lm_head")
    std = TINY_STD[config["model_type"]] if tiny else STD
    randomize(model, getattr(mx, dtype), unit_offset_norms=gemma, std=std)
    if "quantize" in spec:
        q = spec["quantize"]
        model, config = quantize_model(model, config, group_size=q["group_size"], bits=q["bits"])
    return model, config, published_layers, std


def make(name, out, tiny=False, layers=None, dtype="bfloat16", seed=0, fit=False,
         min_free_gb=1.0):
    """Builds and saves one model; returns its folder, or None when it does not fit.
    fit: a qwen3-30b-a3b-bf16-<N>l model that does not fit the disk is made
    with the most layers that do (≥ MIN_FIT_LAYERS), named for its depth."""
    spec = spec_of(name)
    path = os.path.join(out, name)
    if os.path.exists(os.path.join(path, "config.json")):
        print(f"{name}: exists ({path})", flush=True)
        return path
    t = time.time()
    model, config, published_layers, std = build(spec, tiny, layers, dtype, seed)
    size = nbytes(model)
    free = shutil.disk_usage(out).free - min_free_gb * 1e9
    wanted = size
    if size > free and fit and "layers" in spec and not (tiny or layers):
        per_layer = size / spec["layers"]  # an upper bound: embeddings and head counted too
        depth = int(free // per_layer)
        while depth >= MIN_FIT_LAYERS:
            model, config, published_layers, std = build(spec, tiny, depth, dtype, seed)
            size = nbytes(model)
            if size <= free:
                break
            depth -= 1
        if depth >= MIN_FIT_LAYERS:
            fitted = f"qwen3-30b-a3b-bf16-{depth}l"
            print(f"{name}: does not fit ({free / 1e9:.1f} GB free on {out}); making "
                  f"{fitted} instead: {depth} layers, {size / 1e9:.1f} GB", flush=True)
            name, path = fitted, os.path.join(out, fitted)
            if os.path.exists(os.path.join(path, "config.json")):
                print(f"{name}: exists ({path})", flush=True)
                return path
        else:
            size = wanted
    if size > free:
        print(f"{name}: SKIPPED, needs {size / 1e9:.1f} GB on {out}, "
              f"{free / 1e9 + min_free_gb:.1f} GB free (keeping {min_free_gb} GB)", flush=True)
        return None
    depth = config["num_hidden_layers"]
    if tiny:
        note = f"tiny {spec['shape_of']} architecture (toy sizes), random weights"
    elif depth != published_layers:
        note = (f"{spec['shape_of']} shape with {depth} of its {published_layers} layers, "
                f"random weights")
    else:
        note = f"{spec['shape_of']} shape, random weights"
    if "quantize" in spec:
        note += f", MLX {spec['quantize']['bits']}-bit (group {spec['quantize']['group_size']})"
    else:
        note += f", {dtype}"
    print(f"{name}: {note}; writing {size / 1e9:.2f} GB to {path}", flush=True)
    tmp = path + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, donate_model=True)
    del model
    write_tokenizer(tmp, config["vocab_size"], config["eos_token_id"])
    with open(os.path.join(tmp, "random_model.json"), "w") as f:
        json.dump({"generator": "benchmark/models/make_random_mlx.py", "name": name,
                   "shape_of": spec["shape_of"], "layers": depth,
                   "published_layers": published_layers, "tiny": tiny, "dtype": dtype,
                   "quantization": spec.get("quantize"), "init_std": std, "seed": seed,
                   "note": note}, f, indent=1)
    save_config(config, os.path.join(tmp, "config.json"))
    shutil.rmtree(path, ignore_errors=True)  # a folder without config.json: not ours to keep
    os.replace(tmp, path)
    mx.clear_cache()
    print(f"{name}: done in {time.time() - t:.1f} s, peak MLX memory "
          f"{mx.get_peak_memory() / 1e9:.1f} GB", flush=True)
    mx.reset_peak_memory()
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", action="store_true", help="toy sizes of the same architectures")
    ap.add_argument("--layers", type=int, help="depth override")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit", action="store_true",
                    help="a qwen3-30b-a3b-bf16-<N>l model too large for the disk gets the most "
                         f"layers that fit (≥ {MIN_FIT_LAYERS}), named for them")
    ap.add_argument("names", nargs="+", metavar="NAME",
                    help=f"{', '.join(MODELS)}, qwen3-30b-a3b-bf16-<N>l")
    a = ap.parse_args()
    for n in a.names:
        try:
            spec_of(n)
        except argparse.ArgumentTypeError as e:
            ap.error(str(e))
    os.makedirs(a.out, exist_ok=True)
    for stale in os.listdir(a.out):  # an interrupted run's folder
        if stale.endswith(".partial"):
            shutil.rmtree(os.path.join(a.out, stale))
    print(f"make_random_mlx: mlx {mx.__version__} on {mx.default_device()}, "
          f"{shutil.disk_usage(a.out).free / 1e9:.1f} GB free on {a.out}", flush=True)
    missing = [n for n in a.names
               if make(n, a.out, tiny=a.tiny, layers=a.layers, dtype=a.dtype, seed=a.seed,
                       fit=a.fit) is None]
    if missing:
        sys.exit(f"make_random_mlx: not made (disk): {' '.join(missing)}")


if __name__ == "__main__":
    main()
