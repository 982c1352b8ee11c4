#!/usr/bin/env python3
"""Random-weight LLM checkpoints with the real configurations of public models.

Benchmarks only need the shapes: the GPU machine cannot download weights, so we
build each model from its published config with transformers (random init on
the GPU), save it in Hugging Face layout (bf16 safetensors), and add a
word-level tokenizer whose vocabulary matches the model's, so that both our
loader and mlx-lm accept the folder. Prompts are token ids; text is irrelevant.

    python3 make_random_llm.py --out /tmp/models qwen2.5-0.5b llama-3.2-1b llama-3.1-8b
    python3 make_random_llm.py --out /tmp/models --quantize 4 llama-3.1-8b   # + <name>-4bit (mlx-lm convert)
"""

import argparse
import json
import os
import subprocess
import sys
import time

# Field values as published in each model's config.json.
CONFIGS = {
    "qwen2.5-0.5b": dict(
        model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
    ),
    "llama-3.2-1b": dict(
        model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
        tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
    ),
    "llama-3.1-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
        max_position_embeddings=131072, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
        tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001,
    ),
}


def word_level_tokenizer(vocab_size, eos_id):
    """A tokenizer.json with one token per id ("t0", "t1", …): enough for both
    loaders; the benchmark feeds token ids directly."""
    vocab = {f"t{i}": i for i in range(vocab_size)}
    eos = f"t{eos_id}"
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eos_id, "content": eos, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"},
    }


def write_tokenizer(path, vocab_size, eos_id):
    """tokenizer.json + tokenizer_config.json of `word_level_tokenizer` into `path`
    (also used by make_random_mlx.py)."""
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        json.dump(word_level_tokenizer(vocab_size, eos_id), f)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": f"t{eos_id}",
                   "unk_token": "t0", "model_max_length": 131072}, f)


def make(name, out):
    # Imported here so that make_random_mlx.py can use this module's tokenizer
    # helpers without PyTorch.
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = os.path.join(out, name)
    if os.path.exists(os.path.join(path, "config.json")):
        print(f"{name}: exists", flush=True)
        return path
    t = time.time()
    fields = dict(CONFIGS[name])
    model_type = fields.pop("model_type")
    config = AutoConfig.for_model(model_type, **fields)
    config.torch_dtype = torch.bfloat16
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    # Small weights keep activations in a realistic range over many layers.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")
    write_tokenizer(path, fields["vocab_size"], fields["eos_token_id"])
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n/1e9:.2f} B parameters in {time.time()-t:.1f} s -> {path}", flush=True)
    del model
    torch.cuda.empty_cache()
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quantize", type=int, choices=[4, 8])
    ap.add_argument("names", nargs="+", choices=sorted(CONFIGS))
    args = ap.parse_args()
    for name in args.names:
        path = make(name, args.out)
        if args.quantize:
            qpath = f"{path}-{args.quantize}bit"
            if not os.path.exists(qpath):
                subprocess.run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", path,
                                "--mlx-path", qpath, "-q", "--q-bits", str(args.quantize),
                                "--q-group-size", "64"], check=True)
                print(f"{name}: quantized to {args.quantize} bit -> {qpath}", flush=True)


if __name__ == "__main__":
    main()
