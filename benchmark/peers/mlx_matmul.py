"""Peer for benchmark/matmul.mjs: the same n×n×n product through MLX's Python API.

Prints one JSON line: {"millis": [...]} for `iterations` timed products after
`warmup` untimed ones, each evaluated on its own, on device-resident inputs.
"""
import json
import sys
import time

import mlx.core as mx

n, dtype, warmup, iterations = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
dt = getattr(mx, dtype)
key = mx.random.key(0)
a = mx.random.normal((n, n), key=key).astype(dt)
b = mx.random.normal((n, n), key=key).astype(dt)
mx.eval(a, b)
for _ in range(warmup):
    mx.eval(a @ b)
millis = []
for _ in range(iterations):
    t = time.perf_counter()
    mx.eval(a @ b)
    millis.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"millis": millis, "mlx": mx.__version__, "device": str(mx.default_device())}))
