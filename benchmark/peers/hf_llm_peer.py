"""Hugging Face transformers peer for benchmark/llm.mjs (PyTorch CUDA, bf16, SDPA):
what an NVIDIA user would reach for. Same JSON-lines protocol as mlx_lm_peer.py.

Sampling maps onto `generate()`'s own options (do_sample, temperature, top_p,
top_k, min_p, repetition_penalty); EOS never ends a run (min_new_tokens).
Per-token arrival times come from a streamer's `put()` calls.
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM
from transformers.generation.streamers import BaseStreamer

from protocol import reply

model = None


class Stamps(BaseStreamer):
    def __init__(self, start):
        self.start, self.stamps, self.prompt_seen = start, [], False

    def put(self, value):
        if not self.prompt_seen:  # the first put() is the prompt itself
            self.prompt_seen = True
            return
        torch.cuda.synchronize()
        self.stamps.append((time.perf_counter() - self.start) * 1e3)

    def end(self):
        pass


for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "load":
        t = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(
            req["model"], torch_dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda")
        torch.cuda.synchronize()
        reply({"load_ms": (time.perf_counter() - t) * 1e3})
    elif req["op"] == "generate":
        s = req.get("sampling", {})
        n = req["max_tokens"]
        kwargs = dict(max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
        if s.get("temperature", 0.0) > 0:
            kwargs.update(do_sample=True, temperature=s["temperature"], top_p=s.get("topP", 1.0),
                          top_k=s.get("topK", 0), min_p=s.get("minP"))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.get("repetitionPenalty"):
            kwargs["repetition_penalty"] = s["repetitionPenalty"]
        ids = torch.tensor([req["prompt"]], device="cuda")
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        streamer = Stamps(start)
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs)
        st = streamer.stamps
        decode_tps = (len(st) - 1) / ((st[-1] - st[0]) / 1e3) if len(st) > 1 else 0.0
        reply({"ttft_ms": st[0], "prefill_tps": len(req["prompt"]) / (st[0] / 1e3),
               "decode_tps": decode_tps, "token_ms": st, "tokens": len(st),
               "peak_memory": torch.cuda.max_memory_allocated()})
    elif req["op"] == "quit":
        break
