"""Could the post-hoc classifier learn in fewer iterations? Its discriminative score, cost and
iterations under a few (Adam step size, minimum iterations before early stopping) settings, on
the real and latent windows a default `tsatlas run` evaluates on each set (captured as its
evaluation sees them, patched where windows are long), and over-smoothed sines; mean of 4
classifier seeds, real-vs-real floor over 2. One torch thread; rows appended to --out.

    python benchmarks/posthoc_budget.py [--cases sines bundled ...] [--out benchmarks/results/posthoc_budget.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tsatlas.metrics as metrics  # noqa: E402
from benchmarks.eval_share import CASES, args_for  # noqa: E402
from benchmarks.posthoc_metrics import captured, sines  # noqa: E402

VARIANTS = [("1e-2/300", 1e-2, 300), ("1e-2/150", 1e-2, 150), ("2e-2/150", 2e-2, 150), ("3e-2/100", 3e-2, 100)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["sines", *CASES], choices=["sines", *CASES])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "posthoc_budget.jsonl"))
    args = ap.parse_args()
    shipped, train = (metrics.POSTHOC_LR, metrics.MIN_ITERATIONS), metrics._train
    for case in args.cases:
        if case == "sines":  # with their noise against without it
            noisy, clean = sines()
            real, other = noisy[:500], clean[500:]
        else:
            with tempfile.TemporaryDirectory() as tmp:
                real, other = captured(["run", *args_for(case, tmp)])
        torch.set_num_threads(1)
        halves = np.random.default_rng(0).permutation(len(real))
        h = len(real) // 2
        for name, lr, min_iterations in VARIANTS:
            metrics.POSTHOC_LR, metrics.MIN_ITERATIONS = lr, min_iterations
            ran: list[int] = []
            metrics._train = lambda *a: ran.append(train(*a)) or ran[-1]  # noqa: E731
            t0 = time.perf_counter()
            s = [metrics.discriminative_score(real, other, iterations=500, seed=k) for k in range(4)]
            per_fit = (time.perf_counter() - t0) / 4
            floor = [metrics.discriminative_score(real[halves[:h]], real[halves[h:]], iterations=500, seed=k)
                     for k in range(2)]
            row = {"case": case, "variant": name, "score": round(float(np.mean(s)), 3), "sd": round(float(np.std(s)), 3),
                   "floor": round(float(np.mean(floor)), 3), "s_per_fit": round(per_fit, 2), "iterations": ran[:4]}
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
        (metrics.POSTHOC_LR, metrics.MIN_ITERATIONS), metrics._train = shipped, train


if __name__ == "__main__":
    main()
