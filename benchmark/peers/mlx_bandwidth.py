"""Device copy bandwidth through MLX (the roofline of a decode step, which
reads every weight once): y = x * 2 over a 2 GiB float32 array reads and
writes 4 GiB. Prints one JSON line: the best and the median of 20 timed
runs, in bytes per second, after 3 untimed ones.

  python3 benchmark/peers/mlx_bandwidth.py [--gib 2] [--runs 20]
"""
import argparse
import json
import time

import mlx.core as mx

ap = argparse.ArgumentParser()
ap.add_argument("--gib", type=float, default=2.0)
ap.add_argument("--runs", type=int, default=20)
a = ap.parse_args()
n = int(a.gib * 2**30) // 4
x = mx.ones((n,), dtype=mx.float32)
mx.eval(x)
moved = 2 * n * 4
rates = []
for i in range(3 + a.runs):
    mx.synchronize()
    t = time.perf_counter()
    y = x * 2
    mx.eval(y)
    mx.synchronize()
    if i >= 3:
        rates.append(moved / (time.perf_counter() - t))
    del y
rates.sort()
print(json.dumps({"device": str(mx.default_device()), "bytes": moved, "best_bytes_per_s": rates[-1],
                  "median_bytes_per_s": rates[len(rates) // 2]}), flush=True)
