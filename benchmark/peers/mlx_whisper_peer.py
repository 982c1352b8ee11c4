"""mlx-whisper peer for benchmark/whisper.mjs: a JSON-lines server on stdin/stdout.

Requests (one JSON object per line):
  {"op": "load", "model": DIR, "dtype": "float16"}   -> {"load_ms": …}
      DIR in mlx-whisper's layout (config.json + weights.safetensors/npz).
  {"op": "transcribe", "audio": WAV, "options": {…}, "stages": false}
      -> {"text", "language", "segments", "windows", "tokens", "total_ms",
          "decode_audio_ms", and with "stages": true also "mel_ms", "encode_ms"}
  {"op": "quit"}

`options` are mlx_whisper.transcribe()'s own keyword arguments and decode
options, passed through unchanged (language, task, temperature,
condition_on_previous_text, without_timestamps, sample_len, suppress_tokens,
compression_ratio_threshold, logprob_threshold, no_speech_threshold, …).
mlx-whisper has no batching: its sequential seek loop is its best setting.

The WAV is read here (16-bit PCM, any rate is refused but 16 kHz mono) rather
than by mlx-whisper, whose file path goes through an ffmpeg subprocess that the
GPU machine does not have; the read is timed and counted in total_ms, as our
addon's WAV decoding is counted in its total.

"stages" times the mel spectrogram and every encoder pass by forcing their
evaluation (mx.eval) as they are produced; that adds sync points, so the
benchmark uses it for a separate, untimed breakdown run only.
"""
import importlib
import json
import sys
import time

import mlx.core as mx
from mlx_whisper.load_models import load_model
from mlx_whisper.transcribe import ModelHolder, transcribe

from protocol import reply, read_wav

# The modules themselves (the package's `transcribe` attribute is the function).
transcribe_module = importlib.import_module("mlx_whisper.transcribe")
whisper_module = importlib.import_module("mlx_whisper.whisper")

DTYPES = {"float16": mx.float16, "float32": mx.float32, "bfloat16": mx.bfloat16}

model_path = None
model_dtype = mx.float16


class StageTimer:
    """Wraps log_mel_spectrogram and AudioEncoder.__call__ so that each call is
    evaluated on the spot and its wall time recorded."""

    def __init__(self):
        self.mel_ms = 0.0
        self.encode_ms = 0.0
        self.encoder_calls = 0

    def __enter__(self):
        self.log_mel = transcribe_module.log_mel_spectrogram
        self.encoder_call = whisper_module.AudioEncoder.__call__
        timer = self

        def timed_log_mel(*args, **kwargs):
            t = time.perf_counter()
            mel = timer.log_mel(*args, **kwargs)
            mx.eval(mel)
            timer.mel_ms += (time.perf_counter() - t) * 1e3
            return mel

        def timed_encoder(encoder, x):
            t = time.perf_counter()
            mx.eval(x)  # the mel window's slice/pad/cast is not encoder time
            t = time.perf_counter()
            out = timer.encoder_call(encoder, x)
            mx.eval(out)
            timer.encode_ms += (time.perf_counter() - t) * 1e3
            timer.encoder_calls += 1
            return out

        transcribe_module.log_mel_spectrogram = timed_log_mel
        whisper_module.AudioEncoder.__call__ = timed_encoder
        return self

    def __exit__(self, *exc):
        transcribe_module.log_mel_spectrogram = self.log_mel
        whisper_module.AudioEncoder.__call__ = self.encoder_call
        return False


def run_transcribe(req):
    options = dict(req.get("options", {}))
    options.setdefault("verbose", None)
    # transcribe() casts mels to float16 unless told the model is not float16.
    options.setdefault("fp16", model_dtype == mx.float16)
    start = time.perf_counter()
    audio = read_wav(req["audio"])
    decode_audio_ms = (time.perf_counter() - start) * 1e3
    timer = StageTimer() if req.get("stages") else None
    if timer:
        with timer:
            result = transcribe(audio, path_or_hf_repo=model_path, **options)
    else:
        result = transcribe(audio, path_or_hf_repo=model_path, **options)
    total_ms = (time.perf_counter() - start) * 1e3
    segments = result["segments"]
    out = {
        "text": result["text"],
        "language": result.get("language"),
        "segments": len(segments),
        "windows": len({s["seek"] for s in segments}),
        "tokens": sum(len(s["tokens"]) for s in segments),
        "total_ms": total_ms,
        "decode_audio_ms": decode_audio_ms,
        "duration": len(audio) / 16000.0,
    }
    if timer:
        out.update(mel_ms=timer.mel_ms, encode_ms=timer.encode_ms, encoder_calls=timer.encoder_calls)
    return out


for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "load":
            dtype = DTYPES[req.get("dtype", "float16")]
            t = time.perf_counter()
            model = load_model(req["model"], dtype=dtype)
            mx.eval(model.parameters())
            load_ms = (time.perf_counter() - t) * 1e3
            # transcribe() looks its model up in this cache by path.
            ModelHolder.model, ModelHolder.model_path = model, req["model"]
            model_path, model_dtype = req["model"], dtype
            reply({"load_ms": load_ms})
        elif req["op"] == "transcribe":
            reply(run_transcribe(req))
        elif req["op"] == "quit":
            break
        else:
            reply({"error": f"unknown op {req['op']!r}"})
    except Exception as e:  # reported to the harness, which fails loudly
        reply({"error": f"{type(e).__name__}: {e}"})
