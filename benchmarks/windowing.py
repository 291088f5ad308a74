"""Windowing throughput: tsatlas's cut + scale against a plain numpy copy of the same bytes.

    python benchmarks/windowing.py [--rows 2000000] [--channels 4] [--length 64] [--stride 4] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

from benchmarks.common import timed  # noqa: E402
from tsatlas.windowing import make_windows  # noqa: E402
from tsatlas.config import WindowsConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--series", type=int, default=20)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--stride", type=int, default=4)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    values = rng.standard_normal((a.rows, a.channels))
    bounds = np.linspace(0, a.rows, a.series + 1).astype(np.int64)
    ids = np.array([f"s{i}" for i in range(a.series)])
    rows = []
    for scale in ("none", "global", "series", "window"):
        cfg = WindowsConfig(length=a.length, stride=a.stride, scale=scale)
        w, _ = make_windows(values, bounds, ids, cfg)
        nbytes = w.X.nbytes
        src = np.ones_like(w.X)
        t_ours = timed(lambda: make_windows(values, bounds, ids, cfg), a.runs)
        t_copy = timed(lambda: src.copy(), a.runs)
        rows.append((scale, w.X.shape, nbytes, t_ours, t_copy))
        print(f"scale={scale}: {w.X.shape} {nbytes / 1e6:.0f} MB  tsatlas {t_ours * 1e3:.1f} ms  "
              f"copy {t_copy * 1e3:.1f} ms  ratio {t_copy / t_ours:.2f}", flush=True)
    md = ["| scale | windows (n, T, C) | output MB | tsatlas ms | numpy copy ms | GB/s tsatlas | GB/s copy | speed vs copy |",
          "|---|---|---|---|---|---|---|---|"]
    for scale, shape, nb, to, tc in rows:
        md.append(f"| {scale} | {shape} | {nb / 1e6:.0f} | {to * 1e3:.1f} | {tc * 1e3:.1f} | {nb / to / 1e9:.2f} | "
                  f"{nb / tc / 1e9:.2f} | {tc / to:.2f}x |")
    body = "\n".join(md) + (f"\n\n{a.rows:,} rows x {a.channels} channels in {a.series} series, windows of {a.length} "
                            f"every {a.stride} steps, float32 out; median of {a.runs} runs after a warm-up. "
                            "tsatlas = `make_windows` (gather + scaling, float64 rows in, a new float32 array out); "
                            "copy = `ndarray.copy()` of an array of the output's size (also a new array).")
    print(body)
    if not a.no_write:
        from benchmarks.common import write_results
        write_results("Windowing throughput (benchmarks/windowing.py)", body)


if __name__ == "__main__":
    main()
