"""The mlx-lm side of benchmark/gen.mjs: alone in this process, one
measurement, one JSON line on stdout. Same arguments and output as
../gen_side.mjs (see there for what each mode measures).

  python3 benchmark/peers/mlx_lm_side.py --mode decode --model DIR [--prompt 128] [--tokens 256]
  python3 benchmark/peers/mlx_lm_side.py --mode streams --model DIR [--streams 1,4,16,64] ...
  python3 benchmark/peers/mlx_lm_side.py --mode first-token --model DIR --t0 EPOCH_MS

decode uses stream_generate with mlx-lm's own sampler and logits processors
(make_sampler / make_logits_processors); streams uses mlx-lm's continuous
batching (BatchGenerator, completion_batch_size = C, its default prefill
batch of 8), the engine behind its batch_generate and its server.
"""
import argparse
import json
import os
import time

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.generate import BatchGenerator
from mlx_lm.sample_utils import make_logits_processors, make_sampler

import mlx_lm_compat

mlx_lm_compat.patch()  # quantized MoE experts on MLX 0.32.2 (see mlx_lm_compat.py)

SAMPLING = {
    "greedy": {},
    "all filters": {"temperature": 0.7, "topP": 0.9, "topK": 50, "minP": 0.05, "repetitionPenalty": 1.1},
}


def prompt_ids(n, vocab, salt=0):
    """Same ids as gen_side.mjs's promptIds."""
    x = 12345 + salt * 7919
    out = []
    for _ in range(n):
        x = (x * 48271) % 2147483647
        out.append(1000 + (x % (vocab - 2000)))
    return out


def sampler_of(s):
    sampler = make_sampler(temp=s.get("temperature", 0.0), top_p=s.get("topP", 0.0),
                           min_p=s.get("minP", 0.0), top_k=s.get("topK", 0))
    processors = make_logits_processors(repetition_penalty=s.get("repetitionPenalty"),
                                        repetition_context_size=s.get("repetitionContextSize", 20))
    return sampler, processors


def stamped(model, tokenizer, prompt, max_tokens, sampling):
    sampler, processors = sampler_of(sampling)
    stamps = []
    start = time.perf_counter()
    for _ in stream_generate(model, tokenizer, mx.array(prompt, dtype=mx.uint32), max_tokens=max_tokens,
                             sampler=sampler, logits_processors=processors):
        stamps.append(time.perf_counter() - start)
    return stamps


def decode_rate(stamps):
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def vocab_size(model_dir):
    """config.json's vocab_size (both sides draw prompt ids below it)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)["vocab_size"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--streams", default="1,4,16,64")
    ap.add_argument("--stream-prompt", type=int, default=64)
    ap.add_argument("--stream-tokens", type=int, default=128)
    ap.add_argument("--t0", type=float)
    a = ap.parse_args()
    out = {"side": "mlx-lm", "mode": a.mode}
    model, tokenizer = load(a.model)
    # EOS never stops a benchmark run (random weights would hit it at random).
    tokenizer.eos_token_ids = []
    vocab = vocab_size(a.model)
    if a.mode == "first-token":
        prompt = prompt_ids(a.prompt, vocab)
        stamped(model, tokenizer, prompt, 1, {})
        out["first_token_ms"] = time.time() * 1e3 - a.t0
    elif a.mode == "decode":
        prompt = prompt_ids(a.prompt, vocab)
        for s in SAMPLING.values():
            stamped(model, tokenizer, prompt, 16, s)
        out["decode_tps"] = {}
        for name, s in SAMPLING.items():
            mx.random.seed(1)
            out["decode_tps"][name] = decode_rate(stamped(model, tokenizer, prompt, a.tokens, s))
        out["peak_memory"] = mx.get_peak_memory()
    elif a.mode == "streams":
        counts = [int(c) for c in a.streams.split(",")]

        def run(c, max_tokens):
            gen = BatchGenerator(model, max_tokens=max_tokens, completion_batch_size=c)
            prompts = [prompt_ids(a.stream_prompt, vocab, i + 1) for i in range(c)]
            start = time.perf_counter()
            gen.insert(prompts, [max_tokens] * c)
            first, last, produced = {}, {}, 0
            while responses := gen.next_generated():
                now = time.perf_counter() - start
                for r in responses:
                    first.setdefault(r.uid, now)
                    last[r.uid] = now
                    produced += 1
            wall = time.perf_counter() - start
            gen.close()
            rates = sorted((max_tokens - 1) / (last[u] - first[u]) for u in first if last[u] > first[u])
            return wall, produced, rates, max(first.values()) * 1e3

        out["aggregate_tps"] = {}
        out["per_stream_decode_tps"] = {}
        out["last_first_token_ms"] = {}
        for c in counts:
            run(c, 8)  # warm-up at this batch size
            wall, produced, rates, last_first = run(c, a.stream_tokens)
            out["last_first_token_ms"][str(c)] = last_first
            out["aggregate_tps"][str(c)] = produced / wall
            out["per_stream_decode_tps"][str(c)] = rates[len(rates) // 2] if rates else 0.0
        out["peak_memory"] = mx.get_peak_memory()
    else:
        raise SystemExit("--mode decode | streams | first-token")
    out.update({"device": str(mx.default_device()), "mlx": mx.__version__})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
