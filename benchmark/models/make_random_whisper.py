#!/usr/bin/env python3
"""Random-weight Whisper checkpoints with the real shapes of public models, in
both layouts the Whisper benchmark needs.

The GPU machine cannot download weights, so each model is built from its
published configuration with transformers (random init on the GPU, float16),
saved in Hugging Face layout (what our addon loads), and converted to
mlx-whisper's layout (what the peer loads):

    <out>/<name>/       config.json, generation_config.json, model.safetensors,
                        tokenizer.json, tokenizer_config.json, preprocessor_config.json
    <out>/<name>-mlx/   config.json (openai-whisper ModelDimensions), weights.safetensors

The tokenizer is Whisper's multilingual special-token layout on top of GPT-2's
byte-level BPE (taken from an English Whisper tokenizer.json): ids below
<|endoftext|> are text, then <|startoftranscript|>, one token per language,
<|translate|>, <|transcribe|>, <|startoflm|>, <|startofprev|>, <|nospeech|>,
<|notimestamps|> and the 1501 timestamps, so that the vocabulary is exactly
the model's (51865 with 99 languages, 51866 with 100). Our core looks these
ids up by name; mlx-whisper uses its own tiktoken files with the same ids.
Random weights produce meaningless text: the benchmark only needs the shapes.

    python3 make_random_whisper.py random --out /tmp/models --tokenizer-from \
        ../shared/models/whisper-tiny.en/tokenizer.json whisper-large-v3-turbo whisper-small
    python3 make_random_whisper.py convert ../shared/models/whisper-tiny.en /tmp/models/whisper-tiny.en-mlx

`convert` needs numpy + safetensors only; `random` also torch + transformers.
"""

import argparse
import json
import os
import sys
import time

# Field values as published in each model's config.json (openai/whisper-*).
CONFIGS = {
    "whisper-large-v3-turbo": dict(
        d_model=1280, encoder_layers=32, decoder_layers=4, encoder_attention_heads=20,
        decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
        num_mel_bins=128, vocab_size=51866, max_source_positions=1500,
        max_target_positions=448,
    ),
    "whisper-small": dict(
        d_model=768, encoder_layers=12, decoder_layers=12, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
        num_mel_bins=80, vocab_size=51865, max_source_positions=1500,
        max_target_positions=448,
    ),
}

# Whisper's language codes in token order; large-v3 added "yue" as the 100th.
LANGUAGE_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su yue"
).split()

# openai-whisper's rule (mlx-whisper's Whisper.num_languages, our config.rs).
def num_languages(vocab_size):
    return vocab_size - 51765 - 1


def special_token_ids(vocab_size):
    """Name → id of every special token of a multilingual vocabulary."""
    ids = {}
    next_id = 50257
    names = ["<|endoftext|>", "<|startoftranscript|>"]
    names += [f"<|{c}|>" for c in LANGUAGE_CODES[: num_languages(vocab_size)]]
    names += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
              "<|nospeech|>", "<|notimestamps|>"]
    names += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for name in names:
        ids[name] = next_id
        next_id += 1
    if next_id != vocab_size:
        raise SystemExit(f"special tokens end at {next_id}, expected vocab_size {vocab_size}")
    return ids


def multilingual_tokenizer(english_tokenizer_json, vocab_size):
    """A tokenizer.json for a multilingual Whisper vocabulary of `vocab_size` ids.

    GPT-2's vocabulary has 50256 text tokens with <|endoftext|> at 50256; the
    multilingual one has 50257 text tokens. Id 50256 becomes one extra (never
    merged, so never produced by encoding) text token; decoding handles it."""
    with open(english_tokenizer_json) as f:
        english = json.load(f)
    if english["model"]["type"] != "BPE":
        raise SystemExit(f"{english_tokenizer_json}: expected a BPE tokenizer")
    vocab = {tok: i for tok, i in english["model"]["vocab"].items() if i < 50256}
    if len(vocab) != 50256:
        raise SystemExit(f"{english_tokenizer_json}: expected 50256 text tokens, got {len(vocab)}")
    vocab["wbenchfiller"] = 50256
    added = [
        {"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for name, i in special_token_ids(vocab_size).items()
    ]
    english["model"]["vocab"] = vocab
    english["added_tokens"] = added
    english["post_processor"] = None  # its template names English-only ids
    return english


def generation_config(ids):
    """generation_config.json as openai/whisper-* ship it: transformers'
    Whisper generate() needs the language/task tables to accept `language=`."""
    eot = ids["<|endoftext|>"]
    return {
        "decoder_start_token_id": ids["<|startoftranscript|>"], "bos_token_id": eot,
        "eos_token_id": eot, "pad_token_id": eot, "max_length": 448,
        "begin_suppress_tokens": [220, eot], "forced_decoder_ids": None,
        "is_multilingual": True,
        "lang_to_id": {name: i for name, i in ids.items()
                       if name.strip("<|>") in LANGUAGE_CODES},
        "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "prev_sot_token_id": ids["<|startofprev|>"],
        "max_initial_timestamp_index": 50,
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


# --- Hugging Face → mlx-whisper layout ------------------------------------------

HF_TO_MLX_PARTS = [
    ("model.encoder.layers.", "encoder.blocks."),
    ("model.decoder.layers.", "decoder.blocks."),
    ("model.encoder.layer_norm.", "encoder.ln_post."),
    ("model.decoder.layer_norm.", "decoder.ln."),
    ("model.encoder.conv", "encoder.conv"),
    ("model.decoder.embed_tokens.weight", "decoder.token_embedding.weight"),
    ("model.decoder.embed_positions.weight", "decoder.positional_embedding"),
    (".self_attn_layer_norm.", ".attn_ln."),
    (".encoder_attn_layer_norm.", ".cross_attn_ln."),
    (".final_layer_norm.", ".mlp_ln."),
    (".self_attn.", ".attn."),
    (".encoder_attn.", ".cross_attn."),
    (".q_proj.", ".query."),
    (".k_proj.", ".key."),
    (".v_proj.", ".value."),
    (".out_proj.", ".out."),
    (".fc1.", ".mlp1."),
    (".fc2.", ".mlp2."),
]


def mlx_name(hf_name):
    """mlx-whisper's name of a Hugging Face tensor, or None when mlx-whisper has
    no such parameter (sinusoidal encoder positions; the LM head is tied)."""
    if hf_name in ("model.encoder.embed_positions.weight", "proj_out.weight"):
        return None
    name = hf_name
    for old, new in HF_TO_MLX_PARTS:
        name = name.replace(old, new)
    if name.startswith("model."):
        raise SystemExit(f"no mlx-whisper name for {hf_name}")
    return name


def hf_config_dims(config):
    """openai-whisper ModelDimensions from a Hugging Face WhisperConfig dict."""
    if config.get("encoder_ffn_dim", 4 * config["d_model"]) != 4 * config["d_model"]:
        raise SystemExit("mlx-whisper needs MLP width 4 × d_model")
    return dict(
        n_mels=config["num_mel_bins"], n_audio_ctx=config["max_source_positions"],
        n_audio_state=config["d_model"], n_audio_head=config["encoder_attention_heads"],
        n_audio_layer=config["encoder_layers"], n_vocab=config["vocab_size"],
        n_text_ctx=config["max_target_positions"], n_text_state=config["d_model"],
        n_text_head=config["decoder_attention_heads"], n_text_layer=config["decoder_layers"],
    )


def convert_to_mlx(hf_dir, mlx_dir, dtype=None):
    """Writes `hf_dir`'s weights in mlx-whisper's layout: same values (cast to
    `dtype` if given, e.g. float32 for a CPU run), conv weights transposed."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    with open(os.path.join(hf_dir, "config.json")) as f:
        config = json.load(f)
    files = sorted(n for n in os.listdir(hf_dir) if n.endswith(".safetensors"))
    if not files:
        raise SystemExit(f"{hf_dir}: no .safetensors files")
    weights = {}
    for name in files:
        for key, value in load_file(os.path.join(hf_dir, name)).items():
            new = mlx_name(key)
            if new is None:
                continue
            if key.startswith("model.encoder.conv") and key.endswith(".weight"):
                # PyTorch Conv1d [out, in, kernel] → MLX Conv1d [out, kernel, in].
                value = np.ascontiguousarray(value.transpose(0, 2, 1))
            weights[new] = value.astype(dtype) if dtype else value
    os.makedirs(mlx_dir, exist_ok=True)
    save_file(weights, os.path.join(mlx_dir, "weights.safetensors"))
    write_json(os.path.join(mlx_dir, "config.json"), {"model_type": "whisper", **hf_config_dims(config)})
    print(f"{hf_dir} -> {mlx_dir} ({len(weights)} tensors)", flush=True)


# --- random checkpoints ----------------------------------------------------------

def make_random(name, out, tokenizer_from, device="cuda"):
    import torch
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    path = os.path.join(out, name)
    if os.path.exists(os.path.join(path, "model.safetensors")):
        print(f"{name}: exists", flush=True)
        return path
    t = time.time()
    fields = CONFIGS[name]
    vocab = fields["vocab_size"]
    ids = special_token_ids(vocab)
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        **fields, activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[220, eot], suppress_tokens=None,
    )
    with torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype=torch.float16).eval()
    # Small weights keep activations in a realistic range through 32 layers;
    # the encoder's sinusoidal positions stay as built (mlx-whisper computes them).
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2 and "encoder.embed_positions" not in pname:
                p.normal_(0.0, 0.02)
    # Saved like scripts/fixtures/make_whisper_fixtures.py (proven on the GPU
    # machine's transformers): float16 state dict without the tied LM head.
    os.makedirs(path, exist_ok=True)
    state = {k: v.detach().half().contiguous().cpu() for k, v in model.state_dict().items()
             if k != "proj_out.weight"}
    config.save_pretrained(path)
    write_json(os.path.join(path, "generation_config.json"), generation_config(ids))
    write_json(os.path.join(path, "tokenizer.json"), multilingual_tokenizer(tokenizer_from, vocab))
    write_json(os.path.join(path, "tokenizer_config.json"), {
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "errors": "replace",
        # As in openai/whisper-*: every special token but the timestamps.
        "additional_special_tokens": [n for n in ids if not n[2].isdigit()],
    })
    WhisperFeatureExtractor(feature_size=fields["num_mel_bins"]).save_pretrained(path)
    # Last: its presence marks a complete folder (see the check above).
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n/1e6:.0f} M parameters in {time.time()-t:.1f} s -> {path}", flush=True)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random", help="random-weight checkpoints (HF + MLX layout)")
    r.add_argument("--out", required=True)
    r.add_argument("--tokenizer-from", required=True,
                   help="an English Whisper tokenizer.json (GPT-2 BPE), e.g. whisper-tiny.en's")
    r.add_argument("--device", default="cuda", help="where transformers builds the model (cuda, cpu)")
    r.add_argument("names", nargs="+", choices=sorted(CONFIGS))
    c = sub.add_parser("convert", help="Hugging Face layout -> mlx-whisper layout")
    c.add_argument("hf_dir")
    c.add_argument("mlx_dir")
    c.add_argument("--dtype", choices=["float16", "float32"],
                   help="cast the weights (default: keep the checkpoint's)")
    t = sub.add_parser("tokenizer", help="write only the multilingual tokenizer.json")
    t.add_argument("--tokenizer-from", required=True)
    t.add_argument("--vocab-size", type=int, required=True, choices=[51865, 51866])
    t.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "random":
        for name in args.names:
            path = make_random(name, args.out, args.tokenizer_from, args.device)
            if not os.path.exists(os.path.join(path + "-mlx", "weights.safetensors")):
                convert_to_mlx(path, path + "-mlx")
    elif args.cmd == "convert":
        convert_to_mlx(args.hf_dir, args.mlx_dir, args.dtype)
    else:
        write_json(args.out, multilingual_tokenizer(args.tokenizer_from, args.vocab_size))


if __name__ == "__main__":
    sys.exit(main())
