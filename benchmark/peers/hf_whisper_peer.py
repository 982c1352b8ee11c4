"""transformers peer for benchmark/whisper.mjs (--hf-peer): the ASR pipeline on
PyTorch CUDA, float16, SDPA attention, batch 16 over 30 s chunks — what an
NVIDIA user would pick. Same JSON-lines protocol as mlx_whisper_peer.py:

  {"op": "load", "model": HF_DIR, "dtype": "float16", "device": "cuda"}   -> {"load_ms": …}
  {"op": "transcribe", "audio": WAV, "options": {…}}    -> {"text", "windows", "total_ms", …}
  {"op": "quit"}

`options`: {"batch_size": 16, "chunk_length_s": 30, "stride_length_s": null
(pipeline default: chunk/6 overlap on each side) or a number, "generate_kwargs":
{…}} — generate_kwargs go to WhisperForConditionalGeneration.generate()
unchanged (language, task, max_new_tokens, suppress_tokens, …). With
stride_length_s 0 the chunks are the same non-overlapping 30 s windows that
mlx-whisper and our addon decode.
"""
import json
import math
import sys
import time

import torch
from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

from protocol import reply, read_wav

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
pipe = None
device = "cuda"


def synchronize():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def load(req):
    global pipe, device
    device = req.get("device", "cuda")
    dtype = DTYPES[req.get("dtype", "float16")]
    t = time.perf_counter()
    model = AutoModelForSpeechSeq2Seq.from_pretrained(req["model"], dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(req["model"])
    if processor.tokenizer.pad_token_id is None:
        # The pipeline refuses to batch without a pad id (whisper-tiny.en's tokenizer
        # has none); padded positions are masked, so end-of-text is a safe choice.
        processor.tokenizer.pad_token_id = model.config.eos_token_id
    pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, device=device, dtype=dtype)
    synchronize()
    return {"load_ms": (time.perf_counter() - t) * 1e3}


def transcribe(req):
    o = dict(req.get("options", {}))
    start = time.perf_counter()
    audio = read_wav(req["audio"])
    decode_audio_ms = (time.perf_counter() - start) * 1e3
    chunk = o.get("chunk_length_s", 30)
    kwargs = dict(batch_size=o.get("batch_size", 16), chunk_length_s=chunk, ignore_warning=True,
                  return_timestamps=False, generate_kwargs=o.get("generate_kwargs", {}))
    stride = o.get("stride_length_s")
    if stride is not None:
        kwargs["stride_length_s"] = stride
    with torch.inference_mode():
        result = pipe({"raw": audio, "sampling_rate": 16000}, **kwargs)
    synchronize()
    total_ms = (time.perf_counter() - start) * 1e3
    duration = len(audio) / 16000.0
    step = chunk - 2 * (chunk / 6 if stride is None else stride)
    return {"text": result["text"], "windows": max(1, math.ceil((duration - chunk) / step) + 1) if duration > chunk else 1,
            "tokens": None, "segments": None, "total_ms": total_ms,
            "decode_audio_ms": decode_audio_ms, "duration": duration}


for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "load":
            reply(load(req))
        elif req["op"] == "transcribe":
            reply(transcribe(req))
        elif req["op"] == "quit":
            break
        else:
            reply({"error": f"unknown op {req['op']!r}"})
    except Exception as e:  # reported to the harness, which fails loudly
        reply({"error": f"{type(e).__name__}: {e}"})
