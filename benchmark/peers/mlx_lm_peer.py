"""mlx-lm peer for benchmark/llm.mjs: a JSON-lines server on stdin/stdout.

Requests (one JSON object per line):
  {"op": "load", "model": DIR}                      -> {"load_ms": …}
  {"op": "generate", "prompt": [ids], "max_tokens": N, "sampling": {…}}
      -> {"ttft_ms", "prefill_tps", "decode_tps", "token_ms": [per-token arrival ms],
          "tokens": N, "peak_memory": bytes}
The sampler and logits processors are mlx-lm's own (make_sampler /
make_logits_processors), configured like ours; generation ignores EOS by
suppressing nothing and simply running max_tokens steps.
"""
import json
import sys
import time

import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_logits_processors, make_sampler

import mlx_lm_compat
from protocol import reply

mlx_lm_compat.patch()  # quantized MoE experts on MLX 0.32.2 (see mlx_lm_compat.py)

model = tokenizer = None


for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "load":
        t = time.perf_counter()
        model, tokenizer = load(req["model"])
        mx.eval(model.parameters())
        reply({"load_ms": (time.perf_counter() - t) * 1e3})
    elif req["op"] == "generate":
        s = req.get("sampling", {})
        sampler = make_sampler(temp=s.get("temperature", 0.0), top_p=s.get("topP", 0.0),
                               min_p=s.get("minP", 0.0), top_k=s.get("topK", 0))
        processors = make_logits_processors(
            repetition_penalty=s.get("repetitionPenalty"),
            repetition_context_size=s.get("repetitionContextSize", 20))
        # EOS never stops a benchmark run: mlx-lm stops on the tokenizer's EOS ids,
        # so clear them (random weights would hit them at random).
        tokenizer.eos_token_ids = []
        prompt = mx.array(req["prompt"], dtype=mx.uint32)
        mx.reset_peak_memory()
        start = time.perf_counter()
        stamps = []
        last = None
        for r in stream_generate(model, tokenizer, prompt, max_tokens=req["max_tokens"],
                                 sampler=sampler, logits_processors=processors):
            stamps.append((time.perf_counter() - start) * 1e3)
            last = r
        n = len(stamps)
        decode_tps = (n - 1) / ((stamps[-1] - stamps[0]) / 1e3) if n > 1 else 0.0
        reply({"ttft_ms": stamps[0], "prefill_tps": last.prompt_tps, "decode_tps": decode_tps,
               "mlx_lm_generation_tps": last.generation_tps, "token_ms": stamps, "tokens": n,
               "peak_memory": mx.get_peak_memory()})
    elif req["op"] == "quit":
        break
